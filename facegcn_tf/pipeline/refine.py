"""The texture stage: the fine albedo of a batch from its coarse fit.

1. Where the photo shows the face (seen, unoccluded, not grazing on the silhouette), the
   albedo is the photo's colour with the fitted shading divided out, solved directly
   (`refinement.direct_albedo`): no gradient steps blur what T_p already holds. What the
   albedo (at most 1) cannot reproduce there, the highlights, is a lit-only term of the
   render (`direct_albedo.highlights`), never albedo.
2. The GCN (per-image refinement, or a trained generator) runs when the run asks for it,
   on the photo's unoccluded pixels only. Its output is what the photo does not decide:
   the occluded and unseen parts, and the ramps into them.
3. Vertices the photo did not decide take their mirror vertex's colour where that was
   decided, else the GCN's (or, without a GCN, the coarse 3DMM's) albedo shifted to the
   photo's tone at the border (`invisible_fill.border_matched`), blended over a few mesh
   rings (`export.invisible_fill`). The ramps run on the filled side only: a
   vertex the photo decided keeps the photo's albedo, so the lit render reproduces the photo
   wherever the overlay shows it (`pipeline.assemble` leaves the occluders, and the pixels
   of triangles with a filled corner, to the photo).
4. A grey-level photo gives a grey albedo.
"""

from typing import Any, Dict, Optional

import numpy as np
import tensorflow as tf

from facegcn_tf.export import invisible_fill
from facegcn_tf.morphable import albedo as albedo_lib
from facegcn_tf.pipeline.factory import Components
from facegcn_tf.pipeline.stages import CoarseFit, FaceBatch, Refinement
from facegcn_tf.refinement import direct_albedo
from facegcn_tf.refinement import feed_forward
from facegcn_tf.render import lighting
from facegcn_tf.render import sampling

ALBEDO_SOURCES = ("photo", "gcn")
FILL_RINGS = 2   # width of the fill's ramps, in mesh rings
OCCLUSION_MARGIN = 1   # px the occlusion grows by before the texture stage reads it


def vertex_occlusion(coarse: CoarseFit, margin: Optional[int] = None) -> tf.Tensor:
  """[B, V] the coarse stage's occlusion at the projected vertices (zeros without one),
  grown by `margin` px first (default `OCCLUSION_MARGIN`): an occluder's blurred rim and
  thin strokes (frames, strands) are not the face's colour either."""
  pixels = coarse.rendering.geometry.pixels
  if coarse.occlusion is None:
    return tf.zeros(pixels.shape[:2])
  margin = OCCLUSION_MARGIN if margin is None else margin
  occlusion = tf.convert_to_tensor(coarse.occlusion, tf.float32)
  if margin > 0:
    occlusion = tf.nn.max_pool2d(occlusion[..., tf.newaxis], 2 * margin + 1, 1, "SAME")[..., 0]
  return direct_albedo.vertex_occlusion(occlusion, pixels)


def photo_trust(components: Components, batch: FaceBatch, coarse: CoarseFit,
                occluded: tf.Tensor) -> tf.Tensor:
  """[B, V] weight of the photo's colour per vertex (`direct_albedo.trust_weights`): seen,
  inside the photo, not occluded (`occluded`: `vertex_occlusion`), and facing the camera
  unless it projects onto the photo's face mask: the grazing fade guards against sampling
  the background or hair beyond the silhouette, and on the face there is none."""
  renderer = components.renderer
  rendering = coarse.rendering
  geometry = rendering.geometry
  inside = direct_albedo.vertex_occlusion(batch.valid, geometry.pixels)
  # Seen by the z-buffer test, or a corner of a triangle the image shows.
  seen = tf.maximum(tf.cast(coarse.visibility, tf.float32),
                    renderer.drawn_vertices(rendering.raster))
  on_face = direct_albedo.vertex_occlusion(batch.face_mask, geometry.pixels) > 0.5
  weight = direct_albedo.trust_weights(seen, occluded, renderer.view_cosines(geometry),
                                       interior=tf.cast(on_face, tf.float32))
  return weight * tf.cast(inside > 0.99, tf.float32)


def _gcn_albedo(components: Components, batch: FaceBatch, coarse: CoarseFit,
                occluded: tf.Tensor):
  """The GCN's albedo [B, V, 3] on the unoccluded pixels, and its figures."""
  rendering = coarse.rendering
  mask = batch.face_mask
  if coarse.occlusion is not None:
    mask = mask * (1.0 - coarse.occlusion)
  # Occluded vertices give the GCN no T_p either.
  seen = tf.cast(coarse.visibility, tf.float32) * tf.cast(occluded < 0.5, tf.float32)
  refiner = components.refiner
  # The photo's features are the pipeline encoder's; a generator trained on another
  # encoder's (FaceNet) computes its own from the crops.
  features = batch.features if refiner.encoder is components.identity else None
  result = refiner(batch.images, coarse.coeffs, mask, features=features,
                   geometry=rendering.geometry, raster=rendering.raster, visibility=seen)
  count = result.fine_albedo.shape[0]
  figures = {f"refine_{k}": np.asarray(v) for k, v in result.figures.items()}
  figures["refine_seconds"] = np.full([count], result.seconds / max(count, 1))
  return np.clip(result.fine_albedo, 0.0, 1.0).astype(np.float32), figures


