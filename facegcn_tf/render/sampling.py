"""Image colours at projected vertices, with visibility from the z-buffer.

This is the paper's T_p (§3.4.3): the photo's colour under each projected vertex and a
visibility flag. The official code decides visibility by the normal's sign and the skin mask
only; here a vertex must also be the front-most surface at its pixel (z-buffer test), so a
nose does not "see" the cheek behind it.
"""

import tensorflow as tf


def bilinear_sample(image: tf.Tensor, points: tf.Tensor) -> tf.Tensor:
  """Bilinear lookup, differentiable w.r.t. the image and the points.

  Args:
    image: [B, H, W, C].
    points: [B, V, 2] pixel coordinates (x, y), pixel centres at integers; clamped to the
      image.

  Returns:
    [B, V, C].
  """
  height, width = tf.shape(image)[1], tf.shape(image)[2]
  x = tf.clip_by_value(points[..., 0], 0.0, tf.cast(width - 1, points.dtype))
  y = tf.clip_by_value(points[..., 1], 0.0, tf.cast(height - 1, points.dtype))
  x0, y0 = tf.floor(x), tf.floor(y)
  wx, wy = (x - x0)[..., tf.newaxis], (y - y0)[..., tf.newaxis]
  x0i, y0i = tf.cast(x0, tf.int32), tf.cast(y0, tf.int32)
  x1i, y1i = tf.minimum(x0i + 1, width - 1), tf.minimum(y0i + 1, height - 1)

  def at(yi, xi):
    return tf.gather_nd(image, tf.stack([yi, xi], axis=-1), batch_dims=1)

  top = at(y0i, x0i) * (1 - wx) + at(y0i, x1i) * wx
  bottom = at(y1i, x0i) * (1 - wx) + at(y1i, x1i) * wx
  return top * (1 - wy) + bottom * wy


def nearest_pixel(points: tf.Tensor, height, width):
  """[B, V, 2] (x, y) -> ([B, V, 2] int32 (row, col) clamped, [B, V] bool in-bounds)."""
  col = tf.cast(tf.round(points[..., 0]), tf.int32)
  row = tf.cast(tf.round(points[..., 1]), tf.int32)
  inside = (col >= 0) & (col < width) & (row >= 0) & (row < height)
  rc = tf.stack([tf.clip_by_value(row, 0, height - 1), tf.clip_by_value(col, 0, width - 1)], -1)
  return rc, inside


def vertex_visibility(pixels: tf.Tensor,
                      vertex_depth: tf.Tensor,
                      depth_buffer: tf.Tensor,
                      coverage: tf.Tensor,
                      facing: tf.Tensor,
                      tolerance: float) -> tf.Tensor:
  """Which vertices are seen by the camera.

  Args:
    pixels: [B, V, 2] projected vertex positions (x, y).
    vertex_depth: [B, V] distance of each vertex along the viewing axis.
    depth_buffer: [B, H, W] distance of the visible surface at each pixel (same unit).
    coverage: [B, H, W] 1 where the mesh covers the pixel.
    facing: [B, V] bool, the vertex normal points towards the camera.
    tolerance: how far behind the visible surface a vertex may lie and still count
      (surfaces are sampled at pixel centres, not at vertices).

  Returns:
    [B, V] float32 in {0, 1}.
  """
  height, width = tf.shape(depth_buffer)[1], tf.shape(depth_buffer)[2]
  rc, inside = nearest_pixel(pixels, height, width)
  surface = tf.gather_nd(depth_buffer, rc, batch_dims=1)
  covered = tf.gather_nd(coverage, rc, batch_dims=1) > 0.5
  front = vertex_depth <= surface + tolerance
  return tf.cast(inside & covered & front & facing, tf.float32)
