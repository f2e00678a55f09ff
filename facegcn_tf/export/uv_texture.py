"""Baking per-vertex colours into a model's UV layout (a texture image).

The mesh is drawn in UV space with the project's rasterizer op: every (vertex, UV point)
corner (``seams.split_at_seams``) becomes a clip-space point ``(2u - 1, 2v - 1, 0, 1)`` and
carries its vertex's colour; ``render.interpolate_attributes`` fills each covered texel with
the barycentric blend of its triangle's corner colours (``w = 1``, so this is plain linear
interpolation in UV).

Orientation: ``model.uv`` has v up (OBJ / OpenGL: v = 0 is the bottom row of the image) and
the rasterizer writes image rows top-down with row 0 at NDC y = +1, so clip y = 2v - 1
puts v = 1 on row 0 and the returned array is the texture image as it is stored in a PNG
(row 0 = top). Texel (row r, column c) has its centre at
``u = (c + 0.5) / W, v = 1 - (r + 0.5) / H`` (:func:`texel_uv`).

Texels outside the UV charts are filled by **edge padding** (:func:`pad_texture`): each
empty texel within ``padding`` texels of a chart copies the nearest covered texel
(``cv2.distanceTransformWithLabels``), so bilinear lookups and the first mip levels near chart
borders see face colours instead of background; texels further out get ``background``
(default: the mean face colour, which keeps coarse mip levels from darkening the borders).
``cv2.inpaint`` is not used: it takes only 8-bit images with at most 3 channels, fills every
hole completely and is slow on large empty areas.
"""

import collections
from typing import Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import tensorflow as tf

from facegcn_tf.export import seams
from facegcn_tf.export.invisible_fill import fill_invisible  # noqa: F401  (re-exported)
from facegcn_tf.morphable.model import MorphableModel
from facegcn_tf.render.interpolate import interpolate_attributes
from facegcn_tf.render.rasterizer import rasterize

DEFAULT_SIZE = 1024
DEFAULT_PADDING = 8

BakedTexture = collections.namedtuple("BakedTexture", ["image", "coverage"])
BakedTexture.__doc__ = """A baked texture.

image: [H, W, C] float32, row 0 = top (v = 1); padded and background-filled.
coverage: [H, W] bool, texels whose centre lies inside a UV triangle (before padding).
"""


def _image_size(size: Union[int, Sequence[int]]) -> Tuple[int, int]:
  if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
    height = width = int(size)
  else:
    try:
      height, width = (int(s) for s in size)
    except (TypeError, ValueError):
      raise ValueError(f"texture size must be an int or (height, width), got {size!r}") from None
  if height <= 0 or width <= 0 or height > 16384 or width > 16384:
    raise ValueError(f"texture size must be in [1, 16384], got {height}x{width}")
  return height, width


def texel_uv(size: Union[int, Sequence[int]]) -> np.ndarray:
  """[H, W, 2] float64 (u, v) of every texel centre (row 0 = top = v near 1)."""
  height, width = _image_size(size)
  u = (np.arange(width) + 0.5) / width
  v = 1.0 - (np.arange(height) + 0.5) / height
  return np.stack(np.meshgrid(u, v), axis=-1)


def rasterize_uv(triangles: np.ndarray, uv: np.ndarray, triangle_uv: np.ndarray,
                 size: Union[int, Sequence[int]] = DEFAULT_SIZE):
  """Rasterizes a mesh's UV layout.

  Args:
    triangles: [F, 3] int position indices.
    uv: [Vt, 2] float in [0, 1], v up.
    triangle_uv: [F, 3] int UV indices.
    size: texture side or (height, width).

  Returns:
    (split, raster): the :class:`seams.SeamSplit` whose new vertices were rasterized, and
    the ``RasterOutput`` (batch of 1) over them.
  """
  height, width = _image_size(size)
  uv = np.asarray(uv, dtype=np.float32)
  if uv.ndim != 2 or uv.shape[1] != 2:
    raise ValueError(f"uv must be [Vt, 2], got shape {uv.shape}")
  if not np.all(np.isfinite(uv)):
    raise ValueError("uv contains NaN or Inf")
  max_vertex = int(np.max(triangles)) + 1 if np.size(triangles) else 0
  seams.check_mesh_indices(triangles, triangle_uv, max(max_vertex, 1), len(uv))
  split = seams.split_at_seams(triangles, triangle_uv)
  corner_uv = uv[split.uv_index]
  clip = np.concatenate([2.0 * corner_uv - 1.0, np.zeros_like(corner_uv[:, :1]),
                         np.ones_like(corner_uv[:, :1])], axis=1)
  raster = rasterize(tf.constant(clip[None], tf.float32), tf.constant(split.triangles),
                     (height, width))
  return split, raster


