"""Up-sampling matrix U: fine vertices as barycentric blends of coarse ones.

CoMA projects each fine vertex onto the closest point of the coarse surface
and uses the barycentric coordinates of that point in its coarse triangle as
the row of U. Here the exact closest-point-on-triangle query is
`trimesh.triangles.closest_point` (vectorised numpy, no extra dependencies);
`trimesh.proximity` would need `rtree`, which is not installed, so candidate
triangles come from scipy cKDTrees instead (see `closest_triangles`).
"""

import numpy as np
import scipy.sparse as sp
from scipy import spatial
from trimesh import triangles as trimesh_triangles

from facegcn_tf.graph import mesh_validation

_PAIR_CHUNK = 200_000  # candidate (point, triangle) pairs evaluated at once


def closest_triangles(points, vertices, faces):
  """Exact closest point on a triangle mesh for each query point.

  Candidates are pruned without losing the exact answer: the distance `d` to
  the nearest mesh vertex bounds the distance to the surface from above, and a
  triangle with centroid c and circumradius-about-centroid r can only hold a
  point within `d` if `|p - c| - r <= d`. Triangles are bucketed by r (radius
  doubling per bucket) so one long sliver does not widen every search.

  Args:
    points: `float [P, 3]` query points.
    vertices: `float [n, 3]` mesh vertices (all used by `faces`).
    faces: `int [F, 3]`.

  Returns:
    `(face_index int64 [P], closest float64 [P, 3], distance float64 [P])`.
  """
  p = np.asarray(points, dtype=np.float64)
  tris = vertices[faces]  # [F, 3, 3]
  centroids = tris.mean(axis=1)
  radii = np.linalg.norm(tris - centroids[:, None, :], axis=2).max(axis=1)
  upper, _ = spatial.cKDTree(vertices).query(p)
  scale = max(float(np.ptp(vertices, axis=0).max()), 1.0)
  slack = 1e-9 * scale

  best_dist = np.full(p.shape[0], np.inf)
  best_face = np.full(p.shape[0], -1, dtype=np.int64)
  best_point = np.zeros_like(p)

  order = np.argsort(radii)
  sorted_r = radii[order]
  floor = max(sorted_r[-1] * 1e-6, 1e-300)
  start = 0
  while start < order.size:
    limit = 2.0 * max(sorted_r[start], floor)
    stop = int(np.searchsorted(sorted_r, limit, side="right"))
    stop = max(stop, start + 1)
    bucket = order[start:stop]
    start = stop
    tree = spatial.cKDTree(centroids[bucket])
    hits = tree.query_ball_point(p, upper + sorted_r[stop - 1] + slack, return_sorted=False)
    counts = np.fromiter((len(h) for h in hits), dtype=np.int64, count=len(hits))
    if counts.sum() == 0:
      continue
    pt_idx = np.repeat(np.arange(p.shape[0]), counts)
    tri_idx = bucket[np.concatenate([np.asarray(h, dtype=np.int64) for h in hits if h])]
    gap = np.linalg.norm(p[pt_idx] - centroids[tri_idx], axis=1) - radii[tri_idx]
    keep = gap <= upper[pt_idx] + slack
    pt_idx, tri_idx = pt_idx[keep], tri_idx[keep]
    for s in range(0, pt_idx.size, _PAIR_CHUNK):
      pi, ti = pt_idx[s:s + _PAIR_CHUNK], tri_idx[s:s + _PAIR_CHUNK]
      cp = trimesh_triangles.closest_point(tris[ti], p[pi])
      dist = np.linalg.norm(cp - p[pi], axis=1)
      # Per point, the smallest distance in this chunk (ties: lower face index).
      srt = np.lexsort((ti, dist, pi))
      first = srt[np.r_[True, pi[srt][1:] != pi[srt][:-1]]]
      better = dist[first] < best_dist[pi[first]]
      upd = first[better]
      best_dist[pi[upd]] = dist[upd]
      best_face[pi[upd]] = ti[upd]
      best_point[pi[upd]] = cp[upd]
  if np.any(best_face < 0):  # cannot happen: the nearest vertex's faces qualify
    raise RuntimeError("closest-triangle search found no candidate for some points")
  return best_face, best_point, best_dist


