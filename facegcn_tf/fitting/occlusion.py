"""Occlusion masks estimated per photo from what the face model cannot explain.

No face-parsing network can be obtained offline, so occluders (hair over the forehead,
glasses, sunglasses, hands, hats, surgical masks) are segmented the way FOCUS does it (Li et
al., CVPR 2023, "Robust Model-based Face Reconstruction through Weakly-Supervised Outlier
Segmentation"): the face model is fitted to the pixels it is told to trust, the pixels it
then fails to explain are outliers, and the fit is repeated on the inliers. FOCUS learns
the segmentation with a network; here it is a per-photo statistical test, combined with
the photo's own skin-colour model (`data.face_mask`, whose non-skin pieces outside the
facial features are occluders already):

* residual: ``e = ||I - R|| / 255`` per pixel between the photo and the lit coarse render;
* inlier scale: robust (median, 1.4826 x MAD) statistics of ``e`` over the pixels the fit
  trusted;
* outlier: ``e > median + k * scale`` (``k = OcclusionConfig.threshold``), with ``k`` raised
  by ``feature_factor`` inside the eyes, brows and lips (a smooth 3DMM albedo explains them
  worst, and they belong to the face), or outside the skin-colour model;
* cleaning: a morphological opening drops single-pixel speckle (pores, noise), pieces
  smaller than ``min_area`` of the face are dropped, and the rest is grown by ``grow`` px.

Everything is per image and runs on numpy/OpenCV once or twice per fit.
"""

import dataclasses
from typing import Optional

import cv2
import numpy as np

# 0-based iBUG indices of the facial features whose colour a smooth albedo cannot explain.
_BROWS = (tuple(range(17, 22)), tuple(range(22, 27)))
_EYES = (tuple(range(36, 42)), tuple(range(42, 48)))
_LIPS = (tuple(range(48, 60)),)


@dataclasses.dataclass(frozen=True)
class OcclusionConfig:
  """Settings of `estimate_occlusion`.

  Attributes:
    threshold: outlier test ``e > median + threshold * scale``.
    feature_factor: the threshold's factor inside the eyes, brows and lips.
    min_scale: floor of the robust scale (colour units / 255), so a near-perfect fit does
      not call noise an occluder.
    min_area: pieces smaller than this fraction of the rendered face are dropped.
    grow: dilation of the kept pieces, in pixels at 224.
  """
  threshold: float = 3.0
  feature_factor: float = 2.0
  min_scale: float = 0.02
  min_area: float = 0.004
  grow: int = 1

  def __post_init__(self):
    for name in ("threshold", "feature_factor", "min_scale", "min_area"):
      value = getattr(self, name)
      if not (isinstance(value, (int, float)) and np.isfinite(value) and value > 0):
        raise ValueError(f"OcclusionConfig.{name} must be a finite number > 0, got {value!r}")
    if isinstance(self.grow, bool) or not isinstance(self.grow, int) or self.grow < 0:
      raise ValueError(f"OcclusionConfig.grow must be an int >= 0, got {self.grow!r}")


def feature_polygons_mask(landmarks68: np.ndarray, shape) -> np.ndarray:
  """[H, W] bool: the eyes, brows (thickened) and lips of the 68 landmarks.

  Args:
    landmarks68: [68, 2] (x, y) pixel coordinates.
    shape: (H, W).
  """
  points = np.asarray(landmarks68, np.float64)
  out = np.zeros(tuple(shape)[:2], np.uint8)
  scale = max(float(np.ptp(points[:, 0])), 1.0)
  for loop in _EYES + _LIPS:
    cv2.fillPoly(out, [np.rint(points[list(loop)]).astype(np.int32)], 1)
  for brow in _BROWS:
    line = np.rint(points[list(brow)]).astype(np.int32)
    cv2.polylines(out, [line], False, 1, thickness=max(2, int(round(0.06 * scale))))
  grow = max(1, int(round(0.02 * scale)))
  out = cv2.dilate(out, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1,) * 2))
  return out.astype(bool)


