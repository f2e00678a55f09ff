"""Shared pytest setup: quiet TF logs, deterministic seeds, shared fixtures."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
  import tensorflow as tf
  np.random.seed(0)
  tf.random.set_seed(0)
  yield


@pytest.fixture(scope="session")
def astronaut():
  """skimage's astronaut photo, [512, 512, 3] uint8 RGB (public domain)."""
  from facegcn_tf.data import examples
  return examples.example_photos(["astronaut"])["astronaut"]


@pytest.fixture(scope="session")
def grace_hopper():
  """matplotlib's grace_hopper.jpg, [600, 512, 3] uint8 RGB (public domain)."""
  from facegcn_tf.data import examples
  return examples.example_photos(["grace_hopper"])["grace_hopper"]


@pytest.fixture(scope="session")
def ict_template5():
  """[5, 3] alignment template of ICT's neutral face (cm -> dm, centred on the vertex mean).

  Read straight from the shipped .npz (not through `morphable`), so the data-stage tests
  stay independent of the morphable stage. The file is found on the asset search path;
  a missing file fails the test with the search path in the message.
  """
  from facegcn_tf import assets
  from facegcn_tf.data import alignment
  data = np.load(assets.find_asset("ict_face_light/ict_face_area.npz"))
  neutral = data["neutral"].astype(np.float64)
  return alignment.five_point_template((neutral[data["landmarks68"]] - neutral.mean(axis=0)) * 0.1)


@pytest.fixture(scope="session")
def face_preprocessor(ict_template5):
  """A `FacePreprocessor` (MTCNN + MediaPipe landmarks) aligning to ICT's template."""
  from facegcn_tf.data.preprocess import FacePreprocessor
  return FacePreprocessor(ict_template5)


@pytest.fixture(scope="session")
def masked_grace_hopper(face_preprocessor, grace_hopper):
  """`occluders.Occluded`: a synthetic surgical mask on grace_hopper that MTCNN no longer
  finds at its threshold (the first of a few seeded masks; fails if none hides the face)."""
  from facegcn_tf.data import occluders
  clean = face_preprocessor.prepare_image(grace_hopper, "grace_hopper")
  landmarks = clean.aligned.transform.to_original(clean.landmarks68)
  for seed in range(8):
    drawn = occluders.draw_occluder(grace_hopper, landmarks, "surgical_mask", seed)
    if not face_preprocessor.detector.detect(drawn.image):
      return drawn
  pytest.fail("no synthetic surgical mask lowered MTCNN's confidence below its threshold")


@pytest.fixture(scope="session")
def photos_and_a_corrupt_file(tmp_path_factory, astronaut, grace_hopper):
  """A folder: a_astronaut.png, b_corrupt.jpg (a JPEG header, then zeros), c_grace_hopper.jpg."""
  import cv2
  folder = tmp_path_factory.mktemp("photos_and_a_corrupt_file")
  cv2.imwrite(str(folder / "a_astronaut.png"), astronaut[..., ::-1])
  cv2.imwrite(str(folder / "c_grace_hopper.jpg"), grace_hopper[..., ::-1])
  (folder / "b_corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 3000)
  return folder
