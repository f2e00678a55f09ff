"""Face regions from the 68 landmarks, projected frontally (x, y).

The skin mask keeps face skin and drops

* the eyes: polygons of landmarks 36-41 and 42-47 plus a margin;
* the lips and mouth: the outer-lip polygon 48-59 plus a margin;
* the nostrils: inside the lower-nose polygon (landmarks 31-35 and the same
  x positions raised to the nose tip 30, plus a margin), the vertices that
  are hidden behind the nose when seen from the front (nostril tubes) or
  whose normal points up or down more than forward (the nostril openings,
  which face down, and their floors, which face up and can show from the
  front between the columella and the alae).

Regions are frontal projections, so the mesh must be a face area seen from
+z (nothing behind the eyes or mouth, as in ICT's face area and BFM's front
model). Margins are fractions of the outer-eye-corner distance
|lm45 - lm36|, so the same call works for ICT (centimetres or decimetres)
and BFM. Polygon tests use ``matplotlib.path.Path`` (a pinned, well-kept
library); distances to polygon edges are a vectorised numpy point-segment
distance.
"""

import numpy as np
from matplotlib import path as mpath

from facegcn_tf.morphable import normals as normals_lib

RIGHT_EYE = tuple(range(36, 42))
LEFT_EYE = tuple(range(42, 48))
OUTER_LIPS = tuple(range(48, 60))
NOSE_BASE = tuple(range(31, 36))
NOSE_TIP = 30
RIGHT_BROW = tuple(range(17, 22))
LEFT_BROW = tuple(range(22, 27))


def landmark_scale(landmark_points: np.ndarray) -> float:
  """Outer-eye-corner distance ``|p45 - p36|`` of ``[68, 2|3]`` landmark points."""
  p = np.asarray(landmark_points, dtype=np.float64)
  if p.shape[0] != 68:
    raise ValueError(f"expected 68 landmark points, got shape {p.shape}")
  scale = float(np.linalg.norm(p[45] - p[36]))
  if not scale > 0:
    raise ValueError("landmarks 36 and 45 (outer eye corners) coincide")
  return scale


