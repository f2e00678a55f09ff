"""Iris colour and size, and teeth colour, read from the aligned photo where it shows them.

``eye_mouth_colors(crop, landmarks)`` looks inside the 68-landmark eye contours (36-41,
42-47) and the inner-lip contour (60-67) of the aligned crop:

* **iris**: eye-contour pixels darker than the contour's median luminance are iris, pupil
  or lashes; the iris colour is the median of the brighter half of those (the darkest are
  pupil and lashes; a red result, i.e. skin or lid shadow, is pulled halfway to a brown of the
  same brightness), its size the width of the mostly-dark columns over the corner-to-corner eye
  width (an adult iris is ~11.7 mm, an eye ~30 mm: 0.39), clamped to a plausible range and
  turned into the eyeball-relative radius the painter uses. An eye too closed or too small
  (fewer than ``MIN_PIXELS`` pixels) keeps the default.
* **teeth**: the bright, low-saturation pixels inside an open mouth; their median colour,
  brightened to a luminance of at least 0.8 (teeth in photos sit in the mouth's shadow).

Colours are the photo's (lit) colours scaled by the ratio of the face's albedo to the
photo's skin brightness (``albedo_gain``), so they sit with the albedo textures.
"""

from typing import Dict

import cv2
import numpy as np

from facegcn_tf.export.head_mesh import EyeMouthColors
from facegcn_tf.morphable import albedo as albedo_lib

MIN_PIXELS = 12
_EYES = ((36, 42), (42, 48))
_INNER_MOUTH = (60, 68)
_IRIS_TO_EYE = (0.30, 0.48)  # iris width / eye width, accepted range
# Eyeball-relative iris radius at the typical ratio 0.39 (11.7 mm iris, ~12 mm eyeball).
_RADIUS_AT_TYPICAL = 0.49
_TYPICAL_RATIO = 0.39


def _polygon_pixels(crop: np.ndarray, points: np.ndarray):
  mask = np.zeros(crop.shape[:2], np.uint8)
  cv2.fillPoly(mask, [np.round(points).astype(np.int32)], 1)
  ys, xs = np.nonzero(mask)
  return crop[ys, xs].astype(np.float32) / 255.0, xs


def eye_mouth_colors(crop: np.ndarray, landmarks: np.ndarray,
                     albedo_gain: float = 1.0) -> EyeMouthColors:
  """Eye and mouth colours of one face (see the module docstring).

  Args:
    crop: [S, S, 3] uint8 aligned photo.
    landmarks: [68, 2] landmarks in crop pixels.
    albedo_gain: factor from photo colour to albedo (face albedo / photo skin brightness).
  """
  crop = np.asarray(crop)
  landmarks = np.asarray(landmarks, np.float32)
  default = EyeMouthColors()
  sources: Dict[str, str] = {"iris": "default", "teeth": "default"}
  irises, ratios = [], []
  for start, end in _EYES:
    points = landmarks[start:end]
    pixels, xs = _polygon_pixels(crop, points)
    if len(pixels) < MIN_PIXELS:
      continue
    luma = albedo_lib.luma(pixels)
    dark = luma < np.median(luma)
    if dark.sum() < MIN_PIXELS // 2:
      continue
    dark_pixels, dark_luma = pixels[dark], luma[dark]
    irises.append(np.median(dark_pixels[dark_luma >= np.median(dark_luma)], axis=0))
    width = np.linalg.norm(points[3] - points[0])
    # Iris columns: most of the column's eye pixels are dark (lashes darken only a few).
    columns = np.unique(xs)
    dark_share = np.array([dark[xs == c].mean() for c in columns])
    if width > 4:
      ratios.append(float(np.sum(dark_share > 0.6)) / width)
  iris, radius = default.iris, default.iris_radius
  if irises:
    colour = np.clip(np.median(irises, axis=0) * albedo_gain, 0.02, 0.8)
    if colour[0] > 1.8 * colour[1]:  # red: skin or lid shadow, not an iris hue
      default_rgb = np.asarray(default.iris)
      colour = 0.5 * colour + 0.5 * default_rgb * (albedo_lib.luma(colour[None])[0] /
                                                   albedo_lib.luma(default_rgb[None])[0])
    iris = tuple(float(c) for c in colour)
    sources["iris"] = f"photo ({len(irises)} eye(s))"
  if ratios:
    ratio = float(np.clip(np.median(ratios), *_IRIS_TO_EYE))
    radius = float(np.clip(_RADIUS_AT_TYPICAL * ratio / _TYPICAL_RATIO, 0.38, 0.6))
    sources["iris_radius"] = f"photo (iris/eye width {ratio:.2f})"

  teeth = default.teeth
  pixels, _ = _polygon_pixels(crop, landmarks[_INNER_MOUTH[0]:_INNER_MOUTH[1]])
  if len(pixels) >= MIN_PIXELS:
    luma = albedo_lib.luma(pixels)
    saturation = pixels.max(axis=1) - pixels.min(axis=1)
    bright = (luma >= np.percentile(luma, 60)) & (saturation < 0.25)
    if bright.sum() >= MIN_PIXELS // 2:
      colour = np.median(pixels[bright], axis=0)
      colour = colour * max(1.0, 0.8 / max(float(albedo_lib.luma(colour[None])[0]), 1e-3))
      # Keep them teeth-coloured: at most a slight warm tint.
      colour = 0.5 * np.clip(colour, 0, 0.97) + 0.5 * np.asarray(default.teeth)
      teeth = tuple(float(c) for c in colour)
      sources["teeth"] = "photo (brightened)"
  return EyeMouthColors(iris=iris, iris_radius=radius, teeth=teeth, sources=sources,
                        landmarks=landmarks, albedo_gain=float(albedo_gain))


__all__ = ["eye_mouth_colors"]
