"""MTCNN detection on the real example photos, and alignment of the detected faces."""

import cv2
import numpy as np
import pytest

from facegcn_tf.data import alignment
from facegcn_tf.data.detection import FaceDetector
from facegcn_tf.errors import NoFaceError

@pytest.fixture(scope="module")
def detector():
  return FaceDetector(min_confidence=0.9)


@pytest.mark.parametrize("photo", ["astronaut", "grace_hopper"])
def test_exactly_one_face_with_points_inside_the_box(detector, photo, request):
  image = request.getfixturevalue(photo)
  detections = detector.detect(image)
  assert len(detections) == 1
  det = detections[0]
  assert det.confidence >= 0.9 and det.points.shape == (5, 2)
  x0, y0, x1, y1 = det.box
  assert ((det.points[:, 0] > x0) & (det.points[:, 0] < x1) &
          (det.points[:, 1] > y0) & (det.points[:, 1] < y1)).all()
  left_eye, right_eye, nose, mouth_left, mouth_right = det.points
  assert left_eye[0] < nose[0] < right_eye[0]          # image-left eye first
  assert mouth_left[0] < mouth_right[0]
  assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_left[1], mouth_right[1])


def test_points_follow_mtcnn_json_output(detector, astronaut):
  """Guards the numpy-output column layout against mtcnn's own dict output."""
  from mtcnn import MTCNN
  faces = MTCNN(device="CPU:0").detect_faces(astronaut)
  assert len(faces) == 1
  keys = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
  expected = np.array([faces[0]["keypoints"][k] for k in keys], dtype=np.float64)
  assert np.abs(detector.most_confident(astronaut).points - expected).max() <= 1.0


def test_no_face_in_coffee(detector):
  import skimage.data
  coffee = skimage.data.coffee()
  assert detector.detect(coffee) == []
  with pytest.raises(NoFaceError, match="coffee.png: no face"):
    detector.most_confident(coffee, name="coffee.png")


def test_min_confidence_is_applied(grace_hopper):
  strict = FaceDetector(min_confidence=0.999)
  conf = FaceDetector(min_confidence=0.5).most_confident(grace_hopper).confidence
  assert conf < 0.999  # Grace Hopper scores ~0.989.
  with pytest.raises(NoFaceError):
    strict.most_confident(grace_hopper)


def test_huge_image_is_detected_on_a_copy_and_mapped_back(detector, astronaut):
  small = detector.most_confident(astronaut)
  big_image = cv2.resize(astronaut, None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC)
  saved = detector.max_detect_side
  detector.max_detect_side = 700  # 1536 px -> detected at 700 px.
  try:
    big = detector.most_confident(big_image)
  finally:
    detector.max_detect_side = saved
  expected = (small.points + 0.5) * 3 - 0.5
  iod = np.linalg.norm(expected[1] - expected[0])
  assert np.linalg.norm(big.points - expected, axis=1).max() < 0.08 * iod
  assert big.width == pytest.approx(3 * small.width, rel=0.1)


def test_bad_image_raises(detector):
  with pytest.raises(ValueError, match="uint8"):
    detector.detect(np.zeros((64, 64, 3), np.float32))
  with pytest.raises(ValueError, match="min_confidence"):
    FaceDetector(min_confidence=1.5)


@pytest.mark.parametrize("photo", ["astronaut", "grace_hopper"])
def test_aligned_eyes_sit_on_the_template_eye_line(detector, ict_template5, photo, request):
  image = request.getfixturevalue(photo)
  face = alignment.align_face(image, detector.most_confident(image).points, ict_template5)
  template_px = np.stack([112 + 102 * ict_template5[:, 0], 112 - 102 * ict_template5[:, 1]], axis=-1)
  # Detect again on the aligned crop: an independent look at where the eyes ended up.
  again = detector.most_confident(face.image).points
  assert np.abs(again[:2, 1] - template_px[:2, 1]).max() < 4.0   # eye line
  assert np.abs(again[:2, 0] - template_px[:2, 0]).max() < 5.0
  # Least squares leaves zero mean residual: the 5-point centroids coincide.
  assert np.linalg.norm(again.mean(axis=0) - template_px.mean(axis=0)) < 3.0


def test_all_faces_of_two_photos_side_by_side(detector, astronaut, grace_hopper):
  from facegcn_tf.data.preprocess import FacePreprocessor
  hopper = cv2.resize(grace_hopper, (astronaut.shape[1], astronaut.shape[0]))
  pair = np.concatenate([astronaut, hopper], axis=1)
  faces = detector.all_faces(pair)
  assert len(faces) == 2
  assert sorted(f.center[0] < astronaut.shape[1] for f in faces) == [False, True]
  prep = FacePreprocessor(np.array([[-0.3, 0.3, 0.1], [0.3, 0.3, 0.1], [0, 0, 0.5],
                                    [-0.25, -0.4, 0.2], [0.25, -0.4, 0.2]]), detector=detector)
  prepared = prep.prepare_all_faces(pair, "pair")
  assert [p.detection.confidence for p in prepared] == [f.confidence for f in faces]
  assert all(p.aligned.image.shape == (224, 224, 3) for p in prepared)
  with pytest.raises(NoFaceError, match="coffee"):
    import skimage.data
    detector.all_faces(skimage.data.coffee(), "coffee")
