"""Face masks without a parsing network (stand-in for the paper's segmenter).

The paper's loss mask covers face skin, eyebrows, eyes, nose and mouth, and
leaves out hair, glasses, hands and other occluders (paper_spec §3.1, §4). No
face-parsing weights are obtainable offline (assets.md §5), so it is rebuilt
from MediaPipe's 468 landmarks plus a per-image skin-colour model:

* ``region_mask``: the filled face-oval polygon (optionally raised at the
  forehead).
* ``skin_mask``: region pixels whose colour fits a robust Gaussian of this
  face's skin chroma, seeded on the upper face (hue angle and log saturation of the YCrCb Cr/Cb
  plane; tried against plain Cr/Cb and normalised rg on the example photos,
  it keeps shaded skin and wrinkles that those drop), and which are not much
  darker than the skin (dark pixels have unreliable chroma; this drops hair, shadows of
  occluders, dark frames). The Gaussian is fitted on the region minus the
  eye/brow/lip polygons with a minimum-covariance-determinant style
  estimator (trimmed C-steps, consistency correction, one reweighting step),
  so anything covering up to ~40 % of the face does not pull the model.
  Grey-level photos (no chroma) keep only the darkness test.
  Written here because scikit-learn (``MinCovDet``) is not a dependency and
  ``cv2.ml.EM`` is a plain, non-robust GMM.
* ``face_mask``: (skin | feature polygons) inside the region, minus
  "occluders": connected non-skin pieces outside the (slightly grown)
  feature polygons that are not small (glasses frames, hair, a hand). Small
  non-skin specks (highlights, pores, noise) are kept. The feature polygons
  themselves are always kept, even under an occluder: dropping whole blobs
  that touch a feature also erased the lips whenever an occluder reached
  the mouth corner.

All functions work on any image grid (the original photo or the aligned
crop) given landmarks in that grid's pixel coordinates, and return
``[H, W] bool``.
"""

import dataclasses
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

from facegcn_tf.data import image_io
from facegcn_tf.data.landmark_indices import FACE_OVAL, FEATURE_LOOPS, LEFT_EYE, RIGHT_EYE

_SUBPIXEL_BITS = 4
_MAX_FIT_SAMPLES = 5000
# Median CrCb distance from grey (8-bit levels) below which a face is treated
# as colourless (a grey-level photo); skin in colour photos is at 20-60.
_MIN_SKIN_SATURATION = 4.0
_NOSE_TIP = 1   # MediaPipe face-mesh index
_UPPER_SEED_SHARE = 0.25


def _chi2_2dof(p: float) -> float:
  """Quantile of the chi-square distribution with 2 degrees of freedom."""
  return float(-2.0 * np.log1p(-p))


def _check_points(points468: np.ndarray) -> np.ndarray:
  points = np.asarray(points468, dtype=np.float64)
  if points.ndim != 2 or points.shape[0] < 468 or points.shape[1] < 2:
    raise ValueError(f"expected [468, 2+] landmarks, got shape {points.shape}")
  if not np.all(np.isfinite(points[:, :2])):
    raise ValueError("landmarks contain NaN or inf")
  return points[:, :2]


def _fill(mask: np.ndarray, polygon: np.ndarray, offset: Tuple[int, int] = (0, 0)) -> None:
  scaled = np.rint((polygon - np.asarray(offset)) * (1 << _SUBPIXEL_BITS)).astype(np.int32)
  cv2.fillPoly(mask, [scaled], 1, lineType=cv2.LINE_8, shift=_SUBPIXEL_BITS)


def _face_scale(points: np.ndarray) -> float:
  """Inter-ocular distance in pixels (eye-centre to eye-centre)."""
  right = points[list(RIGHT_EYE)].mean(axis=0)
  left = points[list(LEFT_EYE)].mean(axis=0)
  return float(np.linalg.norm(left - right))


