"""Face geometry from 3DMM coefficients: shape, albedo, pose, normals (batched, differentiable)."""

import tensorflow as tf
from tensorflow_graphics.geometry.transformation import rotation_matrix_3d


def linear_combination(mean: tf.Tensor, basis: tf.Tensor, coeffs: tf.Tensor) -> tf.Tensor:
  """`mean + Σ_k coeffs[:, k] · basis[k]`.

  Args:
    mean: [V, 3].
    basis: [K, V, 3].
    coeffs: [B, K].

  Returns:
    [B, V, 3].
  """
  k = tf.shape(basis)[0]
  flat = tf.reshape(basis, [k, -1])  # [K, V*3]
  delta = tf.matmul(tf.cast(coeffs, flat.dtype), flat)  # [B, V*3]
  return mean[tf.newaxis] + tf.reshape(delta, [-1, tf.shape(mean)[0], 3])


def rotation_matrices(angles: tf.Tensor) -> tf.Tensor:
  """[B, 3] Euler angles (pitch x, yaw y, roll z; radians) -> [B, 3, 3] R = Rz·Ry·Rx.

  This is Deep3DFace's rotation (it stores the transpose and right-multiplies row vectors).
  """
  return rotation_matrix_3d.from_euler(angles)


def rigid_transform(vertices: tf.Tensor, angles: tf.Tensor, translation: tf.Tensor) -> tf.Tensor:
  """Poses a shape: `R(angles) · v + translation`.

  Args:
    vertices: [B, V, 3].
    angles: [B, 3] radians.
    translation: [B, 3].

  Returns:
    [B, V, 3].
  """
  rot = rotation_matrices(angles)
  return tf.einsum("bij,bvj->bvi", rot, vertices) + translation[:, tf.newaxis, :]


def rotate(vectors: tf.Tensor, angles: tf.Tensor) -> tf.Tensor:
  """[B, V, 3] directions rotated by [B, 3] Euler angles (no translation)."""
  return tf.einsum("bij,bvj->bvi", rotation_matrices(angles), vectors)


def vertex_normals(vertices: tf.Tensor, triangles: tf.Tensor) -> tf.Tensor:
  """Unit vertex normals: area-weighted sum of incident face normals, normalised.

  Args:
    vertices: [B, V, 3].
    triangles: [F, 3] int32, counter-clockwise seen from outside.

  Returns:
    [B, V, 3] unit normals (zero for vertices in no triangle).
  """
  triangles = tf.cast(triangles, tf.int32)
  corners = tf.gather(vertices, triangles, axis=1)  # [B, F, 3, 3]
  face_normals = tf.linalg.cross(corners[:, :, 1] - corners[:, :, 0],
                                 corners[:, :, 2] - corners[:, :, 0])  # [B, F, 3], |n| = 2·area
  per_corner = tf.tile(tf.transpose(face_normals, [1, 0, 2])[:, tf.newaxis], [1, 3, 1, 1])
  summed = tf.math.unsorted_segment_sum(
      tf.reshape(per_corner, [-1, tf.shape(vertices)[0], 3]),
      tf.reshape(triangles, [-1]), num_segments=tf.shape(vertices)[1])
  return tf.math.l2_normalize(tf.transpose(summed, [1, 0, 2]), axis=-1, epsilon=1e-12)
