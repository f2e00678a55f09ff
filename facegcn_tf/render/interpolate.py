"""Per-pixel interpolation of per-vertex attributes from rasterization buffers."""

import tensorflow as tf

from facegcn_tf.render.rasterizer import RasterOutput


def interpolate_attributes(attributes: tf.Tensor,
                           triangles: tf.Tensor,
                           raster: RasterOutput,
                           background: float = 0.0) -> tf.Tensor:
  """Barycentric interpolation of vertex attributes at every pixel.

  Differentiable with respect to `attributes` (and, through the barycentrics, to the
  vertex positions that were rasterized).

  Args:
    attributes: [B, V, C] float per-vertex attributes (colours, normals, ...).
    triangles: [F, 3] or [B, F, 3] int32, the triangles that were rasterized.
    raster: the `RasterOutput` of `rasterize` for these triangles.
    background: value written where `raster.mask` is 0.

  Returns:
    [B, H, W, C] interpolated attributes.
  """
  attributes = tf.convert_to_tensor(attributes)
  triangles = tf.cast(triangles, tf.int32)
  if triangles.shape.rank == 2:
    corner_ids = tf.gather(triangles, raster.triangle_ids)  # [B, H, W, 3]
  else:
    corner_ids = tf.gather(triangles, raster.triangle_ids, batch_dims=1)
  corners = tf.gather(attributes, corner_ids, batch_dims=1)  # [B, H, W, 3, C]
  bary = tf.cast(raster.barycentrics, attributes.dtype)
  values = tf.reduce_sum(corners * bary[..., tf.newaxis], axis=-2)
  covered = raster.mask[..., tf.newaxis] > 0.5
  return tf.where(covered, values, tf.cast(background, attributes.dtype))