def oval_polygon(points468: np.ndarray, forehead: float = 0.0) -> np.ndarray:
  """[36, 2] face-oval polygon, optionally raised at the forehead.

  Args:
    points468: [468, 2+] landmarks.
    forehead: oval points above the eye line move up (away from the chin) by
      ``forehead`` times their height above the eye line.
  """
  points = _check_points(points468)
  oval = points[list(FACE_OVAL)].copy()
  if forehead > 0:
    eyes = (points[list(RIGHT_EYE)].mean(axis=0) + points[list(LEFT_EYE)].mean(axis=0)) / 2
    chin = points[152]
    up = eyes - chin
    up /= max(np.linalg.norm(up), 1e-9)
    height = (oval - eyes) @ up
    oval += forehead * np.maximum(height, 0.0)[:, None] * up[None, :]
  return oval


def region_mask(points468: np.ndarray, shape: Sequence[int], forehead: float = 0.0) -> np.ndarray:
  """Filled face oval.

  Args:
    points468: [468, 2+] landmarks in the target grid's pixel coordinates.
    shape: (H, W, ...) of the target grid.
    forehead: see :func:`oval_polygon`.

  Returns:
    [H, W] bool.
  """
  mask = np.zeros(tuple(shape[:2]), dtype=np.uint8)
  _fill(mask, oval_polygon(points468, forehead))
  return mask.astype(bool)


def feature_mask(points468: np.ndarray, shape: Sequence[int]) -> np.ndarray:
  """[H, W] bool union of the eyebrow, eye and (outer) lip polygons."""
  points = _check_points(points468)
  mask = np.zeros(tuple(shape[:2]), dtype=np.uint8)
  for loop in FEATURE_LOOPS.values():
    _fill(mask, points[list(loop)])
  return mask.astype(bool)


def _disk(radius: float) -> np.ndarray:
  r = max(int(round(radius)), 1)
  return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


def _ridge(cov: np.ndarray) -> np.ndarray:
  """Keeps a covariance invertible (flat-colour samples) without changing its scale."""
  return cov + np.eye(cov.shape[0]) * (1e-4 * np.trace(cov) / cov.shape[0] + 1e-6)


def robust_gaussian(samples: np.ndarray, support: float = 0.6, steps: int = 10,
                    reweight_p: float = 0.975) -> Tuple[np.ndarray, np.ndarray]:
  """Robust mean and covariance of 2-D samples (MCD-style).

  Args:
    samples: [N, 2] float.
    support: fraction of samples the trimmed estimate is built from.
    steps: C-step iterations.
    reweight_p: chi-square quantile that defines inliers for the final
      reweighted estimate.

  Returns:
    (mean [2], cov [2, 2]).
  """
  samples = np.asarray(samples, dtype=np.float64)
  n = samples.shape[0]
  if samples.ndim != 2 or samples.shape[1] != 2 or n < 10:
    raise ValueError(f"need [N >= 10, 2] samples, got {samples.shape}")
  h = max(int(support * n), 5)
  mean = np.median(samples, axis=0)
  mad = np.median(np.abs(samples - mean), axis=0) * 1.4826
  cov = _ridge(np.diag(mad ** 2))
  subset = None
  for _ in range(steps):
    d2 = _mahalanobis2(samples, mean, cov)
    new_subset = np.argpartition(d2, h - 1)[:h]
    if subset is not None and np.array_equal(np.sort(new_subset), np.sort(subset)):
      break
    subset = new_subset
    mean = samples[subset].mean(axis=0)
    cov = _ridge(np.cov(samples[subset].T))
  # Consistency: rescale so the median distance matches a Gaussian's.
  d2 = _mahalanobis2(samples, mean, cov)
  cov = _ridge(cov * (np.median(d2) / _chi2_2dof(0.5)))
  inliers = _mahalanobis2(samples, mean, cov) <= _chi2_2dof(reweight_p)
  if inliers.sum() >= 10:
    mean = samples[inliers].mean(axis=0)
    cov = _ridge(np.cov(samples[inliers].T))
  return mean, cov