def residual_outliers(photo: np.ndarray, render: np.ndarray, region: np.ndarray,
                      trusted: np.ndarray, features: np.ndarray,
                      config: OcclusionConfig = OcclusionConfig()) -> np.ndarray:
  """Pixels of one face that the fitted model does not explain.

  Args:
    photo: [H, W, 3] RGB 0..255.
    render: [H, W, 3] lit render RGB 0..255 (the fit's).
    region: [H, W] bool, where the face is rendered (and the photo is valid).
    trusted: [H, W] bool, the pixels the fit used (inlier statistics come from them).
    features: [H, W] bool, eyes / brows / lips (raised threshold).
    config: the `OcclusionConfig`.

  Returns:
    [H, W] bool outliers inside `region`, cleaned (see the module docstring).
  """
  region = np.asarray(region, bool)
  error = np.linalg.norm(np.asarray(photo, np.float32) - np.asarray(render, np.float32),
                         axis=-1) / 255.0
  sample = error[region & np.asarray(trusted, bool)]
  if sample.size < 50:
    sample = error[region]
  if sample.size < 50:
    return np.zeros(region.shape, bool)
  median = float(np.median(sample))
  scale = max(1.4826 * float(np.median(np.abs(sample - median))), config.min_scale)
  limit = np.where(np.asarray(features, bool), config.feature_factor * config.threshold,
                   config.threshold)
  outliers = region & (error > median + limit * scale)
  return clean_mask(outliers, region, config)


def clean_mask(mask: np.ndarray, region: np.ndarray,
               config: OcclusionConfig = OcclusionConfig()) -> np.ndarray:
  """Opening, small-piece removal and growth of a [H, W] bool mask, kept inside `region`."""
  region = np.asarray(region, bool)
  mask = np.asarray(mask, bool).astype(np.uint8)
  cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
  mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, cross)
  count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
  keep = stats[:, cv2.CC_STAT_AREA] >= config.min_area * max(int(region.sum()), 1)
  keep[0] = False
  mask = keep[labels].astype(np.uint8)
  if config.grow:
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * config.grow + 1,) * 2)
    mask = cv2.dilate(mask, disk)
  return mask.astype(bool) & region


def estimate_occlusion(photos: np.ndarray, renders: np.ndarray, coverage: np.ndarray,
                       face_mask: np.ndarray, features: np.ndarray,
                       config: OcclusionConfig = OcclusionConfig(),
                       oval: Optional[np.ndarray] = None) -> np.ndarray:
  """Occlusion masks of a batch: residual outliers plus the skin model's occluders.

  Args:
    photos: [B, H, W, 3] RGB 0..255 aligned crops.
    renders: [B, H, W, 3] lit coarse renders, RGB 0..255.
    coverage: [B, H, W] render coverage in [0, 1].
    face_mask: [B, H, W] the photo's face mask (skin, features, no skin-model occluders;
      `data.face_mask.face_masks`), in [0, 1].
    features: [B, H, W] bool, the eyes, brows and lips (`feature_polygons_mask` of each
      face's landmarks), where the residual threshold is raised.
    config: the `OcclusionConfig`.
    oval: optional [B, H, W] the face region the skin-colour model judged
      (`FaceMasks.region`); its non-skin pieces count as occluders. None: residuals only.

  Returns:
    [B, H, W] float32 in {0, 1}: 1 where the rendered face is occluded in the photo.
  """
  photos = np.asarray(photos, np.float32)
  out = np.zeros(photos.shape[:3], np.float32)
  for i in range(photos.shape[0]):
    region = np.asarray(coverage[i]) > 0.5
    trusted = np.asarray(face_mask[i]) > 0.5
    parts = np.asarray(features[i], bool)
    outliers = residual_outliers(photos[i], renders[i], region, trusted, parts, config)
    if oval is not None:
      # The skin model's occluders: oval pixels it left out of the face mask. Outside the
      # oval it made no judgement.
      inside = region & (np.asarray(oval[i]) > 0.5)
      outliers |= clean_mask(inside & ~trusted & ~parts, region, config)
    out[i] = outliers.astype(np.float32)
  return out


__all__ = ["OcclusionConfig", "clean_mask", "estimate_occlusion", "feature_polygons_mask",
           "residual_outliers"]
