"""Weight-free face masks on the real photos, with and without a synthetic occluder."""

import numpy as np
import pytest

from facegcn_tf.data import face_mask
from facegcn_tf.data.dense_landmarks import DenseLandmarker
from facegcn_tf.data.detection import FaceDetector
from facegcn_tf.data.preprocess import FacePreprocessor

# MediaPipe vertices at the middle of each cheek and of the forehead.
RIGHT_CHEEK, LEFT_CHEEK, FOREHEAD = 50, 280, 151


@pytest.fixture(scope="module")
def models():
  return FaceDetector(), DenseLandmarker()


@pytest.fixture(scope="module")
def faces(models, astronaut, grace_hopper):
  """{name: (image, [468, 3] points)} for both photos."""
  detector, landmarker = models
  out = {}
  for name, image in (("astronaut", astronaut), ("grace_hopper", grace_hopper)):
    det = detector.most_confident(image)
    out[name] = (image, landmarker.predict(image, det.box, det.points).points)
  return out


def _disk(shape, centre, radius):
  ys, xs = np.mgrid[:shape[0], :shape[1]]
  return (xs - centre[0]) ** 2 + (ys - centre[1]) ** 2 <= radius ** 2


def _iod(points):
  return float(np.linalg.norm(points[263, :2] - points[33, :2]))


@pytest.mark.parametrize("name", ["astronaut", "grace_hopper"])
def test_masks_cover_cheeks_and_forehead(faces, name):
  image, points = faces[name]
  masks = face_mask.face_masks(image, points)
  r = 0.12 * _iod(points)
  for vertex in (RIGHT_CHEEK, LEFT_CHEEK, FOREHEAD):
    area = _disk(image.shape, points[vertex, :2], r)
    assert masks.face[area].mean() > 0.9, vertex
    assert masks.skin[area].mean() > 0.8, vertex
  assert (masks.skin <= masks.region).all() and (masks.face <= masks.region).all()
  assert 0.75 < masks.face.sum() / masks.region.sum() <= 1.0
  # Eyes and lips are not skin but are in the loss mask.
  eye = (face_mask.feature_mask(points, image.shape)
         & _disk(image.shape, points[159, :2], 0.1 * _iod(points)))
  assert masks.face[eye].mean() > 0.9


@pytest.mark.parametrize("name", ["astronaut", "grace_hopper"])
def test_dark_rectangle_over_one_cheek_is_excluded(faces, name):
  image, points = faces[name]
  occluded = image.copy()
  r = int(0.2 * _iod(points))
  cx, cy = np.rint(points[RIGHT_CHEEK, :2] + [0, 0.1 * _iod(points)]).astype(int)
  rect = np.zeros(image.shape[:2], bool)
  rect[cy - r:cy + r, cx - r:cx + r] = True
  assert not (rect & face_mask.feature_mask(points, image.shape)).any()  # On the cheek only.
  occluded[rect] = (30, 24, 20)
  masks = face_mask.face_masks(occluded, points)
  assert masks.skin[rect].mean() < 0.02
  assert masks.face[rect].mean() < 0.05
  other = _disk(image.shape, points[LEFT_CHEEK, :2], 0.12 * _iod(points))
  assert masks.face[other].mean() > 0.9 and masks.skin[other].mean() > 0.8
  assert face_mask.skin_mask(occluded, points)[rect].sum() == masks.skin[rect].sum()


def test_grey_and_flat_images_do_not_break_the_skin_model(faces):
  image, points = faces["astronaut"]
  grey = np.repeat(image.mean(axis=-1, keepdims=True).astype(np.uint8), 3, axis=-1)
  flat = np.empty_like(image)
  flat[:] = (205, 150, 130)  # One skin colour everywhere: a singular covariance.
  for picture in (grey, flat):
    masks = face_mask.face_masks(picture, points)
    for vertex in (RIGHT_CHEEK, LEFT_CHEEK, FOREHEAD):
      area = _disk(image.shape, points[vertex, :2], 0.12 * _iod(points))
      assert masks.skin[area].mean() > 0.9


def test_region_is_the_face_oval(faces):
  image, points = faces["astronaut"]
  region = face_mask.region_mask(points, image.shape)
  nose = np.rint(points[1, :2]).astype(int)
  assert region[nose[1], nose[0]]
  assert not region[:20].any() and not region[:, :20].any()
  raised = face_mask.region_mask(points, image.shape, forehead=0.3)
  assert raised.sum() > region.sum() and (region <= raised).all()
  top = lambda m: np.nonzero(m.any(axis=1))[0][0]  # noqa: E731
  assert top(raised) < top(region) - 5


def test_masks_on_the_aligned_crop(models, astronaut, ict_template5):
  prepared = FacePreprocessor(ict_template5, *models).prepare_image(astronaut, name="astronaut")
  masks, dense = prepared.masks, prepared.dense
  assert masks.face.shape == (224, 224)
  for vertex in (RIGHT_CHEEK, LEFT_CHEEK, FOREHEAD):
    area = _disk((224, 224), dense[vertex, :2], 0.12 * _iod(dense))
    assert masks.face[area].mean() > 0.9
  assert not (masks.region & ~prepared.aligned.valid).any()


def test_robust_gaussian_ignores_a_large_outlier_cluster():
  rng = np.random.RandomState(0)
  inliers = rng.randn(700, 2) * [1.0, 2.0] + [3.0, -1.0]
  outliers = rng.randn(300, 2) * 0.5 + [12.0, 9.0]
  mean, cov = face_mask.robust_gaussian(np.concatenate([inliers, outliers]))
  assert np.allclose(mean, [3.0, -1.0], atol=0.25)
  assert np.allclose(np.sqrt(np.diag(cov)), [1.0, 2.0], rtol=0.2)


def test_bad_inputs(faces):
  image, points = faces["astronaut"]
  with pytest.raises(ValueError, match=r"\[468, 2\+\]"):
    face_mask.face_masks(image, points[:100])
  with pytest.raises(ValueError, match="uint8"):
    face_mask.face_masks(image.astype(np.float32), points)
  tiny = points.copy()
  tiny[:, :2] = tiny[:, :2] * 0.02 + 100  # A face a few pixels wide.
  with pytest.raises(ValueError, match="too small"):
    face_mask.face_masks(image, tiny)
