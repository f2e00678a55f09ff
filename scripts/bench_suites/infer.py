"""End-to-end reconstruction seconds per image (prepare -> coarse -> fine -> all files)."""

import pathlib
import tempfile
import time

import cv2

from facegcn_tf.export import batch
from facegcn_tf.fitting.fitter import FitConfig

TITLE = "End to end: infer.py pipeline, seconds per image (CPU)"


def _photos(folder: pathlib.Path, count: int):
  import matplotlib.cbook
  import skimage.data
  hopper = cv2.imread(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
  astronaut = skimage.data.astronaut()[..., ::-1]
  paths = []
  for i in range(count):
    path = folder / f"photo_{i:02d}.png"
    cv2.imwrite(str(path), astronaut if i % 2 == 0 else hopper)
    paths.append(path)
  return paths


def _seconds_per_image(settings: batch.Settings, count: int, rnet_weights=None) -> float:
  with tempfile.TemporaryDirectory() as tmp:
    tmp = pathlib.Path(tmp)
    photos = _photos(tmp, count)
    reconstructor = batch.Reconstructor(settings)
    batch.run(photos[:1], tmp / "warmup", reconstructor, progress=False)  # traces, caches
    start = time.perf_counter()
    summary = batch.run(photos, tmp / "out", reconstructor, progress=False)
    elapsed = time.perf_counter() - start
    if len(summary.done) != count:
      raise RuntimeError(f"benchmark run failed: {summary.table()}")
    return elapsed / count


def run(quick: bool):
  rows = []
  fit_scale = 0.25 if quick else 1.0
  base = FitConfig()
  fit_config = base.replace(pose_steps=round(base.pose_steps * fit_scale),
                            landmark_steps=max(1, round(base.landmark_steps * fit_scale)),
                            photo_steps=round(base.photo_steps * fit_scale),
                            refine_steps=round(base.refine_steps * fit_scale))
  refine_steps = 50 if quick else 200
  for size in (1, 8):
    settings = batch.Settings(batch_size=size, fit_config=fit_config, refine_steps=refine_steps)
    rows.append((f"default path (fit + {refine_steps}-step GCN refinement + export), batch {size}",
                 _seconds_per_image(settings, size), "s/image"))
  for size in (1, 8):
    settings = batch.Settings(batch_size=size, fit_config=fit_config, refine_steps=0)
    rows.append((f"fitting + export only (no refinement), batch {size}",
                 _seconds_per_image(settings, size), "s/image"))
  with tempfile.TemporaryDirectory() as tmp:
    from facegcn_tf.morphable import load_model
    from facegcn_tf.networks.rnet import build_rnet
    weights = pathlib.Path(tmp) / "rnet.weights.h5"
    build_rnet(load_model("ict").layout, 224).save_weights(str(weights))
    for size in (1, 8):
      settings = batch.Settings(batch_size=size, refine_steps=0, rnet_checkpoint=str(weights))
      rows.append((f"feed-forward R-Net + export (untrained weights; timing only), batch {size}",
                   _seconds_per_image(settings, size), "s/image"))
  return rows