def _hue_saturation(ycrcb: np.ndarray, reference: np.ndarray) -> np.ndarray:
  """[..., 2] (hue angle, log saturation) of the CrCb chroma.

  Shading scales saturation but keeps hue, so skin in shadow or a
  blood-rich fold stays close in hue while its log-saturation spread is
  learnt from the samples. Hue is measured from the circular mean hue of the
  ``reference`` pixels so that it never wraps inside the skin cluster.
  """
  cr = ycrcb[..., 1] - 128.0
  cb = ycrcb[..., 2] - 128.0
  hue = np.arctan2(cr, cb)
  ref = np.angle(np.mean(np.exp(1j * hue[reference])))
  hue = np.angle(np.exp(1j * (hue - ref)))
  return np.stack([hue, np.log1p(np.hypot(cr, cb))], axis=-1)


def _mahalanobis2(x: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
  """Squared Mahalanobis distances, [..., 2] -> [...].

  The 2x2 inverse is written out; a general einsum was the mask's bottleneck.
  """
  inv = np.linalg.inv(cov)
  dx = x[..., 0] - mean[0]
  dy = x[..., 1] - mean[1]
  return inv[0, 0] * dx * dx + (inv[0, 1] + inv[1, 0]) * dx * dy + inv[1, 1] * dy * dy


@dataclasses.dataclass(frozen=True)
class FaceMasks:
  """All masks of one face, [H, W] bool each."""
  region: np.ndarray
  skin: np.ndarray
  face: np.ndarray


def _roi(points: np.ndarray, shape: Sequence[int], margin: int) -> Tuple[int, int, int, int]:
  height, width = int(shape[0]), int(shape[1])
  x0 = int(np.clip(np.floor(points[:, 0].min()) - margin, 0, width))
  y0 = int(np.clip(np.floor(points[:, 1].min()) - margin, 0, height))
  x1 = int(np.clip(np.ceil(points[:, 0].max()) + margin + 1, 0, width))
  y1 = int(np.clip(np.ceil(points[:, 1].max()) + margin + 1, 0, height))
  return x0, y0, x1, y1


def face_masks(image: np.ndarray, points468: np.ndarray, forehead: float = 0.0,
               chroma_p: float = 0.999, min_luma_ratio: float = 0.45,
               min_blob: float = 0.01, valid: Optional[np.ndarray] = None) -> FaceMasks:
  """Region, skin and face masks of one face.

  Args:
    image: [H, W, 3] uint8 RGB.
    points468: [468, 2+] landmarks in ``image`` pixel coordinates.
    forehead: forehead extension of the region (see :func:`oval_polygon`).
    chroma_p: chi-square quantile of the skin-chroma Gaussian that still
      counts as skin.
    min_luma_ratio: pixels darker than this fraction of the skin's median
      luma are not skin.
    min_blob: non-skin pieces outside the features smaller than this fraction
      of the region area are kept in the face mask (highlights, pores);
      larger ones are occluders.
    valid: optional [H, W] bool of pixels that hold photo content (e.g.
      ``AlignedFace.valid``); the rest is excluded.

  Returns:
    :class:`FaceMasks`.

  Raises:
    ValueError: malformed inputs, or a face region too small to model.
  """
  image = image_io.ensure_rgb_uint8(image)
  points = _check_points(points468)
  shape = image.shape[:2]
  oval = oval_polygon(points, forehead)
  scale = max(_face_scale(points), 1.0)
  x0, y0, x1, y1 = _roi(oval, shape, margin=int(0.2 * scale) + 2)
  if x1 <= x0 or y1 <= y0:
    raise ValueError("face region lies outside the image")
  offset = (x0, y0)
  roi_shape = (y1 - y0, x1 - x0)

  region = np.zeros(roi_shape, dtype=np.uint8)
  _fill(region, oval, offset)
  if valid is not None:
    valid = np.asarray(valid, dtype=bool)
    if valid.shape != shape:
      raise ValueError(f"valid mask shape {valid.shape} does not match the image {shape}")
    region &= valid[y0:y1, x0:x1].astype(np.uint8)
  features = np.zeros(roi_shape, dtype=np.uint8)
  for loop in FEATURE_LOOPS.values():
    _fill(features, points[list(loop)], offset)
  features &= region

  # Skin samples: the region away from its border and from the features.
  grow = _disk(0.08 * scale)
  near_features = cv2.dilate(features, grow)
  seed = (cv2.erode(region, _disk(0.1 * scale)) & (1 - near_features)).astype(bool)
  ycrcb = cv2.cvtColor(image[y0:y1, x0:x1], cv2.COLOR_RGB2YCrCb).astype(np.float64)
  if int(seed.sum()) < 50:
    raise ValueError(f"face region too small for a skin-colour model ({int(seed.sum())} px)")
  # The upper face (above the nose tip) seeds the colour model when it has enough pixels:
  # a surgical mask or a beard covers the lower face, often more than the estimator's
  # breakdown point, while hair, a hat brim or sunglasses leave the cheeks.
  upper = seed.copy()
  upper[max(0, int(np.ceil(points[_NOSE_TIP, 1])) - y0):] = False
  if upper.sum() >= max(50, _UPPER_SEED_SHARE * seed.sum()):
    seed = upper
  saturation = np.hypot(ycrcb[..., 1] - 128.0, ycrcb[..., 2] - 128.0)
  if np.median(saturation[seed]) < _MIN_SKIN_SATURATION:
    # A grey-level photo: chroma says nothing, only the luma test is left.
    chroma_ok = np.ones(roi_shape, dtype=bool)
  else:
    chroma = _hue_saturation(ycrcb, seed)
    samples = chroma[seed]
    # A fixed stride keeps the fit deterministic and its cost bounded.
    mean, cov = robust_gaussian(samples[::max(1, samples.shape[0] // _MAX_FIT_SAMPLES)])
    chroma_ok = _mahalanobis2(chroma, mean, cov) <= _chi2_2dof(chroma_p)
  inlier_luma = ycrcb[seed & chroma_ok, 0]
  luma_ref = float(np.median(inlier_luma if inlier_luma.size else ycrcb[seed, 0]))
  skin = chroma_ok & (ycrcb[..., 0] >= min_luma_ratio * luma_ref)
  skin = cv2.morphologyEx(skin.astype(np.uint8) & region, cv2.MORPH_OPEN, _disk(1))

  # Occluders: sizeable non-skin pieces outside the (grown) features.
  nonskin = region & (1 - skin)
  area_min = min_blob * max(int(region.sum()), 1)
  count, labels, stats, _ = cv2.connectedComponentsWithStats(nonskin & (1 - near_features),
                                                             connectivity=8)
  big = stats[:, cv2.CC_STAT_AREA] >= area_min
  big[0] = False
  occluder = big[labels]
  # region = skin | features | small non-skin specks | occluders.
  face = region.astype(bool) & ~occluder

  def full(roi_mask):
    out = np.zeros(shape, dtype=bool)
    out[y0:y1, x0:x1] = roi_mask.astype(bool)
    return out

  return FaceMasks(region=full(region), skin=full(skin), face=full(face))


def skin_mask(image: np.ndarray, points468: np.ndarray, **kwargs) -> np.ndarray:
  """[H, W] bool skin pixels inside the face region (see :func:`face_masks`)."""
  return face_masks(image, points468, **kwargs).skin


def face_mask(image: np.ndarray, points468: np.ndarray, **kwargs) -> np.ndarray:
  """[H, W] bool loss mask: skin, brows, eyes, nose, mouth; no occluders."""
  return face_masks(image, points468, **kwargs).face
