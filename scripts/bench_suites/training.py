"""GCN texture training and per-image refinement speed on the CPU (subdivided ICT face).

Training steps: `GCNTrainer.step` (coarse inputs + identity features, generator
forward/backward through render and identity network, Adam) at batch 4,
224 px, the paper's widths and K = 6, on 4 synthetic records whose true
coefficients stand in for the cached coarse fits; once without the critic
(the first step, σ1 = 0) and once with one WGAN-GP critic update, whose
difference is the cost of a critic update (the paper's setting runs 5).
Per-image refinement: `per_image.refine` of one synthetic face with the
default config (K = 2), total seconds and per step.
"""

import dataclasses
import tempfile
import time

from bench_suites._timing import time_ms
from facegcn_tf.data import alignment
from facegcn_tf.morphable import ict
from facegcn_tf.networks import identity as identity_lib
from facegcn_tf.render.renderer import FaceRenderer
from facegcn_tf.training import gcn_trainer
from facegcn_tf.training import per_image
from facegcn_tf.training import runtime as rt
from facegcn_tf.training import synthetic_records

TITLE = "GCN texture training steps and per-image refinement (ICT 37,280 vertices, 224 px, CPU)"
BATCH = 4


def _training_rows(model, folder, repeats):
  written = synthetic_records.write_records(folder, model, count=BATCH, shard_size=BATCH)
  table = dict(zip(written["names"], written["faces"]["coeffs"]))
  runtime = rt.RuntimeConfig(output_dir=f"{folder}/run", checkpoint_every=0, summary_every=0,
                             image_summary_every=0, progress=False)
  config = gcn_trainer.GCNTrainConfig(runtime=runtime, data=written["pattern"], batch_size=BATCH,
                                      steps=10, face_model="ict", critic_steps=1)
  trainer = gcn_trainer.GCNTrainer(config, face_model=model, coarse_coeffs=table)
  batch = trainer.prepare_batch(next(trainer.iterator))
  rows = [("generator parameters (paper widths, K = 6)", trainer.generator.count_params(), "")]

  def timed_first(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start

  def run():
    out = trainer.step(batch)
    float(out[rt.LOSS_KEY])

  trace_g = timed_first(run)
  gen_ms = time_ms(run, repeats, warmup=0)
  trainer.runtime.epoch.assign(1.0)  # σ1 > 0: the critic trains from here on
  trace_c = timed_first(run)
  both_ms = time_ms(run, repeats, warmup=0)
  rows += [
      ("training step without critic (generator update), batch 4", gen_ms / 1000.0, "s"),
      ("training step with 1 critic update, batch 4", both_ms / 1000.0, "s"),
      ("critic update (WGAN-GP), batch 4 (difference)", both_ms - gen_ms, "ms"),
      ("paper step estimate (generator + 5 critic updates), batch 4",
       (gen_ms + 5 * (both_ms - gen_ms)) / 1000.0, "s"),
      ("first call of each step variant (tracing), generator / with critic",
       f"{trace_g:.0f} / {trace_c:.0f}", "s"),
  ]
  return rows


def _per_image_rows(model, steps):
  faces = synthetic_records.render_faces(model, 1, seed=7)
  renderer = FaceRenderer(model)
  template5 = alignment.five_point_template(model.mean_shape[model.landmarks68])
  encoder = identity_lib.build_identity_encoder("dlib", template5=template5)
  config = dataclasses.replace(per_image.PerImageConfig(), steps=steps)
  refiner = per_image.PerImageRefiner(renderer, encoder, config)
  first = refiner(faces["images"], faces["coeffs"], faces["mask"])
  again = refiner(faces["images"], faces["coeffs"], faces["mask"])   # traced already
  per_step = again.seconds / steps
  return [
      (f"per-image refinement, {steps} steps, first image (incl. tracing)", first.seconds, "s"),
      (f"per-image refinement, {steps} steps, next images", again.seconds, "s"),
      ("per-image refinement step (K = 2, paper widths)", per_step * 1000.0, "ms"),
      ("per-image refinement, default 150 steps (from the step time)",
       per_step * per_image.PerImageConfig().steps, "s/image"),
      ("per-image PSNR gain on the synthetic striped face", float(
          again.figures["psnr_fine"][0] - again.figures["psnr_coarse"][0]), "dB"),
  ]


def run(quick: bool):
  model = ict.load_ict(subdivide=True)
  repeats = 2 if quick else 5
  with tempfile.TemporaryDirectory() as folder:
    rows = _training_rows(model, folder, repeats)
  rows += _per_image_rows(model, 30 if quick else 150)
  return rows