def refine(components: Components, batch: FaceBatch, coarse: CoarseFit,
           albedo_source: str = "photo") -> Refinement:
  """The fine albedo of B faces on the coarse stage's geometry, raster and visibility.

  Args:
    components, batch, coarse: the run's models, the faces and their coarse stage.
    albedo_source: "photo" (default): the photo's albedo where it is trusted, the GCN's
      (else the coarse one) elsewhere, as the module docstring says; "gcn": the GCN's
      output everywhere, the paper's T' (needs a refiner).

  Returns:
    A `Refinement`; figures are the GCN's, prefixed "refine_" (and "refine_seconds", its
    wall time per face), when it ran; `method` says how the texture was made (`method`).
  """
  if albedo_source not in ALBEDO_SOURCES:
    raise ValueError(f"albedo_source must be one of {ALBEDO_SOURCES}, got {albedo_source!r}")
  renderer = components.renderer
  model = renderer.model
  rendering = coarse.rendering
  geometry = rendering.geometry
  occluded = vertex_occlusion(coarse)
  trust = photo_trust(components, batch, coarse, occluded)
  fallback, figures = coarse.albedo, {}
  if components.refiner is not None:
    fallback, figures = _gcn_albedo(components, batch, coarse, occluded)
  elif albedo_source == "gcn":
    raise ValueError("albedo_source 'gcn' needs a GCN (refinement steps or a checkpoint)")
  fallback = np.asarray(fallback, np.float32)
  trust_np = trust.numpy()
  irradiance = lighting.irradiance(geometry.normals, renderer.split(coarse.coeffs)["gamma"])
  highlight = 0.0
  if albedo_source == "gcn":   # the paper's T' everywhere; the writer fills the unseen
    fine, trusted = fallback, None
  else:
    trusted = trust_np.astype(np.float32)
    # T_p at every vertex; `trust` says where it counts.
    sampled = sampling.bilinear_sample(tf.constant(batch.images / 255.0, tf.float32),
                                       geometry.pixels)
    decided = trust_np > 0.5
    # A vertex the photo decides takes the photo's albedo whole (the fill ramps below run
    # on the other side), so the lit render reproduces the photo there.
    solved = direct_albedo.direct_albedo(sampled, irradiance, np.where(decided, 1.0, trust_np),
                                         fallback).numpy()
    # The fallback in the tone of the photo's albedo around it; narrow ramps, on the filled
    # side only: the photo's vertices keep its albedo.
    fine = np.stack([invisible_fill.fill_invisible(
        solved[i], decided[i], model.symmetry_pairs,
        invisible_fill.border_matched(solved[i], decided[i], fallback[i], model.triangles),
        model.triangles, rings=FILL_RINGS) for i in range(len(solved))])
    fine = np.where(decided[..., None], solved, fine)
  if batch.grayscale.any():
    gray = albedo_lib.to_gray(fine).numpy()
    fine = np.where(batch.grayscale[:, None, None], gray, fine)
  fine = np.clip(fine, 0.0, 1.0).astype(np.float32)
  if trusted is not None:
    highlight = direct_albedo.highlights(sampled, irradiance, fine, trust_np)
  lit = tf.constant(fine) * irradiance + highlight
  render = renderer.render(coarse.coeffs, vertex_colors=lit, lit=False, geometry=geometry,
                           raster=rendering.raster)
  if trusted is not None:
    figures["photo_trusted_fraction"] = (
        trusted.sum(axis=1) / np.maximum(coarse.visibility.numpy().sum(axis=1), 1.0))
    figures["highlight_fraction"] = (
        np.asarray(tf.reduce_any(highlight > 1.0 / 255.0, axis=-1)).sum(axis=1) /
        np.maximum(trusted.sum(axis=1), 1.0))
  return Refinement(fine_albedo=fine,
                    lit_colors=np.clip(render.colors.numpy(), 0.0, 1.0).astype(np.float32),
                    render=np.clip(render.image.numpy(), 0.0, 1.0).astype(np.float32),
                    figures=figures, trusted=trusted, irradiance=irradiance.numpy(),
                    method=method(components.refiner, albedo_source))


def method(refiner, albedo_source: str = "photo") -> Dict[str, Any]:
  """How the texture was made, for each face's JSON (``"refinement"``).

  ``{"mode": "feed_forward" | "per_image" | "none", "steps": N, "albedo": "photo" | "gcn"}``,
  plus the learning rate of per-image steps and the trained generator's path when there is
  one. "albedo" says whether the photo decides the albedo where it shows the face
  ("photo") or the GCN's output is used everywhere ("gcn").
  """
  if refiner is None:
    out = {"mode": "none", "steps": 0}
  elif isinstance(refiner, feed_forward.FeedForwardRefiner):
    out = {"mode": "feed_forward", "steps": 0}
  else:
    out = {"mode": "per_image", "steps": int(refiner.config.steps),
           "learning_rate": float(refiner.config.learning_rate)}
  checkpoint = getattr(refiner, "checkpoint", None)
  if checkpoint:
    out["checkpoint"] = str(checkpoint)
  out["albedo"] = albedo_source
  return out


__all__ = ["ALBEDO_SOURCES", "method", "photo_trust", "refine", "vertex_occlusion"]
