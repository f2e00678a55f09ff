"""Colours for the vertices the photo did not show, blended smoothly into the seen ones.

The fine albedo is trustworthy where the photo saw the face. Elsewhere (the far cheek of a
turned face, under the chin, occluded parts) a vertex takes, in order of preference:

1. its mirror vertex's fine colour, when the mirror vertex was seen (faces are nearly
   symmetric in albedo);
2. otherwise the fallback colour (the coarse 3DMM albedo), shifted by `border_matched` so
   that it takes the seen colours at their border: the smooth model albedo differs from
   the photo's in tone (a pale, yellowish old face against the model's peach), and unshifted
   each filled patch is a plain piece of another skin.

Hard switches would leave visible seams along the visibility boundary (ragged, since
z-buffer visibility is noisy at grazing angles), so each switch is a ramp: the soft
visibility ``s`` (:func:`soft_visibility`) is the 0/1 visibility diffused over ``R = rings``
rings of the mesh graph and remapped to [0, 1], and

    substitute(v) = m(v) * colors[mirror(v)] + (1 - m(v)) * fallback(v),  m(v) = s(mirror(v))
    out(v)        = s(v) * colors(v)         + (1 - s(v)) * substitute(v)

so a vertex whose R-ring neighbourhood is all seen keeps its colour exactly; one whose
R-ring neighbourhood is all unseen gets exactly its mirror's colour where the mirror's
R-ring neighbourhood is all seen, and exactly the fallback where the mirror's is all unseen
or where it has no mirror (vertices on the symmetry plane and unmatched ones).
"""

import numpy as np
import scipy.sparse
import scipy.sparse.linalg

DEFAULT_RINGS = 8
# Diffused visibility below LOW counts as unseen, above HIGH as seen.
LOW = 0.2
HIGH = 0.8
# `border_matched`: rings the seen offsets are averaged over, and the screening weight that
# fades the offset to 0 far from any seen vertex (decay length about 1/sqrt(weight) rings).
BORDER_RINGS = 3
SCREENING = 1e-3


def vertex_adjacency(triangles: np.ndarray, num_vertices: int) -> scipy.sparse.csr_matrix:
  """Symmetric 0/1 vertex adjacency ``[V, V]`` (CSR) of a triangle mesh's edges."""
  t = np.asarray(triangles, dtype=np.int64)
  rows = np.concatenate([t[:, 0], t[:, 1], t[:, 2], t[:, 1], t[:, 2], t[:, 0]])
  cols = np.concatenate([t[:, 1], t[:, 2], t[:, 0], t[:, 0], t[:, 1], t[:, 2]])
  adjacency = scipy.sparse.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)),
                                      shape=(num_vertices, num_vertices))
  adjacency.data[:] = 1.0  # duplicates (edges shared by two triangles) were summed
  return adjacency


