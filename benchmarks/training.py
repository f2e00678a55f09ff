"""GCN texture training and per-image refinement speed on the CPU (subdivided ICT face).

Training steps: `GCNTrainer.step` (coarse inputs + identity features, generator
forward/backward through render and identity network, Adam) at batch 4,
224 px, the paper's widths and K = 6, on 4 synthetic records whose true
coefficients stand in for the cached coarse fits; once without the critic
(the first step, σ1 = 0) and once with one WGAN-GP critic update
(interleaved); a critic update is also timed alone (the paper's setting runs
5 per generator update).
Per-image refinement: `per_image.refine` of one synthetic face with the
default config (K = 2), total seconds and per step.
"""

import dataclasses
import tempfile
import time

import numpy as np
import tensorflow as tf

from benchmarks._timing import time_ms
from facegcn_tf.assets import loaders
from facegcn_tf.morphable import ict
from facegcn_tf.render.renderer import FaceRenderer
from facegcn_tf.training import gcn_trainer
from facegcn_tf.refinement import losses
from facegcn_tf.refinement import per_image
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

  def call(epoch):
    trainer.runtime.epoch.assign(epoch)  # epoch 0: σ1 = 0, no critic; epoch 1: critic on
    start = time.perf_counter()
    float(trainer.step(batch)[rt.LOSS_KEY])
    return time.perf_counter() - start

  trace_g, trace_c = call(0.0), call(1.0)
  call(0.0), call(1.0)  # warm-up
  times = np.array([[call(0.0), call(1.0)] for _ in range(repeats)]) * 1000.0  # interleaved
  gen_ms, both_ms = np.median(times, axis=0)

  critic, optimizer = trainer.critic, trainer.critic_optimizer
  real = tf.random.uniform([BATCH, 224, 224, 3], -1.0, 1.0, seed=1)
  fake = tf.random.uniform([BATCH, 224, 224, 3], -1.0, 1.0, seed=2)

  @tf.function
  def critic_update():
    epsilon = tf.random.uniform([BATCH, 1, 1, 1])
    with tf.GradientTape() as tape:
      loss = losses.critic_loss(critic, real, fake, 10.0, epsilon=epsilon)
    grads = tape.gradient(loss, critic.trainable_variables)
    optimizer.apply_gradients(zip(grads, critic.trainable_variables))
    return loss

  critic_ms = time_ms(lambda: float(critic_update()), repeats)
  rows += [
      ("critic update alone (WGAN-GP, layer norm), batch 4", critic_ms, "ms"),
      ("training step without critic (generator update), batch 4", gen_ms / 1000.0, "s"),
      ("training step with 1 critic update, batch 4", both_ms / 1000.0, "s"),
      ("paper step estimate (generator update + 5 critic updates), batch 4",
       (gen_ms + 5 * critic_ms) / 1000.0, "s"),
      ("first call of each step variant (tracing), generator / with critic",
       f"{trace_g:.0f} / {trace_c:.0f}", "s"),
  ]
  return rows


def _per_image_rows(model, steps):
  faces = synthetic_records.striped_faces(model, 1, seed=7)
  renderer = FaceRenderer(model)
  encoder = loaders.load_identity_encoder("dlib", template5=model.template5)
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
