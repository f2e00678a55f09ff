"""Splitting a mesh at its UV seams: one output vertex per distinct (vertex, UV point) corner.

A model keeps positions and UVs in separate index spaces (``triangles`` into ``V``
positions, ``triangle_uv`` into ``Vt`` UV points), so a vertex on a seam has several UVs.
Formats and rasterizers that take one attribute set per vertex (glTF, UV-space baking)
need those vertices duplicated: :func:`split_at_seams` gives the duplicated vertex list.
"""

import collections

import numpy as np

SeamSplit = collections.namedtuple("SeamSplit", ["vertex_index", "uv_index", "triangles"])
SeamSplit.__doc__ = """A mesh split at its UV seams (N = number of distinct corners).

vertex_index: [N] int64, the position (model vertex) of each new vertex.
uv_index: [N] int64, the UV point of each new vertex.
triangles: [F, 3] int32 into the N new vertices (same order and winding as the input).
"""


def check_mesh_indices(triangles: np.ndarray, triangle_uv: np.ndarray, num_vertices: int,
                       num_uv: int) -> None:
  """Raises ValueError unless both index arrays are ``[F, 3]`` and in range."""
  triangles = np.asarray(triangles)
  triangle_uv = np.asarray(triangle_uv)
  if triangles.ndim != 2 or triangles.shape[1] != 3 or len(triangles) == 0:
    raise ValueError(f"triangles must be a non-empty [F, 3] array, got shape {triangles.shape}")
  if triangle_uv.shape != triangles.shape:
    raise ValueError(f"triangle_uv {triangle_uv.shape} must have the shape of triangles "
                     f"{triangles.shape}")
  for name, array, upper in (("triangles", triangles, num_vertices),
                             ("triangle_uv", triangle_uv, num_uv)):
    if not np.issubdtype(array.dtype, np.integer):
      raise ValueError(f"{name} must be integer, got {array.dtype}")
    if array.min() < 0 or array.max() >= upper:
      raise ValueError(f"{name} has indices outside [0, {upper})")


def split_at_seams(triangles: np.ndarray, triangle_uv: np.ndarray) -> SeamSplit:
  """One vertex per distinct (position index, UV index) pair used by a corner.

  Args:
    triangles: [F, 3] int position indices.
    triangle_uv: [F, 3] int UV indices, corner for corner.

  Returns:
    A :class:`SeamSplit`; new vertices are sorted by (position, UV) index, so a mesh
    without seams keeps its vertex order (restricted to vertices used by a triangle).
  """
  triangles = np.asarray(triangles)
  triangle_uv = np.asarray(triangle_uv)
  if triangles.shape != triangle_uv.shape or triangles.ndim != 2 or triangles.shape[1] != 3:
    raise ValueError(f"triangles {triangles.shape} and triangle_uv {triangle_uv.shape} "
                     "must both be [F, 3]")
  vertex = triangles.reshape(-1).astype(np.int64)
  uv = triangle_uv.reshape(-1).astype(np.int64)
  if vertex.size and (vertex.min() < 0 or uv.min() < 0):
    raise ValueError("triangles and triangle_uv must hold non-negative indices")
  # One int64 key per corner (a 1-D unique is much faster than unique(axis=0)).
  stride = int(uv.max()) + 1 if uv.size else 1
  unique, inverse = np.unique(vertex * stride + uv, return_inverse=True)
  return SeamSplit(vertex_index=unique // stride, uv_index=unique % stride,
                   triangles=inverse.reshape(-1, 3).astype(np.int32))
