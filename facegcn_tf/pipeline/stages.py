"""The typed results the pipeline's stages hand forward.

    photo path --prepare--> PreparedPhoto --coarse--> CoarseFit --refine--> Refinement
               --results--> export.result.FaceResult --save--> files

Each stage keeps what it computed (renders, raster, visibility, figures) so the next one
never recomputes it. Batched arrays carry a leading [B] over the faces of one batch.
"""

import dataclasses
import pathlib
from typing import Any, Dict, List, Optional, Union

import numpy as np
import tensorflow as tf

from facegcn_tf.data import image_io
from facegcn_tf.data.preprocess import PreparedFace
from facegcn_tf.render.renderer import Rendering


@dataclasses.dataclass
class PreparedPhoto:
  """A photo and its detected, aligned faces.

  Attributes:
    path: where it was read from (a URL string for a remote photo, see `storage`).
    photo: [H, W, 3] uint8 RGB, full resolution.
    faces: the prepared faces (crop, alignment, landmarks, masks, detection), most
      confident first.
    features: [F, D] identity features of each face's aligned crop.
  """
  path: Union[pathlib.Path, str]
  photo: np.ndarray
  faces: List[PreparedFace]
  features: np.ndarray


@dataclasses.dataclass
class FaceBatch:
  """B prepared faces stacked for the networks.

  Attributes:
    images: [B, S, S, 3] float32 aligned crops, RGB 0..255.
    landmarks: [B, 68, 2] detected landmarks, aligned pixels.
    face_mask: [B, S, S] float32 face region (the losses' mask).
    features: [B, D] identity features of the crops.
    oval: [B, S, S] float32 face oval the photo's skin-colour model judged
      (`FaceMasks.region`).
    valid: [B, S, S] float32, 1 where the crop holds photo content.
    grayscale: [B] bool, the face is a grey-level photo (its albedo will be grey).
  """
  images: np.ndarray
  landmarks: np.ndarray
  face_mask: np.ndarray
  features: np.ndarray
  oval: np.ndarray
  valid: np.ndarray
  grayscale: np.ndarray

  @classmethod
  def stack(cls, faces: List[PreparedFace], features: List[np.ndarray]) -> "FaceBatch":
    return cls(images=np.stack([f.aligned.image for f in faces]).astype(np.float32),
               landmarks=np.stack([f.landmarks68 for f in faces]).astype(np.float32),
               face_mask=np.stack([f.masks.face for f in faces]).astype(np.float32),
               features=np.stack(features).astype(np.float32),
               oval=np.stack([f.masks.region for f in faces]).astype(np.float32),
               valid=np.stack([f.aligned.valid for f in faces]).astype(np.float32),
               grayscale=np.array([image_io.is_grayscale(f.aligned.image, f.masks.region)
                                   for f in faces], bool))


@dataclasses.dataclass
class CoarseFit:
  """The coarse 3DMM of a batch, posed and rendered once on the texture mesh.

  Attributes:
    coeffs: [B, N] coefficients.
    rendering: the lit coarse render at the crop size (image [B, S, S, 3] unclipped,
      coverage mask, raster, posed geometry, lit colours): the one rasterization of the
      fitted face that every later stage reuses.
    albedo: [B, V, 3] coarse albedo in [0, 1].
    visibility: [B, V] 1 where the photo shows the vertex.
    landmarks: [B, 68, 2] projected model landmarks, aligned pixels.
    figures: name -> [B] (fitting losses, landmark NME).
    occlusion: [B, S, S] float32 in {0, 1}: pixels of the rendered face estimated to be
      occluded in the photo (hair, glasses, hands, masks; `fitting.occlusion`), or None
      when not estimated (an R-Net coarse stage).
  """
  coeffs: tf.Tensor
  rendering: Rendering
  albedo: tf.Tensor
  visibility: tf.Tensor
  landmarks: np.ndarray
  figures: Dict[str, np.ndarray]
  occlusion: Optional[np.ndarray] = None


@dataclasses.dataclass
class Refinement:
  """The fine texture of a batch.

  Attributes:
    fine_albedo: [B, V, 3] in [0, 1].
    lit_colors: [B, V, 3] the fine albedo under the fitted light, in [0, 1].
    render: [B, S, S, 3] the lit fine face in [0, 1], 0 outside the coverage.
    figures: name -> [B] (the refinement's own losses and figures, prefixed "refine_").
    trusted: [B, V] float32 in [0, 1], how much of each vertex's fine albedo is the photo's
      (seen, unoccluded, facing the camera); the rest was filled (mirror, GCN, coarse).
    method: how the texture was refined, the same for every face of the batch
      (`pipeline.refine.method`: mode "feed_forward" | "per_image" | "none", steps, ...).
    irradiance: [B, V, 3] the fitted SH irradiance the fine albedo was lit (and, where the
      photo decided, solved) with.
  """
  fine_albedo: np.ndarray
  lit_colors: np.ndarray
  render: np.ndarray
  figures: Dict[str, np.ndarray]
  trusted: Optional[np.ndarray] = None
  method: Dict[str, Any] = dataclasses.field(default_factory=dict)
  irradiance: Optional[np.ndarray] = None


__all__ = ["CoarseFit", "FaceBatch", "PreparedPhoto", "Refinement"]
