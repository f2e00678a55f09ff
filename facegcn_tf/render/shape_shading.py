"""The geometry alone, for people: uniform gray albedo under one fixed light.

One directional light plus ambient, in camera space, so every pose is lit from the same side
of the picture (the "shape" panel of the comparison strip, turntables of the bare mesh).
"""

from typing import Sequence

import numpy as np
import tensorflow as tf

from facegcn_tf.render.renderer import FaceRenderer
from facegcn_tf.render.renderer import Rendering

SHAPE_GRAY = 0.72
SHAPE_AMBIENT = 0.3
# Light from the upper left of the picture, in front of the face (camera space: x right,
# y up, z towards the camera).
SHAPE_LIGHT = (-0.35, 0.45, 0.82)


def shape_colors(normals: tf.Tensor, gray: float = SHAPE_GRAY, ambient: float = SHAPE_AMBIENT,
                 light_direction: Sequence[float] = SHAPE_LIGHT) -> tf.Tensor:
  """Gray Lambertian shading of posed normals under a fixed camera-space light.

  Args:
    normals: [B, V, 3] posed unit normals (``FaceGeometry.normals``).
    gray: albedo.
    ambient: ambient fraction; the directional part has weight ``1 - ambient``.
    light_direction: direction towards the light (normalised here).

  Returns:
    [B, V, 3] colours in [0, gray].
  """
  normals = tf.convert_to_tensor(normals, tf.float32)
  light = np.asarray(light_direction, np.float64)
  if light.shape != (3,) or not np.linalg.norm(light) > 0:
    raise ValueError(f"light_direction must be a non-zero 3-vector, got {light_direction!r}")
  light = tf.constant(light / np.linalg.norm(light), tf.float32)
  diffuse = tf.maximum(tf.reduce_sum(normals * light, axis=-1, keepdims=True), 0.0)
  shade = gray * (ambient + (1.0 - ambient) * diffuse)
  return tf.tile(shade, [1, 1, 3])


def shape_render(renderer: FaceRenderer, coeffs: tf.Tensor, geometry=None, raster=None,
                 **shading) -> Rendering:
  """Renders the geometry of ``coeffs`` with :func:`shape_colors` (on black)."""
  geometry = geometry if geometry is not None else renderer.geometry(coeffs)
  colors = shape_colors(geometry.normals, **shading)
  return renderer.render(coeffs, vertex_colors=colors, lit=False, geometry=geometry, raster=raster)


__all__ = ["SHAPE_AMBIENT", "SHAPE_GRAY", "SHAPE_LIGHT", "shape_colors", "shape_render"]
