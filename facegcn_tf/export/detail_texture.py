"""The photo's full-resolution detail, baked into the UV texture with the lighting divided out.

Per-vertex colour holds at most one colour per vertex (about one per aligned 224-px pixel),
so a face that spans more pixels in the photo loses detail in it. The UV texture can hold
more: for every texel of the face, the writer's UV rasterization already interpolates
per-vertex attributes, so it also interpolates

* the vertex's position in the aligned crop (`FaceGeometry.pixels`), mapped back to the
  ORIGINAL photo through the alignment's inverse;
* the fitted irradiance (the SH shading, `render.lighting.irradiance`);
* the photo's trust (`refinement.direct_albedo.trust_weights`: seen, unoccluded, facing).

The texel's detail albedo is the full-resolution photo sampled there (``cv2.remap``,
bilinear) divided by the irradiance, and the texture is
``trust * detail + (1 - trust) * fine`` with ``fine`` the per-vertex albedo baked as before:
unchanged where the photo is not trusted (occluders, unseen parts), the photo's own detail
where it is.
"""

import cv2
import numpy as np

from facegcn_tf.data.alignment import AlignTransform

MIN_IRRADIANCE = 0.1


def detail_albedo(photo: np.ndarray, transform: AlignTransform, aligned_xy: np.ndarray,
                  irradiance: np.ndarray) -> np.ndarray:
  """The photo at texels' positions with the shading divided out.

  Args:
    photo: [H, W, 3] uint8 RGB, the full-resolution photo.
    transform: its alignment.
    aligned_xy: [T, T', 2] aligned-crop positions of the texels (x, y).
    irradiance: [T, T', 3] fitted irradiance at the texels.

  Returns:
    [T, T', 3] float32 albedo in [0, 1] (texels outside the photo read the border colour;
    their trust is 0 anyway).
  """
  shape = aligned_xy.shape[:2]
  original = transform.to_original(aligned_xy.reshape(-1, 2)).reshape(shape + (2,))
  sampled = cv2.remap(np.ascontiguousarray(photo), original[..., 0].astype(np.float32),
                      original[..., 1].astype(np.float32), cv2.INTER_LINEAR,
                      borderMode=cv2.BORDER_REPLICATE).astype(np.float32) / 255.0
  return np.clip(sampled / np.maximum(irradiance, MIN_IRRADIANCE), 0.0, 1.0)


def blend_detail(fine_texture: np.ndarray, detail: np.ndarray, trust: np.ndarray,
                 coverage: np.ndarray) -> np.ndarray:
  """``trust * detail + (1 - trust) * fine`` on covered texels; the rest unchanged.

  Args:
    fine_texture: [T, T', 3] the baked per-vertex albedo.
    detail: [T, T', 3] `detail_albedo`.
    trust: [T, T'] interpolated photo trust in [0, 1].
    coverage: [T, T'] bool, texels inside the UV charts.
  """
  weight = (np.clip(trust, 0.0, 1.0) * coverage)[..., None].astype(np.float32)
  return (weight * detail + (1.0 - weight) * fine_texture).astype(np.float32)


__all__ = ["MIN_IRRADIANCE", "blend_detail", "detail_albedo"]
