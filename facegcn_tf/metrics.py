"""The quality figures, one home each: masked PSNR, masked SSIM, landmark NME, identity distance,
the face region and an overlay's spill.

Used by the pipeline (each face's JSON), the trainers (TensorBoard), the evaluation
scripts and the benchmarks, so a figure means the same thing everywhere.

* :func:`masked_psnr` is a TensorFlow function (it runs inside the trainers'
  ``tf.function`` steps) that also takes numpy arrays; any leading batch shape.
* :func:`masked_ssim` uses scikit-image's Gaussian-window SSIM (numpy, one image).
* :func:`landmark_nme` is numpy, normalised by the target's outer-eye-corner distance.
* :func:`identity_distance` is dlib's L2 convention on identity features (< 0.6: the same
  person), differentiable.
* :func:`face_region_mask` is the face region the overlay figures are judged in (the
  68-landmark hull raised over the forehead, slightly dilated); :func:`changed_pixels`,
  :func:`spill` and :func:`region_figures` judge an overlay against its photo (numpy).
* :func:`masked_mean` averages a map (e.g. an occlusion estimate) over a mask.
"""

from typing import Dict, Optional, Tuple

import cv2

import numpy as np
import tensorflow as tf

# iBUG-68 outer eye corners (left eye's 37th point, right eye's 46th, 0-based).
OUTER_EYE_CORNERS = (36, 45)


def masked_psnr(image, rendered, mask, peak: float = 255.0,
                value_range: Optional[Tuple[float, float]] = None) -> tf.Tensor:
  """PSNR (dB) of a render against a photo inside a mask.

  Args:
    image: [..., H, W, C] the photo.
    rendered: [..., H, W, C] the render, clipped to `value_range` first.
    mask: [..., H, W] weights (usually {0, 1}).
    peak: the peak-to-peak value of the colour range (255 for 0..255, 1 for [0, 1],
      2 for [-1, 1]).
    value_range: (low, high) the render is clipped to; default (0, peak).

  Returns:
    [...] float32; NaN where the mask is empty.
  """
  low, high = value_range if value_range is not None else (0.0, peak)
  image = tf.cast(tf.convert_to_tensor(image), tf.float32)
  rendered = tf.clip_by_value(tf.cast(tf.convert_to_tensor(rendered), tf.float32), low, high)
  mask = tf.cast(tf.convert_to_tensor(mask), tf.float32)
  channels = tf.cast(tf.shape(image)[-1], tf.float32)
  squared = tf.reduce_sum(tf.square(image - rendered), axis=-1) * mask
  count = channels * tf.reduce_sum(mask, axis=[-2, -1])
  mse = tf.reduce_sum(squared, axis=[-2, -1]) / tf.maximum(count, 1e-12)
  psnr = 10.0 * tf.math.log(peak * peak / tf.maximum(mse, 1e-12)) / tf.math.log(10.0)
  return tf.where(count > 0, psnr, tf.fill(tf.shape(psnr), float("nan")))


def masked_ssim(image: np.ndarray, rendered: np.ndarray, mask: np.ndarray) -> float:
  """Mean SSIM (Gaussian window, scikit-image) of a render vs a photo over a mask.

  Args:
    image: [H, W, 3] the photo in [0, 1].
    rendered: [H, W, 3] the render (clipped to [0, 1]).
    mask: [H, W] where to average the SSIM map.

  Returns:
    The mean over the mask's pixels (channels averaged); NaN for an empty mask.
  """
  from skimage.metrics import structural_similarity  # pylint: disable=import-outside-toplevel
  inside = np.asarray(mask) > 0.5
  if not inside.any():
    return float("nan")
  _, ssim_map = structural_similarity(np.asarray(image, np.float64),
                                      np.clip(np.asarray(rendered, np.float64), 0, 1),
                                      channel_axis=-1, data_range=1.0, gaussian_weights=True,
                                      full=True)
  return float(ssim_map.mean(axis=-1)[inside].mean())


