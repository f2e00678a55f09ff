"""What a reconstruction hands to the writers: one face's `FaceResult`, and `save` for it.

The pipeline (`facegcn_tf.pipeline`) fills a `FaceResult` from the stages it ran (prepared
photo, coarse fit, refinement); this module turns it into files through `writer.export_face`
and `report.face_report` and computes nothing about the face itself.
"""

import dataclasses
import pathlib
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from facegcn_tf.data.preprocess import PreparedFace
from facegcn_tf.export import eye_colors
from facegcn_tf.export import overlay
from facegcn_tf.export import report as report_lib
from facegcn_tf.export import uv_texture
from facegcn_tf.export import writer
from facegcn_tf.morphable import albedo as albedo_lib
from facegcn_tf.morphable.model import MorphableModel


@dataclasses.dataclass
class FaceResult:
  """The reconstruction of one face (numpy, batch axis removed).

  Attributes:
    name: the output name (file-name stem).
    model: the face model the arrays belong to (topology, UVs, mirror pairs).
    face: the prepared face (aligned crop, alignment, landmarks, masks, detection).
    photo: [H, W, 3] uint8 the full-resolution photo the face came from.
    coeffs: [N] coarse coefficients (model layout).
    shape: [V, 3] model-space shape (identity + expression), decimetres.
    coarse_albedo: [V, 3] the 3DMM albedo in [0, 1].
    fine_albedo: [V, 3] the refined albedo in [0, 1].
    lit_colors: [V, 3] the fine albedo under the fitted light, in [0, 1].
    visibility: [V] 1 where the photo shows the vertex.
    landmarks: [68, 2] projected model landmarks, aligned pixels.
    renders: the aligned panels (crop, coarse, fine, shape, coverage).
    figures: losses and quality figures by name.
    extra: run facts stored under the report's ``"extra"`` (faces in the photo, seconds).
    pixels: [V, 2] aligned-crop positions of the posed vertices, or None.
    irradiance: [V, 3] fitted irradiance at the vertices, or None.
    photo_trust: [V] in [0, 1], how much the photo decides each vertex's albedo, or None.
      With all three the UV texture carries the photo's full-resolution detail. Set by the
      pipeline's texture stage, which has also filled `fine_albedo`'s unseen parts: the
      writer then does not fill them again.
    head_model: the whole head the ``head`` format exports (``morphable.head``), or None
      (then ``head`` is skipped: the face model has no head, e.g. BFM).
  """
  name: str
  model: MorphableModel
  face: PreparedFace
  photo: np.ndarray
  coeffs: np.ndarray
  shape: np.ndarray
  coarse_albedo: np.ndarray
  fine_albedo: np.ndarray
  lit_colors: np.ndarray
  visibility: np.ndarray
  landmarks: np.ndarray
  renders: overlay.AlignedRenders
  figures: Dict[str, float]
  extra: Dict[str, Any] = dataclasses.field(default_factory=dict)
  pixels: Optional[np.ndarray] = None
  irradiance: Optional[np.ndarray] = None
  photo_trust: Optional[np.ndarray] = None
  head_model: Any = None

  def eye_mouth_colors(self):
    """Iris and teeth colours read from the aligned photo (`export.eye_colors`)."""
    visible = self.visibility > 0.5
    gain = 1.0
    if visible.sum() > 100:
      gain = float(np.median(albedo_lib.luma(self.fine_albedo[visible])) /
                   max(np.median(albedo_lib.luma(self.lit_colors[visible])), 1e-3))
    return eye_colors.eye_mouth_colors(self.renders.crop, self.face.landmarks68,
                                       albedo_gain=float(np.clip(gain, 0.5, 2.0)))

  def report(self, flags: Any = None) -> Dict[str, Any]:
    """The face's JSON report (`report.face_report`)."""
    face = self.face
    transform = face.aligned.transform
    return report_lib.face_report(
        self.name, self.coeffs, self.model.layout, model_name=self.model.name,
        landmarks_aligned=self.landmarks,
        landmarks_original=transform.to_original(self.landmarks),
        losses=self.figures, flags=flags,
        source={"path": face.source_path, "size_hw": list(face.source_size),
                "detection_confidence": face.detection.confidence,
                "detection_box_xyxy": face.detection.box,
                "landmark_confidence": face.landmark_presence,
                "detected_by": face.detected_by},
        extra=self.extra)

  def save(self, output_dir, formats: Sequence[str] = writer.DEFAULT_FORMATS,
           texture_size: int = uv_texture.DEFAULT_SIZE,
           flags: Optional[Mapping[str, Any]] = None) -> List[str]:
    """Writes every file of this face into `output_dir` (see `writer.export_face`).

    Returns:
      The written paths, the JSON last.
    """
    formats = writer.exported_formats(formats, self.head_model is not None)
    head = self.eye_mouth_colors() if "head" in formats else None
    return writer.export_face(
        pathlib.Path(output_dir), self.name, self.model, vertices=self.shape,
        fine_albedo=self.fine_albedo, coarse_albedo=self.coarse_albedo,
        lit_colors=self.lit_colors, visibility=self.visibility, photo=self.photo,
        transform=self.face.aligned.transform, renders=self.renders,
        report=self.report(flags), formats=formats, texture_size=texture_size,
        pixels=self.pixels, irradiance=self.irradiance, photo_trust=self.photo_trust,
        head_model=self.head_model if head else None, coeffs=self.coeffs, eye_colors=head,
        unseen_filled=self.photo_trust is not None)


__all__ = ["FaceResult"]
