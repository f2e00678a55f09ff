"""Photo -> model inputs: load, detect, dense landmarks, align, masks.

One :class:`FacePreprocessor` holds the detector and the landmark network
(build once, reuse). Dense landmarks are predicted on the full-resolution
photo (sharper than on the crop) and then mapped into the aligned crop,
where the masks are computed.
"""

import dataclasses
import os
from typing import List, Optional, Tuple, Union

import numpy as np

from facegcn_tf.data import alignment, face_mask, image_io
from facegcn_tf.data.dense_landmarks import DenseLandmarker, dense_to_68
from facegcn_tf.data.detection import Detection, FaceDetector


@dataclasses.dataclass(frozen=True)
class PreparedFace:
  """Everything the networks need from one photo.

  Attributes:
    aligned: the 224 crop, its valid area, 5 points and transform.
    masks: region / skin / face masks in the aligned grid.
    landmarks68: [68, 2] iBUG points in aligned coordinates.
    dense: [468, 3] MediaPipe points in aligned coordinates (z in aligned px).
    detection: the MTCNN detection in original-photo coordinates.
    source_path: where the photo came from.
    source_size: (height, width) of the full-resolution photo.
  """
  aligned: alignment.AlignedFace
  masks: face_mask.FaceMasks
  landmarks68: np.ndarray
  dense: np.ndarray
  detection: Detection
  source_path: str
  source_size: Tuple[int, int]


class FacePreprocessor:
  """Turns photos into :class:`PreparedFace` records.

  Args:
    template5: [5, 3] alignment template (``alignment.five_point_template``).
    detector: a :class:`FaceDetector` (built with ``min_confidence`` if None).
    landmarker: a :class:`DenseLandmarker` (built if None).
    min_confidence: detector threshold when the detector is built here.
    size: aligned crop side.
    forehead: forehead extension of the mask region.
    align_method: alignment fit, "scale_translation" or "pos" (see
      ``alignment.estimate_transform``).
  """

  def __init__(self, template5: np.ndarray, detector: Optional[FaceDetector] = None,
               landmarker: Optional[DenseLandmarker] = None, min_confidence: float = 0.9,
               size: int = alignment.ALIGNED_SIZE, forehead: float = 0.0,
               align_method: str = "scale_translation"):
    template5 = np.asarray(template5, dtype=np.float64)
    if template5.shape != (5, 3):
      raise ValueError(f"template5 must be [5, 3], got {template5.shape}")
    self.template5 = template5
    if detector is None:
      detector = FaceDetector(min_confidence=min_confidence)
    self.detector = detector
    self.landmarker = landmarker if landmarker is not None else DenseLandmarker()
    if align_method not in alignment.FIT_METHODS:
      raise ValueError(f"unknown align_method '{align_method}'; "
                       f"choose from {sorted(alignment.FIT_METHODS)}")
    self.size = int(size)
    self.forehead = float(forehead)
    self.align_method = align_method

  def prepare_image(self, rgb: np.ndarray, name: str = "<array>") -> PreparedFace:
    """Prepares the most confident face of a ``[H, W, 3] uint8`` photo.

    Raises:
      NoFaceError: no face (detector or landmark model).
      ValueError: malformed image, or a face too small to build masks on.
    """
    rgb = image_io.ensure_rgb_uint8(rgb, name)
    return self.prepare_detection(rgb, self.detector.most_confident(rgb, name=name), name)

  def prepare_all_faces(self, rgb: np.ndarray, name: str = "<array>") -> List[PreparedFace]:
    """Prepares every detected face of a photo, most confident first.

    Raises:
      NoFaceError: no face above the detector's threshold.
    """
    rgb = image_io.ensure_rgb_uint8(rgb, name)
    return [self.prepare_detection(rgb, d, name) for d in self.detector.all_faces(rgb, name)]

  def prepare_detection(self, rgb: np.ndarray, detection: Detection,
                        name: str = "<array>") -> PreparedFace:
    """Prepares the face of one detection (``[H, W, 3] uint8`` photo)."""
    dense = self.landmarker.predict(rgb, detection.box, detection.points, name=name)
    aligned = alignment.align_face(rgb, detection.points, self.template5, size=self.size,
                                   method=self.align_method)
    transform = aligned.transform
    dense_aligned = np.concatenate(
        [transform.to_aligned(dense.points[:, :2]), dense.points[:, 2:3] * transform.zoom], axis=1)
    masks = face_mask.face_masks(aligned.image, dense_aligned, forehead=self.forehead,
                                 valid=aligned.valid)
    return PreparedFace(aligned=aligned, masks=masks,
                        landmarks68=dense_to_68(dense_aligned[:, :2]),
                        dense=dense_aligned, detection=detection, source_path=name,
                        source_size=(int(rgb.shape[0]), int(rgb.shape[1])))

  def prepare_file(self, path: Union[str, os.PathLike], name: Optional[str] = None) -> PreparedFace:
    """Loads ``path`` (see ``image_io.load_image``) and prepares it.

    Args:
      path: the photo.
      name: what to record as its source path (default ``str(path)``).
    """
    loaded = image_io.load_image(path)
    return self.prepare_image(loaded.rgb, name=name if name is not None else str(path))