def soft_visibility(visible: np.ndarray, triangles: np.ndarray,
                    rings: int = DEFAULT_RINGS) -> np.ndarray:
  """Visibility diffused over ``rings`` mesh rings, then remapped to a ramp.

  ``d`` = the 0/1 visibility averaged ``rings`` times over each vertex's closed
  one-ring (``scipy.sparse`` random-walk matrix); ``s = smoothstep((d - LOW) / (HIGH -
  LOW))``. So ``s`` is exactly 1 where every vertex within ``rings`` edges is seen, exactly
  0 where none is, and isolated seen specks in an unseen region (or unseen specks in a
  seen one), which z-buffer visibility produces at grazing angles, follow their
  surroundings instead of leaving ragged seams.

  Args:
    visible: [V] bool.
    triangles: [F, 3] int.
    rings: diffusion steps (ramp half-width, in edges); 0 gives the hard 0/1 visibility.

  Returns:
    [V] float32 in [0, 1].
  """
  visible = np.asarray(visible, dtype=bool)
  if rings < 0:
    raise ValueError(f"rings must be >= 0, got {rings}")
  if rings == 0 or visible.all() or not visible.any():
    return visible.astype(np.float32)
  num = len(visible)
  closed = vertex_adjacency(triangles, num) + scipy.sparse.identity(num, np.float32, "csr")
  walk = scipy.sparse.diags(1.0 / np.asarray(closed.sum(axis=1)).ravel()) @ closed
  diffused = visible.astype(np.float64)
  for _ in range(rings):
    diffused = walk @ diffused
  t = np.clip((diffused - LOW) / (HIGH - LOW), 0.0, 1.0)
  return (t * t * (3.0 - 2.0 * t)).astype(np.float32)


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
                   fallback: np.ndarray, triangles: np.ndarray, rings: int = DEFAULT_RINGS,
                   threshold: float = 0.5) -> np.ndarray:
  """Per-vertex colours with unseen vertices filled (see the module docstring).

  Args:
    colors: [V, C] fine colours (e.g. the GCN albedo in [0, 1]).
    visibility: [V] visibility (bool or float; seen where > ``threshold``), e.g. from
      ``FaceRenderer.visibility``.
    pairs: [P, 2] int mirror pairs (``model.symmetry_pairs``).
    fallback: [V, C] colours for vertices with no seen mirror (the coarse albedo).
    triangles: [F, 3] int mesh triangles (the graph the ramps run over).
    rings: width of the blends, in mesh edges (see :func:`soft_visibility`).
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


def border_matched(colors: np.ndarray, seen: np.ndarray, fallback: np.ndarray,
                   triangles: np.ndarray, rings: int = BORDER_RINGS,
                   screening: float = SCREENING) -> np.ndarray:
  """[V, C] the fallback shifted to take the seen colours at their border.

  The offset ``o = colors - fallback`` is known on the seen vertices, where it is averaged
  over `rings` rings of seen neighbours (a pore, a freckle or an occluder's rim does not
  set it alone). On the other vertices it is the membrane (harmonic) interpolation of the
  border's offsets on the mesh graph: it minimises ``sum over edges |o_i - o_j|^2 +
  screening * sum |o_u|^2`` with the seen vertices held, so a filled patch keeps the
  fallback's own structure (brows, lips, the model's shading-free albedo) in the tone of
  the skin around it, and fades back to the fallback itself far from any seen vertex.

  Args:
    colors: [V, C] colours, valid where `seen`.
    seen: [V] bool, the vertices whose colours are known.
    fallback: [V, C] colours for the rest (e.g. the coarse 3DMM albedo).
    triangles: [F, 3] int, the mesh graph.
    rings: averaging of the known offsets, in mesh rings (0: none).
    screening: > 0, the offset's decay away from the seen vertices.

  Returns:
    [V, C] float32: the shifted fallback (equal to `colors` averaged on the seen vertices).
  """
  colors = np.asarray(colors, np.float64)
  fallback = np.asarray(fallback, np.float64)
  seen = np.asarray(seen, bool)
  if colors.shape != fallback.shape or colors.ndim != 2 or seen.shape != colors.shape[:1]:
    raise ValueError(f"colors {colors.shape}, fallback {fallback.shape} and seen {seen.shape} "
                     "must be [V, C], [V, C] and [V]")
  if not screening > 0 or rings < 0:
    raise ValueError(f"screening must be > 0 and rings >= 0, got {screening}, {rings}")
  if seen.all() or not seen.any():
    return fallback.astype(np.float32)
  adjacency = vertex_adjacency(triangles, len(seen))
  offset = np.where(seen[:, None], colors - fallback, 0.0)
  closed = adjacency + scipy.sparse.identity(len(seen), np.float32, "csr")
  # Seen neighbours per seen vertex (itself included); 1 elsewhere, where offset stays 0.
  seen_count = np.where(seen, closed @ seen.astype(np.float64), 1.0)[:, None]
  for _ in range(rings):   # averages over seen neighbours only
    offset = np.where(seen[:, None], closed @ offset, 0.0) / seen_count
  unseen = np.flatnonzero(~seen)
  known = np.flatnonzero(seen)
  rows = adjacency[unseen]
  degree = np.asarray(rows.sum(axis=1)).ravel()
  system = (scipy.sparse.diags(degree + screening) - rows[:, unseen]).tocsc()
  rhs = rows[:, known] @ offset[known]
  out = fallback + offset
  out[unseen] = fallback[unseen] + scipy.sparse.linalg.spsolve(system, rhs).reshape(
      len(unseen), -1)
  return out.astype(np.float32)
