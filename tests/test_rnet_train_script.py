"""scripts/train.py end to end: the R-Net smoke config on a tiny TFRecord set written with
the data package's writer (rendered ICT faces with their exact landmarks), resume, and
usage errors."""

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from facegcn_tf.data import alignment, dataset, face_mask
from facegcn_tf.data.detection import Detection
from facegcn_tf.data.preprocess import PreparedFace
from facegcn_tf.morphable.ict import load_ict
from facegcn_tf.render.random_faces import FacePrior, random_coefficients
from facegcn_tf.render.renderer import FaceRenderer

REPO = pathlib.Path(__file__).resolve().parent.parent
SIZE = alignment.ALIGNED_SIZE


def _prepared_faces(count):
  """Rendered 224 crops as `PreparedFace`s: masks = the rendered face, exact landmarks."""
  model = load_ict(subdivide=False)
  renderer = FaceRenderer(model)
  coeffs = random_coefficients(model.layout, count, 3, FacePrior(max_yaw=20.0))
  out = renderer.render(tf.constant(coeffs), background=0.4)
  images = (np.clip(out.image.numpy(), 0, 1) * 255 + 0.5).astype(np.uint8)
  masks = out.mask.numpy() > 0.5
  landmarks = renderer.landmarks(out.geometry).numpy()
  identity = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
  faces = {}
  for i in range(count):
    points5 = alignment.five_points_from_68(landmarks[i])
    transform = alignment.AlignTransform(matrix=identity, inverse=identity, scale=1.0,
                                         translation=np.zeros(2), size=SIZE,
                                         source_shape=(SIZE, SIZE))
    aligned = alignment.AlignedFace(image=images[i], valid=np.ones((SIZE, SIZE), bool),
                                    points5=points5, transform=transform)
    name = f"face_{i}.png"
    faces[name] = PreparedFace(
        aligned=aligned, masks=face_mask.FaceMasks(region=masks[i], skin=masks[i], face=masks[i]),
        landmarks68=landmarks[i], dense=np.zeros((468, 3)),
        detection=Detection(box=np.array([40.0, 40.0, 184.0, 184.0]), confidence=0.99,
                            points=points5),
        source_path=name, source_size=(SIZE, SIZE))
  return faces


@pytest.fixture(scope="module")
def records(tmp_path_factory):
  out = tmp_path_factory.mktemp("records")
  faces = _prepared_faces(4)
  summary = dataset.write_dataset(sorted(faces), str(out), faces.__getitem__, shard_size=2)
  assert summary.num_done == 4
  return str(out / "faces-*.tfrecord")


def _train(*args, timeout=500):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  return subprocess.run([sys.executable, str(REPO / "scripts" / "train.py"), *args],
                        capture_output=True, text=True, cwd=str(REPO), timeout=timeout, env=env)


def test_smoke_config_runs_end_to_end_and_resumes(records, tmp_path):
  out = tmp_path / "run"
  fits = tmp_path / "fits.npz"          # distillation targets for two of the four faces
  total = load_ict(subdivide=False).layout.total
  np.savez(fits, paths=np.array(["face_0.png", "face_2.png"]), coeffs=np.zeros([2, total]))
  common = ["--stage=rnet", "--flagfile=configs/rnet_smoke.cfg", f"--data={records}",
            f"--output_dir={out}", "--run_eagerly", "--noprogress",
            f"--set=distill_targets={fits}"]
  first = _train(*common, "--steps=2")
  assert first.returncode == 0, first.stderr[-3000:]
  assert "rnet: started at step 0, now at step 2" in first.stdout
  for term in ("identity", "landmark", "photo", "distill"):
    assert f"loss/{term}=" in first.stdout
  assert (out / "checkpoints" / "ckpt-2.index").is_file()
  assert (out / "rnet.weights.h5").is_file() and (out / "rnet.json").is_file()
  assert list((out / "tensorboard").glob("events.out.tfevents.*"))

  second = _train(*common, "--steps=3")
  assert second.returncode == 0, second.stderr[-3000:]
  assert "rnet: resumed at step 2, now at step 3" in second.stdout
  assert (out / "checkpoints" / "ckpt-3.index").is_file()


def test_usage_errors_are_one_line(tmp_path):
  unknown = _train("--stage=texture", f"--output_dir={tmp_path}", "--data=x", "--steps=1",
                   timeout=120)
  assert unknown.returncode == 2
  line = unknown.stderr.strip().splitlines()[-1]
  assert line.startswith("train.py: usage error: --stage=texture: no such training stage; "
                         "available: rnet")
  assert "Traceback" not in unknown.stderr
  no_data = _train("--stage=rnet", f"--output_dir={tmp_path}", "--steps=1",
                   "--set=weights.photo=2", timeout=120)
  assert no_data.returncode == 2
  assert no_data.stderr.strip().splitlines()[-1] == (
      "train.py: usage error: --data (a glob of prepare_data TFRecord shards) is required "
      "(see --helpshort)")
  assert "Traceback" not in no_data.stderr
  no_files = _train("--stage=rnet", f"--output_dir={tmp_path}", f"--data={tmp_path}/*.tfrecord",
                    "--steps=1", "--face_model=ict_coarse", "--set=identity=none", timeout=120)
  assert no_files.returncode != 0
  assert "error: no TFRecord files match" in no_files.stderr
  assert "Traceback" not in no_files.stderr