def distance_to_segments(points: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
  """Distance from each point to the nearest of the 2-D segments.

  Args:
    points: ``[N, 2]``.
    starts, ends: ``[S, 2]`` segment end points.

  Returns:
    ``[N]`` float64.
  """
  p = np.asarray(points, dtype=np.float64)[:, None, :]
  a = np.asarray(starts, dtype=np.float64)[None]
  ab = np.asarray(ends, dtype=np.float64)[None] - a
  t = np.clip(np.sum((p - a) * ab, -1) / np.maximum(np.sum(ab * ab, -1), 1e-30), 0.0, 1.0)
  return np.min(np.linalg.norm(p - (a + t[..., None] * ab), axis=-1), axis=1)


def signed_distance_to_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
  """Signed distance (negative inside) from 2-D points to a closed polygon.

  Args:
    points: ``[N, 2]``.
    polygon: ``[P, 2]`` vertices in order (closed implicitly).

  Returns:
    ``[N]`` float64.
  """
  polygon = np.asarray(polygon, dtype=np.float64)
  points = np.asarray(points, dtype=np.float64)
  distance = distance_to_segments(points, polygon, np.roll(polygon, -1, axis=0))
  inside = mpath.Path(polygon).contains_points(points)
  return np.where(inside, -distance, distance)


def occluded_from_front(vertices: np.ndarray, triangles: np.ndarray, candidates: np.ndarray,
                        tolerance: float, chunk: int = 128) -> np.ndarray:
  """Whether each candidate vertex is hidden by a triangle in front of it (+z).

  An orthographic frontal visibility test: a vertex is occluded when its
  (x, y) lies inside the (x, y) projection of a triangle whose interpolated
  z there is more than ``tolerance`` larger. (Triangles using the vertex give
  back its own z at that point, so ``tolerance > 0`` ignores them.)

  Args:
    vertices: ``[V, 3]``.
    triangles: ``[F, 3]`` int.
    candidates: ``[C]`` int vertex indices to test.
    tolerance: depth margin (> 0), same unit as ``vertices``.
    chunk: candidates per vectorised block (sorted by x, so each block
      meets only the triangles of a narrow band).

  Returns:
    ``[C]`` bool.
  """
  if not tolerance > 0:
    raise ValueError(f"tolerance must be positive, got {tolerance}")
  v = np.asarray(vertices, dtype=np.float64)
  corners = v[np.asarray(triangles, dtype=np.int64)]  # [F, 3, 3]
  candidates = np.asarray(candidates, dtype=np.int64)
  out = np.zeros(len(candidates), dtype=bool)
  det = ((corners[:, 1, 0] - corners[:, 0, 0]) * (corners[:, 2, 1] - corners[:, 0, 1]) -
         (corners[:, 1, 1] - corners[:, 0, 1]) * (corners[:, 2, 0] - corners[:, 0, 0]))
  corners = corners[np.abs(det) > 1e-12 * max(float(np.abs(det).max(initial=0.0)), 1e-30)]
  box_lo, box_hi = corners[:, :, :2].min(1), corners[:, :, :2].max(1)
  order = np.argsort(v[candidates, 0], kind="stable")
  for start in range(0, len(order), chunk):
    rows = order[start:start + chunk]
    p = v[candidates[rows]]
    near = np.all(box_hi >= p[:, :2].min(0), 1) & np.all(box_lo <= p[:, :2].max(0), 1)
    a, b, c = (corners[near, k] for k in range(3))
    ab, ac = b - a, c - a
    d = ab[:, 0] * ac[:, 1] - ab[:, 1] * ac[:, 0]
    ap = p[:, None, :2] - a[None, :, :2]  # [C, F, 2]
    s = (ap[..., 0] * ac[:, 1] - ap[..., 1] * ac[:, 0]) / d
    r = (ab[:, 0] * ap[..., 1] - ab[:, 1] * ap[..., 0]) / d
    inside = (s >= 0) & (r >= 0) & (s + r <= 1)
    z = a[:, 2] + s * ab[:, 2] + r * ac[:, 2]
    out[rows] = np.any(inside & (z > p[:, None, 2] + tolerance), axis=1)
  return out


def nose_base_polygon(landmark_points: np.ndarray) -> np.ndarray:
  """``[7, 2]`` polygon: landmarks 31..35, then 35 and 31 raised to the tip's height."""
  p = np.asarray(landmark_points, dtype=np.float64)[:, :2]
  top_y = p[NOSE_TIP, 1]
  base = p[list(NOSE_BASE)]
  return np.concatenate([base, [[base[-1, 0], top_y], [base[0, 0], top_y]]], axis=0)


def skin_mask(vertices: np.ndarray, triangles: np.ndarray, landmarks68: np.ndarray,
              eye_margin: float = 0.04, mouth_margin: float = 0.03,
              nose_margin: float = 0.04) -> np.ndarray:
  """Face-skin mask of a neutral face mesh (see the module docstring).

  Args:
    vertices: ``[V, 3]`` mean shape, +y up, +z towards the viewer.
    triangles: ``[F, 3]`` int, wound counter-clockwise from the front.
    landmarks68: ``[68]`` int vertex indices (iBUG order).
    eye_margin, mouth_margin, nose_margin: region margins as fractions of
      the outer-eye-corner distance.

  Returns:
    ``[V]`` bool, True on skin.
  """
  v = np.asarray(vertices, dtype=np.float64)
  landmarks68 = np.asarray(landmarks68)
  if landmarks68.shape != (68,):
    raise ValueError(f"landmarks68 must have shape [68], got {landmarks68.shape}")
  if landmarks68.min() < 0 or landmarks68.max() >= len(v):
    raise ValueError(f"landmarks68 has vertex indices outside [0, {len(v)})")
  lm = v[landmarks68]
  scale = landmark_scale(lm)
  xy = v[:, :2]
  excluded = np.zeros(len(v), dtype=bool)
  for group, margin in ((RIGHT_EYE, eye_margin), (LEFT_EYE, eye_margin),
                        (OUTER_LIPS, mouth_margin)):
    excluded |= signed_distance_to_polygon(xy, lm[list(group), :2]) <= margin * scale
  nose_distance = signed_distance_to_polygon(xy, nose_base_polygon(lm))
  in_nose = np.flatnonzero(nose_distance <= nose_margin * scale)
  vn = normals_lib.vertex_normals(v, triangles)[in_nose]
  facing_up_or_down = np.abs(vn[:, 1]) > vn[:, 2]
  hidden = occluded_from_front(v, triangles, in_nose, tolerance=0.005 * scale)
  excluded[in_nose[facing_up_or_down | hidden]] = True
  return ~excluded
