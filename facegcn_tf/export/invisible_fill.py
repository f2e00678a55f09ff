"""Colours for the vertices the photo did not show, blended smoothly into the seen ones.

The fine albedo is trustworthy where the photo saw the face. Elsewhere (the far cheek of a
turned face, under the chin, occluded parts) a vertex takes, in order of preference:

1. its mirror vertex's fine colour, when the mirror vertex was seen (faces are nearly
   symmetric in albedo);
2. otherwise the fallback colour (the coarse 3DMM albedo).

Hard switches would leave visible seams along the visibility boundary, so each switch is a
ramp over a few rings of the mesh graph. With ``d(v)`` the number of edges from ``v`` to the
nearest unseen vertex (0 for unseen vertices; ``scipy.sparse.csgraph`` multi-source BFS) and
``R = rings``, the soft visibility is ``s = smoothstep(min(d / (R + 1), 1))``, and

    substitute(v) = m(v) * colors[mirror(v)] + (1 - m(v)) * fallback(v),  m(v) = s(mirror(v))
    out(v)        = s(v) * colors(v)         + (1 - s(v)) * substitute(v)

so seen vertices more than R rings inside the seen region keep their colour exactly, unseen
vertices get exactly the mirror colour where the mirror is more than R rings inside the seen
region and exactly the fallback where the mirror is unseen (or where a vertex has no mirror:
vertices on the symmetry plane and unmatched ones).
"""

import numpy as np
import scipy.sparse
import scipy.sparse.csgraph


def vertex_adjacency(triangles: np.ndarray, num_vertices: int) -> scipy.sparse.csr_matrix:
  """Symmetric 0/1 vertex adjacency ``[V, V]`` (CSR) of a triangle mesh's edges."""
  t = np.asarray(triangles, dtype=np.int64)
  rows = np.concatenate([t[:, 0], t[:, 1], t[:, 2], t[:, 1], t[:, 2], t[:, 0]])
  cols = np.concatenate([t[:, 1], t[:, 2], t[:, 0], t[:, 0], t[:, 1], t[:, 2]])
  adjacency = scipy.sparse.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)),
                                      shape=(num_vertices, num_vertices))
  adjacency.data[:] = 1.0  # duplicates (edges shared by two triangles) were summed
  return adjacency


def soft_visibility(visible: np.ndarray, triangles: np.ndarray, rings: int = 3) -> np.ndarray:
  """Visibility ramped over ``rings`` mesh rings inside the seen region.

  Args:
    visible: [V] bool.
    triangles: [F, 3] int.
    rings: ramp width in edges; 0 gives the hard 0/1 visibility.

  Returns:
    [V] float32 in [0, 1]: 0 on unseen vertices, 1 on seen vertices more than ``rings``
    edges from any unseen vertex, a smoothstep ramp between.
  """
  visible = np.asarray(visible, dtype=bool)
  if rings < 0:
    raise ValueError(f"rings must be >= 0, got {rings}")
  unseen = np.flatnonzero(~visible)
  if len(unseen) == 0:
    return np.ones(len(visible), np.float32)
  if rings == 0 or len(unseen) == len(visible):
    return visible.astype(np.float32)
  adjacency = vertex_adjacency(triangles, len(visible))
  distance = scipy.sparse.csgraph.dijkstra(adjacency, directed=False, indices=unseen,
                                           unweighted=True, limit=rings + 1, min_only=True)
  ramp = np.clip(distance / (rings + 1.0), 0.0, 1.0)  # inf (beyond the limit) -> 1
  return (ramp * ramp * (3.0 - 2.0 * ramp)).astype(np.float32)


def mirror_index(pairs: np.ndarray, num_vertices: int) -> np.ndarray:
  """[V] int64: each vertex's mirror from ``[P, 2]`` (left, right) pairs, -1 if none."""
  pairs = np.asarray(pairs)
  if pairs.size == 0:
    return np.full(num_vertices, -1, np.int64)
  if pairs.ndim != 2 or pairs.shape[1] != 2 or not np.issubdtype(pairs.dtype, np.integer):
    raise ValueError(f"pairs must be an integer [P, 2] array, got {pairs.shape} {pairs.dtype}")
  if pairs.min() < 0 or pairs.max() >= num_vertices:
    raise ValueError(f"pairs has vertex indices outside [0, {num_vertices})")
  mirror = np.full(num_vertices, -1, np.int64)
  mirror[pairs[:, 0]] = pairs[:, 1]
  mirror[pairs[:, 1]] = pairs[:, 0]
  return mirror


def fill_invisible(colors: np.ndarray, visibility: np.ndarray, pairs: np.ndarray,
                   fallback: np.ndarray, triangles: np.ndarray, rings: int = 3,
                   threshold: float = 0.5) -> np.ndarray:
  """Per-vertex colours with unseen vertices filled (see the module docstring).

  Args:
    colors: [V, C] fine colours (e.g. the GCN albedo in [0, 1]).
    visibility: [V] visibility (bool or float; seen where > ``threshold``), e.g. from
      ``FaceRenderer.visibility``.
    pairs: [P, 2] int mirror pairs (``model.symmetry_pairs``).
    fallback: [V, C] colours for vertices with no seen mirror (the coarse albedo).
    triangles: [F, 3] int mesh triangles (the graph the ramps run over).
    rings: width of the blends, in mesh edges.
    threshold: visibility threshold.

  Returns:
    [V, C] float32.

  Raises:
    ValueError: inconsistent shapes, out-of-range indices or non-finite values.
  """
  colors = np.asarray(colors, dtype=np.float32)
  fallback = np.asarray(fallback, dtype=np.float32)
  visibility = np.asarray(visibility)
  triangles = np.asarray(triangles)
  if colors.ndim != 2 or len(colors) == 0:
    raise ValueError(f"colors must be [V, C], got shape {colors.shape}")
  num = len(colors)
  if fallback.shape != colors.shape:
    raise ValueError(f"fallback {fallback.shape} must have the shape of colors {colors.shape}")
  if visibility.shape != (num,):
    raise ValueError(f"visibility must be [V] = [{num}], got shape {visibility.shape}")
  if (triangles.ndim != 2 or triangles.shape[1] != 3
      or not np.issubdtype(triangles.dtype, np.integer)):
    raise ValueError(f"triangles must be an integer [F, 3] array, got {triangles.shape} "
                     f"{triangles.dtype}")
  if triangles.size and (triangles.min() < 0 or triangles.max() >= num):
    raise ValueError(f"triangles have vertex indices outside [0, {num})")
  for name, array in (("colors", colors), ("fallback", fallback),
                      ("visibility", visibility.astype(np.float32))):
    if not np.all(np.isfinite(array)):
      raise ValueError(f"{name} contains NaN or Inf")
  mirror = mirror_index(pairs, num)
  seen = visibility.astype(np.float32) > threshold
  soft = soft_visibility(seen, triangles, rings)
  has_mirror = mirror >= 0
  safe_mirror = np.where(has_mirror, mirror, 0)
  mirror_weight = np.where(has_mirror, soft[safe_mirror], 0.0)[:, None]
  substitute = mirror_weight * colors[safe_mirror] + (1.0 - mirror_weight) * fallback
  out = soft[:, None] * colors + (1.0 - soft[:, None]) * substitute
  return out.astype(np.float32)
