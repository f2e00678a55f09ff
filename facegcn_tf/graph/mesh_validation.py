"""Checks that a (vertices, faces) pair is a usable triangle mesh.

Every public function in `graph/` takes plain arrays; this module turns them
into canonical dtypes and rejects bad input with a one-line ValueError.
"""

import numpy as np


def check_mesh(vertices, faces, require_all_referenced=True):
  """Validates a triangle mesh and returns canonical copies.

  Args:
    vertices: array-like `[V, 3]`, finite real numbers.
    faces: array-like `[F, 3]` of integer vertex indices in `[0, V)`; no face
      may repeat a vertex.
    require_all_referenced: if True, every vertex must be used by a face (an
      isolated vertex has no neighbours, so it cannot be decimated and would
      make the normalised Laplacian undefined).

  Returns:
    `(vertices, faces)` as C-contiguous `float64 [V, 3]` and `int64 [F, 3]`.

  Raises:
    ValueError: with a one-line message naming the first problem found.
  """
  try:
    v = np.asarray(vertices)
  except Exception as err:  # ragged lists and such
    raise ValueError(f"vertices must be a [V, 3] array: {err}") from None
  if v.ndim != 2 or v.shape[1] != 3:
    raise ValueError(f"vertices must have shape [V, 3], got {v.shape}")
  if v.shape[0] < 3:
    raise ValueError(f"a mesh needs at least 3 vertices, got {v.shape[0]}")
  if not (np.issubdtype(v.dtype, np.floating) or np.issubdtype(v.dtype, np.integer)):
    raise ValueError(f"vertices must be real numbers, got dtype {v.dtype}")
  v = np.ascontiguousarray(v, dtype=np.float64)
  if not np.all(np.isfinite(v)):
    raise ValueError("vertices contain NaN or infinite values")

  try:
    f = np.asarray(faces)
  except Exception as err:
    raise ValueError(f"faces must be a [F, 3] array: {err}") from None
  if f.ndim != 2 or f.shape[1] != 3:
    raise ValueError(f"faces must have shape [F, 3] (triangles), got {f.shape}")
  if f.shape[0] == 0:
    raise ValueError("faces is empty")
  if not np.issubdtype(f.dtype, np.integer):
    raise ValueError(f"faces must hold integer indices, got dtype {f.dtype}")
  f = np.ascontiguousarray(f, dtype=np.int64)
  lo, hi = int(f.min()), int(f.max())
  if lo < 0 or hi >= v.shape[0]:
    raise ValueError(
        f"face indices must lie in [0, {v.shape[0]}), got range [{lo}, {hi}]")
  bad = (f[:, 0] == f[:, 1]) | (f[:, 1] == f[:, 2]) | (f[:, 0] == f[:, 2])
  if np.any(bad):
    raise ValueError(
        f"{int(bad.sum())} face(s) repeat a vertex (first: face {int(np.flatnonzero(bad)[0])})")
  if require_all_referenced:
    used = np.zeros(v.shape[0], dtype=bool)
    used[f.ravel()] = True
    if not np.all(used):
      raise ValueError(
          f"{int((~used).sum())} vertex/vertices are not used by any face "
          f"(first: {int(np.flatnonzero(~used)[0])}); remove unreferenced vertices first")
  return v, f
