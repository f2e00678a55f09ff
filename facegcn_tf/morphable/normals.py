"""Face/vertex normals and outward orientation of face meshes.

:func:`vertex_normals` is the library's one vertex-normal implementation: it is
written in TensorFlow (batched, differentiable; the renderer and the fitter call
it in their loops) and also takes numpy arrays, for model building and export.
The other helpers are numpy.
"""

from typing import Union

import numpy as np
import tensorflow as tf


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


def vertex_normals(vertices: Union[np.ndarray, tf.Tensor],
                   triangles: Union[np.ndarray, tf.Tensor]) -> Union[np.ndarray, tf.Tensor]:
  """Area-weighted unit vertex normals (the GCN code's variant, paper_spec 2.4).

  Each vertex gets the normalised sum of ``cross(v1 - v0, v2 - v0)`` (length
  twice the area) over the triangles it is a corner of.

  Args:
    vertices: ``[V, 3]`` or ``[B, V, 3]``; a TF tensor (the result is then a
      differentiable tensor of its dtype) or an array-like (computed in
      float64, returned as numpy).
    triangles: ``[F, 3]`` int, counter-clockwise seen from outside.

  Returns:
    Same shape as ``vertices``: unit normals, zero for vertices in no triangle.
  """
  as_numpy = not tf.is_tensor(vertices)
  v = tf.constant(np.asarray(vertices, np.float64)) if as_numpy else vertices
  single = v.shape.rank == 2
  if single:
    v = v[tf.newaxis]
  triangles = tf.cast(triangles, tf.int32)
  corners = tf.gather(v, triangles, axis=1)  # [B, F, 3, 3]
  face = tf.linalg.cross(corners[:, :, 1] - corners[:, :, 0],
                         corners[:, :, 2] - corners[:, :, 0])  # [B, F, 3], |n| = 2·area
  per_corner = tf.tile(tf.transpose(face, [1, 0, 2])[:, tf.newaxis], [1, 3, 1, 1])  # [F, 3, B, 3]
  summed = tf.math.unsorted_segment_sum(
      tf.reshape(per_corner, [-1, tf.shape(v)[0], 3]),
      tf.reshape(triangles, [-1]), num_segments=tf.shape(v)[1])  # [V, B, 3]
  # float64 keeps the normals of tiny triangles (|n| down to 1e-30).
  epsilon = 1e-60 if v.dtype == tf.float64 else 1e-12
  normals = tf.math.l2_normalize(tf.transpose(summed, [1, 0, 2]), axis=-1, epsilon=epsilon)
  if single:
    normals = normals[0]
  return normals.numpy() if as_numpy else normals


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
