"""Face/vertex normals and outward orientation of face meshes (numpy).

These are reference helpers for building models and for tests; the
differentiable TF normals used in rendering live in ``facegcn_tf.render``.
"""

import numpy as np


def face_normals(vertices: np.ndarray, triangles: np.ndarray, normalize: bool = True) -> np.ndarray:
  """``cross(v1 - v0, v2 - v0)`` per triangle.

  Args:
    vertices: ``[V, 3]``.
    triangles: ``[F, 3]`` int.
    normalize: unit length if True, else length = twice the triangle area.

  Returns:
    ``[F, 3]`` float64.
  """
  v = np.asarray(vertices, dtype=np.float64)
  t = np.asarray(triangles)
  n = np.cross(v[t[:, 1]] - v[t[:, 0]], v[t[:, 2]] - v[t[:, 0]])
  if normalize:
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-30)
  return n


def vertex_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
  """Area-weighted unit vertex normals (the GCN code's variant, paper_spec 2.4).

  Returns:
    ``[V, 3]`` float64; zero for vertices in no triangle.
  """
  v = np.asarray(vertices, dtype=np.float64)
  t = np.asarray(triangles)
  fn = face_normals(v, t, normalize=False)
  out = np.zeros_like(v)
  for k in range(3):
    np.add.at(out, t[:, k], fn)
  return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-30)


def faces_viewer(vertices: np.ndarray, triangles: np.ndarray) -> bool:
  """Whether a face mesh's winding is outward (seen from +z).

  A face mesh is an open surface seen from +z: with outward winding its
  area-weighted normals sum to a vector with positive z.

  Args:
    vertices: ``[V, 3]``, +z towards the viewer.
    triangles: ``[F, 3]`` int, consistently wound (either way).
  """
  return bool(face_normals(vertices, triangles, normalize=False).sum(axis=0)[2] > 0)


def orient_towards_viewer(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
  """Returns ``triangles`` wound so the face front's normals point to +z.

  Flips every triangle (corners 1 and 2 swapped) unless :func:`faces_viewer`.

  Returns:
    ``[F, 3]`` int32.
  """
  t = np.asarray(triangles).astype(np.int32)
  if not faces_viewer(vertices, t):
    t = t[:, [0, 2, 1]]
  return np.ascontiguousarray(t)


def surface_centroid(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
  """Area-weighted centroid of a triangle surface, ``[3]`` float64.

  Unlike the vertex mean, it does not change under midpoint subdivision
  (the surface stays the same).
  """
  v = np.asarray(vertices, dtype=np.float64)
  t = np.asarray(triangles)
  area = np.linalg.norm(face_normals(v, t, normalize=False), axis=1)
  if not area.sum() > 0:
    raise ValueError("mesh has zero area")
  return (v[t].mean(axis=1) * area[:, None]).sum(axis=0) / area.sum()