def landmark_nme(predicted: np.ndarray, target: np.ndarray) -> np.ndarray:
  """[..., 68, 2] x [..., 68, 2] -> [...] mean point distance / outer-eye-corner distance of `target`."""
  predicted = np.asarray(predicted, np.float64)
  target = np.asarray(target, np.float64)
  if predicted.shape != target.shape or predicted.shape[-2:] != (68, 2):
    raise ValueError(f"need [..., 68, 2] landmarks, got {predicted.shape} and {target.shape}")
  left, right = OUTER_EYE_CORNERS
  ocular = np.linalg.norm(target[..., left, :] - target[..., right, :], axis=-1)
  return np.mean(np.linalg.norm(predicted - target, axis=-1), axis=-1) / np.maximum(ocular, 1e-9)


def identity_distance(a, b) -> tf.Tensor:
  """L2 distance [..., D] x [..., D] -> [...] (dlib's convention; < 0.6 = same person).

  A 1e-12 inside the square root keeps the gradient finite at a == b.
  """
  a = tf.cast(tf.convert_to_tensor(a), tf.float32)
  b = tf.cast(tf.convert_to_tensor(b), tf.float32)
  return tf.sqrt(tf.reduce_sum(tf.square(a - b), axis=-1) + 1e-12)


# iBUG-68 groups used by the face region.
_BROWS = tuple(range(17, 27))
_CHIN = 8
# Face region: the brows are lifted by this share of the brow-to-chin distance (about the
# forehead's height, brow to hairline), then the hull is dilated by DILATION of it.
FOREHEAD_LIFT = 0.35
REGION_DILATION = 0.04
# An overlay pixel counts as changed when a channel moves by more than this (0..255 levels):
# one level of rounding in the warp is not a change.
CHANGE_TOLERANCE = 2


def face_region_polygon(landmarks68: np.ndarray) -> np.ndarray:
  """[68, 2] iBUG landmarks (x, y) -> [P, 2] convex hull of the raised face, float64.

  The hull of the 68 points plus copies of the 10 brow points moved "up" (from the chin,
  point 8, towards the brows' mean) by ``FOREHEAD_LIFT`` x the brow-to-chin distance.
  """
  points = np.asarray(landmarks68, dtype=np.float64)
  if points.shape != (68, 2) or not np.all(np.isfinite(points)):
    raise ValueError(f"landmarks68 must be finite [68, 2], got shape {points.shape}")
  brows = points[list(_BROWS)]
  up = brows.mean(axis=0) - points[_CHIN]
  height = float(np.linalg.norm(up))
  if height <= 0:
    raise ValueError("degenerate landmarks: the brows sit on the chin")
  raised = brows + FOREHEAD_LIFT * up
  hull = cv2.convexHull(np.concatenate([points, raised]).astype(np.float32))
  return hull.reshape(-1, 2).astype(np.float64)


def face_region_mask(landmarks68: np.ndarray, shape: Tuple[int, int]) -> np.ndarray:
  """The face region of a photo: where an overlay may change pixels.

  The convex hull of the 68 landmarks and the brows raised over the forehead
  (:func:`face_region_polygon`), filled, then dilated by a disc of radius
  ``REGION_DILATION`` x the brow-to-chin distance (at least 1 px).

  Args:
    landmarks68: [68, 2] iBUG points (x, y) in the pixels of the grid `shape` describes.
    shape: (H, W) of the grid (the photo, or the aligned crop).

  Returns:
    [H, W] bool.
  """
  height, width = int(shape[0]), int(shape[1])
  polygon = face_region_polygon(landmarks68)
  points = np.asarray(landmarks68, dtype=np.float64)
  scale = float(np.linalg.norm(points[list(_BROWS)].mean(axis=0) - points[_CHIN]))
  radius = max(1, int(round(REGION_DILATION * scale)))
  # Fill in a padded frame so dilation works for hulls that leave the grid.
  pad = radius + 1
  mask = np.zeros((height + 2 * pad, width + 2 * pad), np.uint8)
  bits = 4
  cv2.fillPoly(mask, [np.rint((polygon + pad) * (1 << bits)).astype(np.int32)], 1,
               lineType=cv2.LINE_8, shift=bits)
  disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
  mask = cv2.dilate(mask, disc)
  return mask[pad:pad + height, pad:pad + width].astype(bool)


