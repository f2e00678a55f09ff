"""Photo -> model inputs: per-image stage times on the example photos, dataset throughput.

Photos: skimage astronaut (512x512 PNG) and matplotlib grace_hopper (512x600
JPEG), written to a temporary folder so that loading includes decoding.
"""

import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

import cv2
import numpy as np

from benchmarks._timing import time_ms
from facegcn_tf.data import alignment, dataset, examples, face_mask, image_io
from facegcn_tf.data.dense_landmarks import DenseLandmarker
from facegcn_tf.data.detection import FaceDetector
from facegcn_tf.data.preprocess import FacePreprocessor

TITLE = "Data: load, detect, align, dense landmarks, masks; prepare_data and reader throughput"

_REPO = pathlib.Path(__file__).resolve().parent.parent


def _photos(folder: pathlib.Path):
  return dict(zip(examples.PORTRAITS, examples.write_example_photos(folder, examples.PORTRAITS)))


def _template():
  from facegcn_tf.morphable import load_model
  model = load_model("ict_coarse")
  return model.template5


def run(quick: bool):
  repeats = 3 if quick else 10
  copies = 6 if quick else 24
  rows = []
  work = pathlib.Path(tempfile.mkdtemp(prefix="bench_data_"))
  try:
    paths = _photos(work)
    template = _template()
    start = time.perf_counter()
    detector = FaceDetector()
    rows.append(("FaceDetector() construction", (time.perf_counter() - start) * 1e3, "ms"))
    start = time.perf_counter()
    landmarker = DenseLandmarker()
    rows.append(("DenseLandmarker() construction", (time.perf_counter() - start) * 1e3, "ms"))
    pre = FacePreprocessor(template, detector, landmarker)

    for name, path in paths.items():
      rgb = image_io.load_image(path).rgb
      det = detector.most_confident(rgb)
      dense = landmarker.predict(rgb, det.box, det.points)
      face = alignment.align_face(rgb, det.points, template)
      pts = np.concatenate([face.transform.to_aligned(dense.points[:, :2]), dense.points[:, 2:]], 1)
      label = f"{name} {rgb.shape[1]}x{rgb.shape[0]}"
      rows.append((f"{label}: load_image",
                   time_ms(lambda: image_io.load_image(path), repeats), "ms"))
      rows.append((f"{label}: detect (MTCNN)",
                   time_ms(lambda: detector.detect(rgb), repeats), "ms"))
      rows.append((f"{label}: align to 224", time_ms(
          lambda: alignment.align_face(rgb, det.points, template), repeats), "ms"))
      rows.append((f"{label}: dense landmarks (2 passes)", time_ms(
          lambda: landmarker.predict(rgb, det.box, det.points), repeats), "ms"))
      rows.append((f"{label}: masks on the 224 crop", time_ms(
          lambda: face_mask.face_masks(face.image, pts, valid=face.valid), repeats), "ms"))
      rows.append((f"{label}: masks on the photo", time_ms(
          lambda: face_mask.face_masks(rgb, dense.points), repeats), "ms"))
      rows.append((f"{label}: whole prepare_file", time_ms(
          lambda: pre.prepare_file(path), repeats), "ms"))

    big = cv2.resize(image_io.load_image(paths["astronaut"]).rgb, None, fx=8, fy=8,
                     interpolation=cv2.INTER_LINEAR)
    big_det = detector.most_confident(big)
    rows.append(("astronaut x8 (4096x4096): detect on 1024 copy",
                 time_ms(lambda: detector.detect(big), max(repeats // 2, 1)), "ms"))
    rows.append(("astronaut x8 (4096x4096): align (anti-aliased)",
                 time_ms(lambda: alignment.align_face(big, big_det.points, template), repeats),
                 "ms"))

    photos = work / "photos"
    photos.mkdir()
    for i in range(copies):
      src = list(paths.values())[i % 2]
      shutil.copy(src, photos / f"{i:03d}{src.suffix}")
    out = work / "shards"
    start = time.perf_counter()
    summary = dataset.prepare_directory(str(photos), str(out), pre, shard_size=8)
    elapsed = time.perf_counter() - start
    assert summary.num_done == copies, summary.failures
    rows.append((f"prepare_directory, {copies} photos, in process", copies / elapsed, "images/s"))
    start = time.perf_counter()
    dataset.prepare_directory(str(photos), str(out), pre, shard_size=8)
    rows.append(("prepare_directory re-run (all shards resumed)",
                 (time.perf_counter() - start) * 1e3, "ms"))

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    start = time.perf_counter()
    subprocess.run([sys.executable, str(_REPO / "scripts" / "prepare_data.py"),
                    "--input_dir", str(photos), "--output_dir", str(work / "cli"),
                    "--identity", "none", "--shard_size", "8"],
                   check=True, capture_output=True, env=env)
    elapsed = time.perf_counter() - start
    rows.append((f"scripts/prepare_data.py --identity=none, {copies} photos, incl. start-up",
                 copies / elapsed, "images/s"))
    rows.append(("scripts/prepare_data.py wall time", elapsed, "s"))

    pattern = str(out / "*.tfrecord")
    for augment in (False, True):
      ds = dataset.make_dataset(pattern, batch_size=8, shuffle=True, augment=augment, seed=0,
                                repeat=True)
      it = iter(ds)
      next(it)
      n_batches = 5 if quick else 20
      start = time.perf_counter()
      for _ in range(n_batches):
        next(it)
      rate = n_batches * 8 / (time.perf_counter() - start)
      rows.append((f"make_dataset reader, batch 8, augment={augment}", rate, "examples/s"))
  finally:
    shutil.rmtree(work, ignore_errors=True)
  return rows
