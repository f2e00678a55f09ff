"""Left/right vertex pairs of a face mesh, found geometrically.

Mirror the mean shape in x (the face's symmetry plane is x = 0 after
centring), take each vertex's nearest neighbour among the mirrored points
(``scipy.spatial.cKDTree``) and keep a pair when the match is **mutual** and
closer than ``max_distance``. Vertices on the centre line match themselves;
they are **dropped** (a pair (i, i) adds nothing to a symmetry loss).

This replaces the official GCN code's use of BFM's ``face05_symlist.txt``,
whose full-BFM indices it applied to the 35,709-vertex front model.
"""

from typing import Optional

import numpy as np
import scipy.spatial


def median_edge_length(vertices: np.ndarray, triangles: np.ndarray) -> float:
  """Median length of the triangle edges (each edge counted once per triangle)."""
  v = np.asarray(vertices, dtype=np.float64)
  t = np.asarray(triangles)
  lengths = np.linalg.norm(v[t] - v[np.roll(t, -1, axis=1)], axis=-1)
  return float(np.median(lengths))


DEFAULT_RELATIVE_DISTANCE = 0.75


def mesh_mirror_pairs(vertices: np.ndarray, triangles: np.ndarray,
                      relative_distance: float = DEFAULT_RELATIVE_DISTANCE) -> np.ndarray:
  """:func:`mirror_pairs` across x = 0 with ``max_distance`` a fraction of the median edge.

  Args:
    vertices: ``[V, 3]`` centred mean shape.
    triangles: ``[F, 3]`` int.
    relative_distance: ``max_distance`` as a fraction of the median edge length.

  Returns:
    ``[P, 2]`` int32 (left, right) pairs.
  """
  return mirror_pairs(vertices, relative_distance * median_edge_length(vertices, triangles))


def mirror_pairs(vertices: np.ndarray, max_distance: float,
                 plane_x: Optional[float] = 0.0) -> np.ndarray:
  """Pairs of vertices that mirror each other across the plane x = plane_x.

  Args:
    vertices: ``[V, 3]`` positions (the model's mean shape).
    max_distance: largest accepted distance between a vertex and its
      partner's mirror image (same units as ``vertices``); e.g. half the
      median edge length.
    plane_x: x of the symmetry plane.

  Returns:
    ``[P, 2]`` int32 ``(left, right)`` with ``x[left] > plane_x > x[right]``
    (left = subject's left = +x), sorted by the left index; each vertex
    appears at most once.
  """
  v = np.asarray(vertices, dtype=np.float64)
  if v.ndim != 2 or v.shape[1] != 3 or len(v) == 0:
    raise ValueError(f"vertices must have shape [V, 3], got {v.shape}")
  if not max_distance > 0:
    raise ValueError(f"max_distance must be positive, got {max_distance}")
  mirrored = v.copy()
  mirrored[:, 0] = 2.0 * plane_x - mirrored[:, 0]
  distance, partner = scipy.spatial.cKDTree(v).query(mirrored)
  index = np.arange(len(v))
  keep = (partner[partner] == index) & (distance <= max_distance) & (partner != index)
  keep &= v[:, 0] > plane_x  # one row per pair, from the +x side
  keep &= v[partner, 0] < plane_x
  return np.stack([index[keep], partner[keep]], axis=1).astype(np.int32)