def changed_pixels(photo: np.ndarray, overlay: np.ndarray,
                   tolerance: float = CHANGE_TOLERANCE) -> np.ndarray:
  """[H, W, 3] x [H, W, 3] (0..255) -> [H, W] bool: some channel moved by > `tolerance`."""
  photo = np.asarray(photo)
  overlay = np.asarray(overlay)
  if photo.shape != overlay.shape or photo.ndim != 3:
    raise ValueError(f"photo {photo.shape} and overlay {overlay.shape} must be equal [H, W, C]")
  diff = np.abs(overlay.astype(np.float32) - photo.astype(np.float32))
  return diff.max(axis=-1) > tolerance


def spill(photo: np.ndarray, overlay: np.ndarray, region: np.ndarray,
          tolerance: float = CHANGE_TOLERANCE) -> float:
  """Share of the pixels an overlay changes that lie outside the face region.

  Args:
    photo: [H, W, 3] the photo (0..255).
    overlay: [H, W, 3] the overlay of the same photo (0..255).
    region: [H, W] bool, the face region (:func:`face_region_mask`).
    tolerance: see :func:`changed_pixels`.

  Returns:
    In [0, 1]: 0 when every change is inside the region; NaN when nothing changed.
  """
  changed = changed_pixels(photo, overlay, tolerance)
  region = np.asarray(region, bool)
  if region.shape != changed.shape:
    raise ValueError(f"region {region.shape} must match the photo {changed.shape}")
  count = int(changed.sum())
  if count == 0:
    return float("nan")
  return float((changed & ~region).sum()) / count


def _bounding_crop(mask: np.ndarray, margin: int) -> Tuple[slice, slice]:
  rows = np.flatnonzero(mask.any(axis=1))
  cols = np.flatnonzero(mask.any(axis=0))
  return (slice(max(0, rows[0] - margin), rows[-1] + margin + 1),
          slice(max(0, cols[0] - margin), cols[-1] + margin + 1))


def region_figures(photo: np.ndarray, overlay: np.ndarray, region: np.ndarray,
                   tolerance: float = CHANGE_TOLERANCE) -> Dict[str, float]:
  """An overlay judged against its photo: spill, and PSNR / SSIM inside the face region.

  SSIM is computed on the region's bounding box plus a margin wider than its Gaussian
  window, which gives the same values inside the region as on the whole image.

  Args:
    photo: [H, W, 3] uint8 (or 0..255) the photo.
    overlay: [H, W, 3] the overlay of the same size.
    region: [H, W] bool the face region.
    tolerance: see :func:`changed_pixels`.

  Returns:
    ``spill`` (see :func:`spill`), ``psnr_db`` and ``ssim`` inside the region (NaN for an
    empty region), ``region_changed``: the share of the region's pixels the overlay changes.
  """
  region = np.asarray(region, bool)
  out = {"spill": spill(photo, overlay, region, tolerance), "psnr_db": float("nan"),
         "ssim": float("nan"), "region_changed": float("nan")}
  if not region.any():
    return out
  rows, cols = _bounding_crop(region, margin=8)
  photo_unit = np.asarray(photo, np.float32)[rows, cols] / 255.0
  overlay_unit = np.asarray(overlay, np.float32)[rows, cols] / 255.0
  inside = region[rows, cols]
  out["psnr_db"] = float(masked_psnr(photo_unit, overlay_unit, inside.astype(np.float32),
                                     peak=1.0))
  out["ssim"] = masked_ssim(photo_unit, overlay_unit, inside)
  changed = changed_pixels(photo, overlay, tolerance)
  out["region_changed"] = float(changed[region].mean())
  return out


def masked_mean(values: np.ndarray, mask: np.ndarray) -> float:
  """Mean of [..., H, W] `values` weighted by [..., H, W] `mask`; NaN for an empty mask."""
  values = np.asarray(values, np.float64)
  mask = np.asarray(mask, np.float64)
  total = float(mask.sum())
  return float((values * mask).sum() / total) if total > 0 else float("nan")


__all__ = ["CHANGE_TOLERANCE", "FOREHEAD_LIFT", "OUTER_EYE_CORNERS", "REGION_DILATION",
           "changed_pixels", "face_region_mask", "face_region_polygon", "identity_distance",
           "landmark_nme", "masked_mean", "masked_psnr", "masked_ssim", "region_figures",
           "spill"]