def pad_texture(image: np.ndarray, coverage: np.ndarray, padding: int = DEFAULT_PADDING,
                background: Optional[Union[float, Sequence[float]]] = None) -> np.ndarray:
  """Edge padding: empty texels within ``padding`` texels of the charts copy the nearest one.

  One ``cv2.distanceTransformWithLabels`` pass (5x5 L2 approximation) finds, for every
  empty texel, its distance to and the label of the nearest covered texel.

  Args:
    image: [H, W, C] float; only covered texels are read.
    coverage: [H, W] bool.
    padding: how far (in texels) colours grow out of the charts.
    background: value for texels further out; None = the mean covered colour (0 if
      nothing is covered).

  Returns:
    [H, W, C] float32; covered texels unchanged.
  """
  image = np.asarray(image, dtype=np.float32)
  coverage = np.asarray(coverage, dtype=bool)
  if image.ndim != 3 or coverage.shape != image.shape[:2]:
    raise ValueError(f"image must be [H, W, C] and coverage [H, W], got {image.shape} and "
                     f"{coverage.shape}")
  if padding < 0:
    raise ValueError(f"padding must be >= 0, got {padding}")
  channels = image.shape[-1]
  out = image.copy()
  if background is None:
    fill = image[coverage].mean(axis=0) if coverage.any() else np.zeros(channels, np.float32)
  else:
    fill = np.broadcast_to(np.asarray(background, np.float32), (channels,))
  empty = ~coverage
  out[empty] = fill
  if padding == 0 or not coverage.any() or not empty.any():
    return out
  distance, labels = cv2.distanceTransformWithLabels(
      empty.astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
  # Each covered texel carries its own label: map labels back to texel positions.
  flat_covered = np.flatnonzero(coverage.reshape(-1))
  texel_of_label = np.zeros(int(labels.max()) + 1, np.int64)
  texel_of_label[labels.reshape(-1)[flat_covered]] = flat_covered
  grow = empty & (distance <= padding)
  source = texel_of_label[labels[grow]]
  out[grow] = image.reshape(-1, channels)[source]
  return out


def bake_vertex_colors(vertex_colors: np.ndarray, triangles: np.ndarray, uv: np.ndarray,
                       triangle_uv: np.ndarray, size: Union[int, Sequence[int]] = DEFAULT_SIZE,
                       padding: int = DEFAULT_PADDING,
                       background: Optional[Union[float, Sequence[float]]] = None) -> BakedTexture:
  """Per-vertex colours -> UV texture.

  Args:
    vertex_colors: [V, C] float (any C; bake several colour sets at once by
      concatenating them along C, they share one rasterization).
    triangles: [F, 3] int into V.
    uv: [Vt, 2] UV points in [0, 1], v up.
    triangle_uv: [F, 3] int into Vt.
    size: texture side or (height, width).
    padding: edge-padding width in texels (see :func:`pad_texture`).
    background: value beyond the padding (None: mean colour).

  Returns:
    A :class:`BakedTexture` (float32 image, not clipped).

  Raises:
    ValueError: shapes or indices do not fit together, non-finite colours.
  """
  colors = np.asarray(vertex_colors, dtype=np.float32)
  if colors.ndim != 2 or colors.shape[1] == 0:
    raise ValueError(f"vertex_colors must be [V, C], got shape {colors.shape}")
  if not np.all(np.isfinite(colors)):
    raise ValueError("vertex_colors contain NaN or Inf")
  triangles = np.asarray(triangles)
  seams.check_mesh_indices(triangles, triangle_uv, len(colors), len(np.asarray(uv)))
  split, raster = rasterize_uv(triangles, uv, triangle_uv, size)
  corner_colors = colors[split.vertex_index]
  image = interpolate_attributes(tf.constant(corner_colors[None]), tf.constant(split.triangles),
                                 raster)[0].numpy()
  coverage = raster.mask[0].numpy() > 0.5
  return BakedTexture(pad_texture(image, coverage, padding, background), coverage)


def bake_model_texture(model: MorphableModel, vertex_colors: np.ndarray,
                       size: Union[int, Sequence[int]] = DEFAULT_SIZE,
                       padding: int = DEFAULT_PADDING,
                       background: Optional[Union[float, Sequence[float]]] = None) -> BakedTexture:
  """:func:`bake_vertex_colors` in ``model``'s UV layout (``uv``, ``triangle_uv``)."""
  colors = np.asarray(vertex_colors)
  if colors.ndim != 2 or colors.shape[0] != model.num_vertices:
    raise ValueError(f"vertex_colors must be [V = {model.num_vertices}, C] for model "
                     f"'{model.name}', got shape {colors.shape}")
  return bake_vertex_colors(colors, model.triangles, model.uv, model.triangle_uv, size, padding,
                            background)


def to_uint8(image: np.ndarray) -> np.ndarray:
  """Float image in [0, 1] (clipped) -> uint8, rounded."""
  image = np.asarray(image, dtype=np.float32)
  return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
