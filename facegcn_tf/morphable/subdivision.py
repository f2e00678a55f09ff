"""Generic mesh pieces: quad splitting and midpoint (1 -> 4) subdivision.

Midpoint subdivision keeps the original vertices at their indices and appends
one new vertex per unique undirected edge, at index ``num_vertices + e`` for
edge ``e``. Each triangle ``(a, b, c)`` with edge midpoints ``ab, bc, ca``
becomes, in this order, ``(a, ab, ca), (ab, b, bc), (ca, bc, c), (ab, bc, ca)``
(children of triangle ``f`` are rows ``4f .. 4f+3``), so winding is kept and
two index arrays over the same faces (positions and UVs) subdivide into
children that still correspond row by row.

Per-vertex attributes (positions, bases, UVs, colours) are carried linearly:
a new vertex gets the mean of its edge's two end points.

Hand-written (about 40 lines of numpy) because trimesh's
``remesh.subdivide`` returns only positions and re-indexes its edges
internally; here the edge list is needed to carry any attribute array
(e.g. ``[K, V, 3]`` bases) and a separate UV index array.
"""

from typing import Optional, Tuple

import numpy as np


def _check_index_array(name: str, array: np.ndarray, width: int,
                       num_vertices: Optional[int] = None) -> np.ndarray:
  array = np.asarray(array)
  if array.ndim != 2 or array.shape[1] != width:
    raise ValueError(f"{name} must have shape [N, {width}], got {array.shape}")
  if not np.issubdtype(array.dtype, np.integer):
    raise ValueError(f"{name} must be integer indices, got dtype {array.dtype}")
  if num_vertices is not None and array.size and (array.min() < 0 or array.max() >= num_vertices):
    raise ValueError(f"{name} has indices outside [0, {num_vertices})")
  return array.astype(np.int64)


def shorter_diagonal_is_02(quads: np.ndarray, vertices: np.ndarray) -> np.ndarray:
  """For each quad ``(a, b, c, d)``, whether diagonal a-c is not longer than b-d.

  Args:
    quads: ``[Q, 4]`` int vertex indices.
    vertices: ``[V, D]`` positions.

  Returns:
    ``[Q]`` bool.
  """
  quads = _check_index_array("quads", quads, 4, len(vertices))
  vertices = np.asarray(vertices, dtype=np.float64)
  d02 = np.linalg.norm(vertices[quads[:, 2]] - vertices[quads[:, 0]], axis=1)
  d13 = np.linalg.norm(vertices[quads[:, 3]] - vertices[quads[:, 1]], axis=1)
  return d02 <= d13


def quads_to_triangles(quads: np.ndarray, split_02=True) -> np.ndarray:
  """Splits quads into two triangles each, keeping the quads' winding.

  Args:
    quads: ``[Q, 4]`` int, corners in cyclic order.
    split_02: bool or ``[Q]`` bool: split along corner 0-2, giving
      ``(a, b, c), (a, c, d)``; else along 1-3, giving ``(a, b, d), (b, c, d)``.
      Use the same value for a quad's vertex and UV index arrays.

  Returns:
    ``[2Q, 3]`` int32; rows ``2q, 2q+1`` come from quad ``q``.
  """
  quads = _check_index_array("quads", quads, 4)
  split = np.broadcast_to(np.asarray(split_02, dtype=bool), (len(quads),))
  a, b, c, d = quads.T
  first = np.where(split[:, None], np.stack([a, b, c], 1), np.stack([a, b, d], 1))
  second = np.where(split[:, None], np.stack([a, c, d], 1), np.stack([b, c, d], 1))
  return np.stack([first, second], axis=1).reshape(-1, 3).astype(np.int32)


def unique_edges(triangles: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
  """Unique undirected edges of a triangle mesh.

  Args:
    triangles: ``[F, 3]`` int.

  Returns:
    edges: ``[E, 2]`` int32 with ``edges[:, 0] < edges[:, 1]``, sorted.
    triangle_edges: ``[F, 3]`` int32, index of the edge from corner k to
      corner k+1 (mod 3) of each triangle.
  """
  triangles = _check_index_array("triangles", triangles, 3)
  directed = np.stack([triangles, np.roll(triangles, -1, axis=1)], axis=-1)  # [F, 3, 2]
  undirected = np.sort(directed.reshape(-1, 2), axis=1)
  edges, inverse = np.unique(undirected, axis=0, return_inverse=True)
  return edges.astype(np.int32), inverse.reshape(-1, 3).astype(np.int32)


def midpoint_subdivide(triangles: np.ndarray, num_vertices: int) -> Tuple[np.ndarray, np.ndarray]:
  """One step of midpoint subdivision (each triangle -> 4).

  Args:
    triangles: ``[F, 3]`` int indices into ``num_vertices`` points.
    num_vertices: number of points the indices refer to.

  Returns:
    new_triangles: ``[4F, 3]`` int32 (see the module docstring for the order).
    edges: ``[E, 2]`` int32; new point ``num_vertices + e`` is the midpoint
      of ``edges[e]``. Pass it to :func:`interpolate_midpoints`.
  """
  triangles = _check_index_array("triangles", triangles, 3, num_vertices)
  edges, tri_edges = unique_edges(triangles)
  mid = tri_edges.astype(np.int64) + num_vertices  # [F, 3]: ab, bc, ca
  a, b, c = triangles.T
  ab, bc, ca = mid.T
  children = np.stack([np.stack([a, ab, ca], 1), np.stack([ab, b, bc], 1),
                       np.stack([ca, bc, c], 1), np.stack([ab, bc, ca], 1)], axis=1)
  return children.reshape(-1, 3).astype(np.int32), edges


def interpolate_midpoints(values: np.ndarray, edges: np.ndarray, axis: int = 0) -> np.ndarray:
  """Appends edge-midpoint values to a per-vertex attribute array.

  Args:
    values: array whose ``axis`` indexes the V vertices, e.g. ``[V, 3]``
      positions or ``[K, V, 3]`` bases (``axis=1``).
    edges: ``[E, 2]`` from :func:`midpoint_subdivide`.
    axis: the vertex axis of ``values``.

  Returns:
    Same dtype, with ``V + E`` entries along ``axis``; entry ``V + e`` is the
    mean of the values at ``edges[e]``.
  """
  values = np.asarray(values)
  if not np.issubdtype(values.dtype, np.floating):
    raise ValueError(f"can only interpolate floating-point attributes, got dtype {values.dtype}")
  num = values.shape[axis]
  edges = _check_index_array("edges", edges, 2, num)
  first = np.take(values, edges[:, 0], axis=axis)
  second = np.take(values, edges[:, 1], axis=axis)
  mids = (first + second) * values.dtype.type(0.5)
  return np.concatenate([values, mids], axis=axis)
