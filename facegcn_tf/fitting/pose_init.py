"""Closed-form starting pose from 2D-3D landmark correspondences.

OpenCV's perspective-n-point solver (`cv2.solvePnP`: EPnP, then Levenberg-
Marquardt refinement) finds the rigid pose that projects the model's 3D
landmarks onto the detected 2D ones through the renderer's pinhole camera. The
result is converted to the renderer's parameters: world = R(angles)·v + trans,
with the camera at (0, 0, d) looking down -z (OpenCV's camera looks down +z
with y down, so R = F·R_cv and trans = F·(t_cv − (0, 0, d)), F = diag(1, −1, −1)).
Euler angles come from tensorflow-graphics, the inverse of the `from_euler` the
renderer uses.
"""

from typing import Tuple

import cv2
import numpy as np
from tensorflow_graphics.geometry.transformation import euler

from facegcn_tf.render.camera import Camera

_FLIP = np.diag([1.0, -1.0, -1.0])


def camera_matrix(camera: Camera) -> np.ndarray:
  """[3, 3] OpenCV intrinsics of `camera` (pixel centres at integers)."""
  centre = 0.5 * camera.image_size - 0.5
  return np.array([[camera.focal, 0.0, centre], [0.0, camera.focal, centre], [0.0, 0.0, 1.0]])


def angles_from_matrix(rotation: np.ndarray) -> np.ndarray:
  """[..., 3, 3] rotation R = Rz·Ry·Rx -> [..., 3] Euler angles (x, y, z), radians."""
  return np.asarray(euler.from_rotation_matrix(np.asarray(rotation, np.float64)))


def solve_pose(landmarks2d: np.ndarray, points3d: np.ndarray,
               camera: Camera) -> Tuple[np.ndarray, np.ndarray, float]:
  """Rigid pose of one face from its landmarks.

  Args:
    landmarks2d: [N, 2] image points (x, y) on `camera`'s pixel grid, N >= 6.
    points3d: [N, 3] the matching model-space points (decimetres).
    camera: the camera the image was taken with.

  Returns:
    (angles [3] radians, trans [3] decimetres, RMS reprojection error in px).

  Raises:
    ValueError: malformed or non-finite input, or no pose in front of the camera.
  """
  image_points = np.asarray(landmarks2d, np.float64)
  object_points = np.asarray(points3d, np.float64)
  if (image_points.ndim != 2 or image_points.shape[1] != 2 or object_points.shape
      != (image_points.shape[0], 3) or image_points.shape[0] < 6):
    raise ValueError(f"need [N, 2] image and [N, 3] model points with N >= 6, got "
                     f"{image_points.shape} and {object_points.shape}")
  if not (np.all(np.isfinite(image_points)) and np.all(np.isfinite(object_points))):
    raise ValueError("landmarks contain NaN or inf")
  matrix = camera_matrix(camera)
  ok, rvec, tvec = cv2.solvePnP(object_points, image_points, matrix, None,
                                flags=cv2.SOLVEPNP_EPNP)
  if not ok or tvec[2, 0] <= 0:  # EPnP failed: start from a frontal face at the origin.
    rvec = np.zeros([3, 1])
    tvec = np.array([[0.0], [0.0], [camera.distance]])
  ok, rvec, tvec = cv2.solvePnP(object_points, image_points, matrix, None, rvec, tvec,
                                useExtrinsicGuess=True, flags=cv2.SOLVEPNP_ITERATIVE)
  if not ok or not np.all(np.isfinite(tvec)) or tvec[2, 0] <= 0:
    raise ValueError("no face pose in front of the camera fits these landmarks")
  rotation_cv = cv2.Rodrigues(rvec)[0]
  rotation = _FLIP @ rotation_cv
  trans = _FLIP @ (tvec[:, 0] - np.array([0.0, 0.0, camera.distance]))
  projected = cv2.projectPoints(object_points, rvec, tvec, matrix, None)[0][:, 0]
  rms = float(np.sqrt(np.mean(np.sum(np.square(projected - image_points), axis=-1))))
  return angles_from_matrix(rotation), trans, rms


def initial_pose(landmarks2d: np.ndarray, points3d: np.ndarray,
                 camera: Camera) -> Tuple[np.ndarray, np.ndarray]:
  """Batched `solve_pose`: [B, N, 2] x [N, 3] -> (angles [B, 3], trans [B, 3]) float32."""
  landmarks2d = np.asarray(landmarks2d, np.float64)
  if landmarks2d.ndim != 3:
    raise ValueError(f"landmarks must be [B, N, 2], got shape {landmarks2d.shape}")
  poses = [solve_pose(points, points3d, camera)[:2] for points in landmarks2d]
  angles = np.stack([p[0] for p in poses]).astype(np.float32)
  trans = np.stack([p[1] for p in poses]).astype(np.float32)
  return angles, trans
