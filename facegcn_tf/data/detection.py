"""Face detection with MTCNN (``mtcnn`` 1.0.0; weights ship inside the wheel).

Construct one :class:`FaceDetector` and reuse it: building the three stage
networks costs about a second, a 512 px image about 0.3 s on CPU.
"""

import dataclasses
from typing import List, Optional

import numpy as np

from facegcn_tf.data import image_io
from facegcn_tf.errors import NoFaceError

# The 5 points, in the order used everywhere in this package. "left"/"right"
# are as seen in the image (the image-left eye is the subject's right eye).
POINT_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
# MTCNN's refinement-stage threshold while searching for weak candidates (see `detect`).
_CANDIDATE_RNET_THRESHOLD = 0.05


@dataclasses.dataclass(frozen=True)
class Detection:
  """One detected face, in the coordinates of the image passed to ``detect``.

  Attributes:
    box: [4] float (x0, y0, x1, y1) pixel box.
    confidence: MTCNN output-stage score in [0, 1].
    points: [5, 2] float (x, y) in :data:`POINT_NAMES` order.
  """
  box: np.ndarray
  confidence: float
  points: np.ndarray

  @property
  def width(self) -> float:
    return float(self.box[2] - self.box[0])

  @property
  def height(self) -> float:
    return float(self.box[3] - self.box[1])

  @property
  def center(self) -> np.ndarray:
    """[2] (x, y) centre of the box."""
    return np.array([(self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2])


class FaceDetector:
  """Finds faces and their 5 landmarks with MTCNN.

  Args:
    min_confidence: detections scoring below this are dropped.
    min_face_size: smallest face (pixels, in the detection copy) searched for.
    max_detect_side: images whose longer side exceeds this are detected on a
      downscaled copy (``image_io.downscale_for_detection``); boxes and points
      are mapped back to full resolution.
    device: TensorFlow device for the MTCNN stages.
  """

  def __init__(self, min_confidence: float = 0.9, min_face_size: int = 20,
               max_detect_side: int = image_io.DETECTION_MAX_SIDE,
               device: str = "CPU:0"):
    if not 0.0 <= min_confidence <= 1.0:
      raise ValueError(f"min_confidence must be in [0, 1], got {min_confidence}")
    if min_face_size < 12:
      raise ValueError(f"min_face_size must be >= 12 (MTCNN's cell size), got {min_face_size}")
    from mtcnn import MTCNN  # pylint: disable=import-outside-toplevel  (pulls in TensorFlow)
    self._mtcnn = MTCNN(device=device)
    self.min_confidence = float(min_confidence)
    self.min_face_size = int(min_face_size)
    self.max_detect_side = int(max_detect_side)

  def detect(self, image: np.ndarray, min_confidence: Optional[float] = None) -> List[Detection]:
    """Detects faces.

    Args:
      image: [H, W, 3] uint8 RGB.
      min_confidence: keep detections scoring at least this (default: the detector's
        ``min_confidence``; lower it to list weak candidates, e.g. masked faces).

    Returns:
      Detections with confidence >= ``min_confidence``, most confident first,
      in full-resolution coordinates of ``image``.
    """
    floor = self.min_confidence if min_confidence is None else float(min_confidence)
    image = image_io.ensure_rgb_uint8(image)
    small, scale = image_io.downscale_for_detection(image, self.max_detect_side)
    # MTCNN's refinement and output stages have their own thresholds (0.7, 0.8 by
    # default); lower them when the caller asks for less so that our filter is the one
    # that counts. A search below the detector's own threshold (weak candidates, e.g.
    # masked faces) also opens the refinement stage: it scores a masked face low, while
    # the output stage may still score it high (0.99 on a masked example).
    rnet = _CANDIDATE_RNET_THRESHOLD if floor < self.min_confidence else min(0.7, floor)
    rows = self._mtcnn.detect_faces(
        small, output_type="numpy", box_format="xyxy",
        min_face_size=self.min_face_size,
        threshold_rnet=rnet, threshold_onet=min(0.8, floor))
    rows = np.asarray(rows, dtype=np.float64)
    if rows.ndim != 2 or rows.shape[0] == 0 or rows.shape[1] < 16:
      return []  # No face (mtcnn returns a [0, 6] or [0, 16] array then).
    detections = []
    for row in rows:
      if row[5] < floor:
        continue
      # Layout of mtcnn's numpy output: [id, x0, y0, x1, y1, conf, 5 x's, 5 y's].
      box = row[1:5].reshape(2, 2)
      points = np.stack([row[6:11], row[11:16]], axis=-1)
      if scale != 1.0:
        box = image_io.to_original_coords(box, scale)
        points = image_io.to_original_coords(points, scale)
      detections.append(Detection(box=box.reshape(4), confidence=float(row[5]),
                                  points=points.astype(np.float64)))
    detections.sort(key=lambda d: -d.confidence)
    return detections

  def all_faces(self, image: np.ndarray, name: Optional[str] = None) -> List[Detection]:
    """Every face, most confident first.

    Raises:
      NoFaceError: no face at or above ``min_confidence``.
    """
    detections = self.detect(image)
    if not detections:
      where = f"{name}: " if name else ""
      raise NoFaceError(f"{where}no face found with confidence >= {self.min_confidence:g}")
    return detections

  def most_confident(self, image: np.ndarray, name: Optional[str] = None) -> Detection:
    """The highest-scoring face.

    Raises:
      NoFaceError: no face at or above ``min_confidence``.
    """
    return self.all_faces(image, name)[0]
