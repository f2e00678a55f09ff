"""The texture stage: the fine albedo of a batch from its coarse fit.

1. Where the photo shows the face (seen, unoccluded, facing the camera), the albedo is the
   photo's colour with the fitted shading divided out, solved directly
   (`refinement.direct_albedo`): no gradient steps blur what T_p already holds.
2. The GCN (per-image refinement, or a trained generator) runs when the run asks for it,
   on the photo's unoccluded pixels only. Its output is what the photo does not decide:
   the occluded and unseen parts, and the ramps into them.
3. Vertices the photo did not decide take their mirror vertex's colour where that was
   decided, else the GCN's (or, without a GCN, the coarse 3DMM's) albedo, blended over a
   few mesh rings (`export.invisible_fill`).
4. A grey-level photo gives a grey albedo.
"""

import numpy as np
import tensorflow as tf

from facegcn_tf.export import invisible_fill
from facegcn_tf.morphable import albedo as albedo_lib
from facegcn_tf.pipeline.factory import Components
from facegcn_tf.pipeline.stages import CoarseFit, FaceBatch, Refinement
from facegcn_tf.refinement import direct_albedo


def photo_trust(components: Components, batch: FaceBatch, coarse: CoarseFit) -> tf.Tensor:
  """[B, V] weight of the photo's colour per vertex (`direct_albedo.trust_weights`): seen,
  inside the photo, not occluded, facing the camera."""
  renderer = components.renderer
  geometry = coarse.rendering.geometry
  pixels = geometry.pixels
  occluded = (direct_albedo.vertex_occlusion(coarse.occlusion, pixels)
              if coarse.occlusion is not None else tf.zeros(pixels.shape[:2]))
  inside = direct_albedo.vertex_occlusion(batch.valid, pixels)
  to_camera = tf.math.l2_normalize(
      tf.constant([0.0, 0.0, renderer.camera.distance]) - geometry.vertices, axis=-1)
  cos_view = tf.reduce_sum(geometry.normals * to_camera, axis=-1)
  weight = direct_albedo.trust_weights(coarse.visibility, occluded, cos_view)
  return weight * tf.cast(inside > 0.99, tf.float32)


def _gcn_albedo(components: Components, batch: FaceBatch, coarse: CoarseFit, trust):
  """The GCN's albedo [B, V, 3] on the unoccluded pixels, and its figures."""
  rendering = coarse.rendering
  mask = batch.face_mask
  if coarse.occlusion is not None:
    mask = mask * (1.0 - coarse.occlusion)
  seen = tf.cast(coarse.visibility, tf.float32) * tf.cast(trust > 0.0, tf.float32)
  result = components.refiner(batch.images, coarse.coeffs, mask, features=batch.features,
                              geometry=rendering.geometry, raster=rendering.raster,
                              visibility=seen)
  count = result.fine_albedo.shape[0]
  figures = {f"refine_{k}": np.asarray(v) for k, v in result.figures.items()}
  figures["refine_seconds"] = np.full([count], result.seconds / max(count, 1))
  return np.clip(result.fine_albedo, 0.0, 1.0).astype(np.float32), figures


def refine(components: Components, batch: FaceBatch, coarse: CoarseFit) -> Refinement:
  """The fine albedo of B faces on the coarse stage's geometry, raster and visibility.

  Returns:
    A `Refinement`; figures are the GCN's, prefixed "refine_" (and "refine_seconds", its
    wall time per face), when it ran.
  """
  renderer = components.renderer
  model = renderer.model
  rendering = coarse.rendering
  geometry = rendering.geometry
  trust = photo_trust(components, batch, coarse)
  fallback, figures = coarse.albedo, {}
  if components.refiner is not None:
    fallback, figures = _gcn_albedo(components, batch, coarse, trust)
  sampled, _ = renderer.sample_image(batch.images / 255.0, geometry, rendering.raster,
                                     visibility=coarse.visibility)
  gamma = renderer.split(coarse.coeffs)["gamma"]
  solved = direct_albedo.direct_albedo(sampled, geometry.normals, gamma, trust,
                                       fallback).numpy()
  fallback = np.asarray(fallback, np.float32)
  trust_np = trust.numpy()
  fine = np.stack([invisible_fill.fill_invisible(solved[i], trust_np[i] > 0.5,
                                                 model.symmetry_pairs, fallback[i],
                                                 model.triangles)
                   for i in range(len(solved))])
  if batch.grayscale.any():
    gray = albedo_lib.to_gray(fine).numpy()
    fine = np.where(batch.grayscale[:, None, None], gray, fine)
  fine = np.clip(fine, 0.0, 1.0).astype(np.float32)
  render = renderer.render(coarse.coeffs, vertex_colors=tf.constant(fine), geometry=geometry,
                           raster=rendering.raster)
  figures["photo_trusted_fraction"] = (
      trust_np.sum(axis=1) / np.maximum(coarse.visibility.numpy().sum(axis=1), 1.0))
  return Refinement(fine_albedo=fine,
                    lit_colors=np.clip(render.colors.numpy(), 0.0, 1.0).astype(np.float32),
                    render=np.clip(render.image.numpy(), 0.0, 1.0).astype(np.float32),
                    figures=figures, trusted=trust_np.astype(np.float32))


__all__ = ["photo_trust", "refine"]
