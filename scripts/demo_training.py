"""A small, honest end-to-end training demonstration on the bundled photos (minutes on a CPU).

  python scripts/demo_training.py --work_dir=runs/demo [--steps=300] [--holdout=grace_hopper]

1. Augmented copies of the bundled example photos except the held-out one (flips, small
   rotations and scales, brightness/contrast jitter; opencv) -> ``prepare_data.py``.
2. Synthetic striped renders of the coarse ICT model (`training.synthetic_records`), their true
   coefficients as their coarse stage.
3. ``fit_data.py`` fits the coarse model to the augmented photos.
4. ``train.py --stage=gcn`` trains a small generator on both (coarse ICT, 112 px).
5. On every bundled photo (the held-out one was never seen): coarse render vs the trained
   generator feed-forward vs per-image refinement from scratch, masked PSNR / SSIM of the
   lit render against the photo and dlib identity distance, with wall times. Printed as a
   Markdown table (docs/refinement.md, "Training demonstration").
"""

import os
import pathlib
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

_WORK_DIR = flags.DEFINE_string("work_dir", "runs/demo", "Folder for data, runs and results.")
_STEPS = flags.DEFINE_integer("steps", 300, "Generator training steps.", lower_bound=1)
_HOLDOUT = flags.DEFINE_string("holdout", "grace_hopper", "Bundled photo left out of training.")
_COPIES = flags.DEFINE_integer("copies", 6, "Augmented copies per training photo.", lower_bound=1)
_SYNTHETIC = flags.DEFINE_integer("synthetic", 8, "Synthetic renders.", lower_bound=0)
_PER_IMAGE_STEPS = flags.DEFINE_integer("per_image_steps", 100,
                                        "Steps of the per-image baseline.", lower_bound=1)
_FIT_STEPS = flags.DEFINE_float("fit_steps", 0.5, "Scale of the fitter's schedule.")

SCRIPTS = pathlib.Path(__file__).resolve().parent
FACE_MODEL = "ict_coarse"


def _run(script, *args):
  cmd = [sys.executable, str(SCRIPTS / script), *args]
  print("$", " ".join(cmd), flush=True)
  subprocess.run(cmd, check=True)


def augmented_photos(photos, folder, copies, seed=0):
  """Writes `copies` jittered versions of each photo (RGB uint8 arrays) into `folder`."""
  import cv2  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(seed)
  folder.mkdir(parents=True, exist_ok=True)
  for name, rgb in photos.items():
    if rgb.ndim == 2:
      rgb = np.repeat(rgb[..., None], 3, axis=-1)
    h, w = rgb.shape[:2]
    for k in range(copies):
      image = rgb[:, ::-1] if k % 2 else rgb
      matrix = cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(-8, 8), rng.uniform(0.9, 1.1))
      matrix[:, 2] += rng.uniform(-0.04, 0.04, 2) * (w, h)
      image = cv2.warpAffine(np.ascontiguousarray(image), matrix, (w, h),
                             borderMode=cv2.BORDER_REFLECT)
      image = np.clip(image.astype(np.float32) * rng.uniform(0.8, 1.2)
                      + rng.uniform(-20, 20), 0, 255).astype(np.uint8)
      cv2.imwrite(str(folder / f"{name}_{k}.png"), image[..., ::-1])


def synthetic_shards(folder, count):
  """Synthetic striped faces as ``synth-*.tfrecord`` shards + their true coarse cache."""
  from facegcn_tf.morphable import load_model  # pylint: disable=import-outside-toplevel
  from facegcn_tf.training import coarse_fits, synthetic_records  # pylint: disable=import-outside-toplevel
  model = load_model(FACE_MODEL)
  tmp = folder / "synth_tmp"
  written = synthetic_records.write_records(str(tmp), model, count=count, shard_size=count)
  for path in tmp.glob("faces-*"):
    path.rename(folder / path.name.replace("faces-", "synth-"))
  tmp.rmdir()
  cache = folder / f"coarse_{FACE_MODEL}"
  cache.mkdir(exist_ok=True)
  coarse_fits.write_cache_file(str(cache / "synth-00000.npz"), model.name, model.layout,
                               written["names"], list(written["faces"]["coeffs"]))