def barycentric_weights(triangles, points):
  """Barycentric coordinates of points lying on (or near) their triangles.

  Args:
    triangles: `float [P, 3, 3]`.
    points: `float [P, 3]`, e.g. closest points on those triangles.

  Returns:
    `float64 [P, 3]`, non-negative, rows summing to 1. A degenerate (zero-area)
    triangle gets weights on its longest edge (the segment the point lies on).
  """
  t = np.asarray(triangles, dtype=np.float64)
  p = np.asarray(points, dtype=np.float64)
  e1, e2 = t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]
  d = p - t[:, 0]
  d11, d12, d22 = np.sum(e1 * e1, 1), np.sum(e1 * e2, 1), np.sum(e2 * e2, 1)
  dp1, dp2 = np.sum(d * e1, 1), np.sum(d * e2, 1)
  det = d11 * d22 - d12 * d12
  scale = np.maximum(d11, d22)
  good = det > 1e-12 * scale * scale
  w = np.zeros((t.shape[0], 3))
  safe = np.where(good, det, 1.0)
  w1 = (d22 * dp1 - d12 * dp2) / safe
  w2 = (d11 * dp2 - d12 * dp1) / safe
  w[:, 0], w[:, 1], w[:, 2] = 1.0 - w1 - w2, w1, w2

  for r in np.flatnonzero(~good):  # rare: slivers left by decimation
    corners = t[r]
    pairs = [(0, 1), (1, 2), (0, 2)]
    lengths = [np.sum((corners[j] - corners[i]) ** 2) for i, j in pairs]
    i, j = pairs[int(np.argmax(lengths))]
    w[r] = 0.0
    if lengths[int(np.argmax(lengths))] == 0.0:
      w[r, 0] = 1.0
      continue
    seg = corners[j] - corners[i]
    s = np.clip(np.dot(p[r] - corners[i], seg) / np.dot(seg, seg), 0.0, 1.0)
    w[r, i], w[r, j] = 1.0 - s, s

  w = np.clip(w, 0.0, None)
  return w / w.sum(axis=1, keepdims=True)


def upsampling_matrix(fine_vertices, coarse_vertices, coarse_faces, kept=None):
  """CoMA's up-sampling matrix from a coarse mesh back to the fine vertices.

  Args:
    fine_vertices: `float [n, 3]`.
    coarse_vertices: `float [m, 3]`.
    coarse_faces: `int [f, 3]` into `coarse_vertices`.
    kept: optional `int [m]`, the fine index of each coarse vertex (from
      decimation). Those fine vertices get an exact one-hot row.

  Returns:
    `scipy.sparse.csr_matrix [n, m]` float32 with up to 3 non-zeros per row,
    all non-negative, each row summing to 1. `U @ coarse_signal` interpolates a
    per-vertex signal `[m, C]` to the fine mesh.

  Raises:
    ValueError: malformed arrays or `kept` inconsistent with the meshes.
  """
  fine = np.asarray(fine_vertices)
  if fine.ndim != 2 or fine.shape[1] != 3 or fine.shape[0] == 0:
    raise ValueError(f"fine_vertices must have shape [n, 3], got {fine.shape}")
  fine = fine.astype(np.float64)
  if not np.all(np.isfinite(fine)):
    raise ValueError("fine_vertices contain NaN or infinite values")
  cv, cf = mesh_validation.check_mesh(coarse_vertices, coarse_faces)
  n, m = fine.shape[0], cv.shape[0]

  face_idx, closest, _ = closest_triangles(fine, cv, cf)
  weights = barycentric_weights(cv[cf[face_idx]], closest)
  rows = np.repeat(np.arange(n), 3)
  cols = cf[face_idx].ravel()
  vals = weights.ravel()

  if kept is not None:
    kept = np.asarray(kept)
    if kept.shape != (m,) or not np.issubdtype(kept.dtype, np.integer):
      raise ValueError(f"kept must be an integer array of shape [{m}], got {kept.shape}")
    if kept.min() < 0 or kept.max() >= n or np.unique(kept).size != m:
      raise ValueError("kept must hold distinct indices into fine_vertices")
    tol = 1e-6 * max(float(np.ptp(fine, axis=0).max()), 1.0)
    if np.max(np.abs(fine[kept] - cv)) > tol:
      raise ValueError("kept does not match: fine_vertices[kept] != coarse_vertices")
    is_kept = np.zeros(n, dtype=bool)
    is_kept[kept] = True
    mask = ~is_kept[rows]
    rows = np.concatenate([rows[mask], kept])
    cols = np.concatenate([cols[mask], np.arange(m)])
    vals = np.concatenate([vals[mask], np.ones(m)])

  up = sp.csr_matrix((vals.astype(np.float32), (rows, cols)), shape=(n, m))
  up.sum_duplicates()
  up.eliminate_zeros()
  return up
