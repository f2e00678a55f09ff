"""Face geometry from 3DMM coefficients: shape, albedo, pose (batched, differentiable).

`vertex_normals` is `morphable.normals.vertex_normals`, re-exported for the renderer.
"""

import tensorflow as tf
from tensorflow_graphics.geometry.transformation import rotation_matrix_3d

from facegcn_tf.morphable.normals import vertex_normals  # noqa: F401  (re-exported)


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