def evaluate(photos, checkpoint, per_image_steps, fit_steps, holdout):
  """Markdown rows: per photo, coarse / feed-forward / per-image figures and seconds."""
  # pylint: disable=import-outside-toplevel
  from facegcn_tf import pipeline
  from facegcn_tf.fitting.fitter import FitConfig
  from facegcn_tf.pipeline import assemble
  from facegcn_tf.pipeline.coarse import coarse_fit
  from facegcn_tf.pipeline.refine import refine
  from facegcn_tf.pipeline.stages import FaceBatch
  from facegcn_tf.refinement import feed_forward, per_image
  # pylint: enable=import-outside-toplevel
  settings = pipeline.Settings(face_model=FACE_MODEL, refine_steps=0)
  rec = pipeline.Reconstructor(settings)
  comps = rec.components
  refiners = {
      "coarse": None,
      "feed-forward": feed_forward.FeedForwardRefiner(comps.renderer, comps.identity, checkpoint),
      f"per-image ({per_image_steps} steps)": per_image.PerImageRefiner(
          comps.renderer, comps.identity, per_image.PerImageConfig(steps=per_image_steps)),
  }
  rows = []
  for name, path in photos.items():
    prepared = rec.prepare(path)
    batch = FaceBatch.stack([prepared.faces[0]], [prepared.features[0]])
    coarse = coarse_fit(comps, batch, FitConfig().scaled(fit_steps))
    for how, refiner in refiners.items():
      comps.refiner = refiner
      start = time.perf_counter()
      result = refine(comps, batch, coarse)
      seconds = time.perf_counter() - start
      face = assemble.face_results(comps, prepared.faces[:1], [name], [prepared.photo], batch,
                                   coarse, result, [{}])[0]
      f = face.figures
      rows.append(f"| {name}{' (held out)' if name == holdout else ''} | {how} | "
                  f"{f['psnr_fine_db']:.2f} | {f['ssim_fine']:.3f} | "
                  f"{f['identity_distance_fine']:.3f} | {seconds:.1f} |")
      print(rows[-1], flush=True)
  return rows


def main(argv):
  del argv
  from facegcn_tf.data import examples  # pylint: disable=import-outside-toplevel
  work = pathlib.Path(_WORK_DIR.value).resolve()
  photos = examples.example_photos()
  if _HOLDOUT.value not in photos:
    raise app.UsageError(f"--holdout must be one of {sorted(photos)}")
  data = work / "data"
  start = time.perf_counter()
  train_photos = {k: v for k, v in photos.items() if k != _HOLDOUT.value}
  augmented_photos(train_photos, work / "photos", _COPIES.value)
  _run("prepare_data.py", f"--input_dir={work / 'photos'}", f"--output_dir={data}",
       f"--face_model={FACE_MODEL}", "--shard_size=64", "--identity=none")
  if _SYNTHETIC.value and not list(data.glob("synth-*.tfrecord")):
    synthetic_shards(data, _SYNTHETIC.value)
  _run("fit_data.py", f"--data={data}/faces-*.tfrecord", f"--face_model={FACE_MODEL}",
       f"--fit_steps={_FIT_STEPS.value}", "--progress=false")
  prepared = time.perf_counter() - start
  run = work / "gcn"
  _run("train.py", "--flagfile=" + str(SCRIPTS.parent / "configs" / "demo.cfg"),
       f"--data={data}/*-*.tfrecord", f"--output_dir={run}", f"--steps={_STEPS.value}",
       f"--set=coarse_coeffs={data / ('coarse_' + FACE_MODEL)}", "--progress=false")
  trained = time.perf_counter() - start - prepared
  folder = work / "originals"
  examples.write_example_photos(folder)
  paths = {p.stem: p for p in sorted(folder.iterdir())}
  rows = evaluate(paths, str(run), _PER_IMAGE_STEPS.value, _FIT_STEPS.value, _HOLDOUT.value)
  print(f"\ndata {prepared:.0f} s, training {trained:.0f} s ({_STEPS.value} steps)\n")
  print("| photo | texture | PSNR (dB) | SSIM | identity distance | refine s |")
  print("| --- | --- | --- | --- | --- | --- |")
  print("\n".join(rows))


if __name__ == "__main__":
  app.run(main)
