"""Photo -> model inputs: load, detect, dense landmarks, align, masks.

One :class:`FacePreprocessor` holds the detector and the landmark network
(build once, reuse). Dense landmarks are predicted on the full-resolution
photo (sharper than on the crop) and then mapped into the aligned crop,
where the masks are computed.

Masked and hard faces (issue #11.3): when MTCNN finds no face at its
threshold, its weaker candidates (down to ``fallback_confidence``, searched with
its refinement stage opened: see ``FaceDetector.detect``) are shown
to MediaPipe's dense landmark model, and a candidate whose face-presence
probability reaches ``fallback_presence`` is reconstructed
(``PreparedFace.detected_by == "mtcnn+landmarks"``); the occluder (a surgical
mask, a hand) is left to the fitter. A photo where neither confirms a face
still fails with one line naming both figures.
"""

import dataclasses
import os
from typing import List, Optional, Tuple, Union

import numpy as np

from facegcn_tf.data import alignment, face_mask, image_io
from facegcn_tf.data.dense_landmarks import DenseLandmarker, dense_to_68
from facegcn_tf.data.detection import Detection, FaceDetector
from facegcn_tf.errors import NoFaceError

# How the face was found: MTCNN alone, or a weak MTCNN candidate the landmark model confirmed.
DETECTED_BY_MTCNN = "mtcnn"
DETECTED_BY_LANDMARKS = "mtcnn+landmarks"


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
    landmark_presence: the dense landmark model's face-presence probability.
    detected_by: ``"mtcnn"`` or ``"mtcnn+landmarks"`` (a weak MTCNN candidate the
      landmark model confirmed; see the module docstring).
  """
  aligned: alignment.AlignedFace
  masks: face_mask.FaceMasks
  landmarks68: np.ndarray
  dense: np.ndarray
  detection: Detection
  source_path: str
  source_size: Tuple[int, int]
  landmark_presence: float = float("nan")
  detected_by: str = DETECTED_BY_MTCNN


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
    fallback_confidence: MTCNN candidates down to this score are offered to the
      landmark model when none reaches the detector's threshold (1 or more: no fallback).
    fallback_presence: the landmark model's face-presence probability that confirms
      such a candidate.
    fallback_candidates: how many weak candidates are tried, most confident first.
  """

  def __init__(self, template5: np.ndarray, detector: Optional[FaceDetector] = None,
               landmarker: Optional[DenseLandmarker] = None, min_confidence: float = 0.9,
               size: int = alignment.ALIGNED_SIZE, forehead: float = 0.0,
               align_method: str = "scale_translation", fallback_confidence: float = 0.5,
               fallback_presence: float = 0.9, fallback_candidates: int = 3):
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
    if not 0.0 <= fallback_presence <= 1.0:
      raise ValueError(f"fallback_presence must be in [0, 1], got {fallback_presence}")
    self.fallback_confidence = float(fallback_confidence)
    self.fallback_presence = float(fallback_presence)
    self.fallback_candidates = int(fallback_candidates)

  def _confirmed(self, rgb: np.ndarray, name: str) -> List[PreparedFace]:
    """Weak MTCNN candidates the landmark model confirms, most confident first.

    Raises:
      NoFaceError: none; one line with the best candidate's scores.
    """
    threshold = self.detector.min_confidence
    candidates = []
    if self.fallback_confidence < threshold:
      candidates = self.detector.detect(rgb, min_confidence=self.fallback_confidence)
    confirmed, refused = [], None
    for detection in candidates[:self.fallback_candidates]:
      try:
        face = self.prepare_detection(rgb, detection, "", min_presence=self.fallback_presence,
                                      detected_by=DETECTED_BY_LANDMARKS)
      except NoFaceError as err:
        refused = refused or (detection.confidence, str(err))
        continue
      confirmed.append(dataclasses.replace(face, source_path=name))
    if confirmed:
      return confirmed
    where = f"{name}: " if name else ""
    detail = (f"; the best weaker candidate (MTCNN {refused[0]:.2f}) was not confirmed: "
              f"{refused[1]}" if refused else "")
    raise NoFaceError(f"{where}no face found with confidence >= {threshold:g}{detail}")

  def _detect(self, rgb: np.ndarray, name: str) -> List[PreparedFace]:
    """Every face: MTCNN's at its threshold, else the confirmed weak candidates."""
    detections = self.detector.detect(rgb)
    if not detections:
      return self._confirmed(rgb, name)
    return [self.prepare_detection(rgb, d, name) for d in detections]

  def prepare_image(self, rgb: np.ndarray, name: str = "<array>") -> PreparedFace:
    """Prepares the most confident face of a ``[H, W, 3] uint8`` photo.

    Raises:
      NoFaceError: no face (detector or landmark model).
      ValueError: malformed image, or a face too small to build masks on.
    """
    rgb = image_io.ensure_rgb_uint8(rgb, name)
    detections = self.detector.detect(rgb)
    if not detections:
      return self._confirmed(rgb, name)[0]
    return self.prepare_detection(rgb, detections[0], name)

  def prepare_all_faces(self, rgb: np.ndarray, name: str = "<array>") -> List[PreparedFace]:
    """Prepares every detected face of a photo, most confident first.

    Raises:
      NoFaceError: no face above the detector's threshold, and no weaker candidate the
        landmark model confirms.
    """
    rgb = image_io.ensure_rgb_uint8(rgb, name)
    return self._detect(rgb, name)

  def prepare_detection(self, rgb: np.ndarray, detection: Detection,
                        name: str = "<array>", min_presence: Optional[float] = None,
                        detected_by: str = DETECTED_BY_MTCNN) -> PreparedFace:
    """Prepares the face of one detection (``[H, W, 3] uint8`` photo).

    Args:
      rgb: the photo.
      detection: the face's detection.
      name: for error messages and the record.
      min_presence: the landmark model's presence needed (default: its own).
      detected_by: recorded in the `PreparedFace`.
    """
    dense = self.landmarker.predict(rgb, detection.box, detection.points, name=name)
    needed = self.landmarker.min_presence if min_presence is None else min_presence
    if dense.presence < needed:
      where = f"{name}: " if name else ""
      raise NoFaceError(f"{where}dense landmark model sees no face in the box "
                        f"(presence {dense.presence:.2f} < {needed:g})")
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
                        source_size=(int(rgb.shape[0]), int(rgb.shape[1])),
                        landmark_presence=float(dense.presence), detected_by=detected_by)

  def prepare_file(self, path: Union[str, os.PathLike], name: Optional[str] = None) -> PreparedFace:
    """Loads ``path`` (see ``image_io.load_image``) and prepares it.

    Args:
      path: the photo.
      name: what to record as its source path (default ``str(path)``).
    """
    loaded = image_io.load_image(path)
    return self.prepare_image(loaded.rgb, name=name if name is not None else str(path))
