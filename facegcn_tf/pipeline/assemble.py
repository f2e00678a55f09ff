"""From a batch's stage results to one `FaceResult` per face: aligned panels and figures.

Nothing is posed or rasterized here: the panels interpolate colours over the coarse stage's
raster, and the identity figures reuse the features of the prepared photos.
"""

from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import tensorflow as tf

from facegcn_tf import metrics
from facegcn_tf.data.preprocess import PreparedFace
from facegcn_tf.export import evaluation, overlay
from facegcn_tf.export.result import FaceResult
from facegcn_tf.pipeline import refine
from facegcn_tf.pipeline.factory import Components
from facegcn_tf.pipeline.stages import CoarseFit, FaceBatch, Refinement
from facegcn_tf.render import sampling
from facegcn_tf.render.interpolate import interpolate_attributes
from facegcn_tf.render import shape_shading
from facegcn_tf.render.renderer import FaceRenderer


def _unit_images(images: tf.Tensor) -> np.ndarray:
  """Rendered images clipped to [0, 1], float32 numpy."""
  return np.clip(images.numpy(), 0.0, 1.0).astype(np.float32)


def aligned_renders(components: Components, coarse: CoarseFit, refinement: Refinement,
                    crops: np.ndarray,
                    landmarks68: Optional[np.ndarray] = None) -> List[overlay.AlignedRenders]:
  """The aligned panels (crop, coarse, fine, shape, coverage) of each face of a batch.

  Args:
    components: the run's models.
    coarse: the batch's coarse stage (its raster is reused).
    refinement: the batch's refinement (its fine render is reused).
    crops: [B, S, S, 3] the aligned photos (uint8 or 0..255 floats).
    landmarks68: optional [B, 68, 2] the detected landmarks in aligned pixels.

  Their `mask` is the pixels a reconstruction replaces: the rendered face minus what the
  coarse stage found occluded (glasses, hair, hands stay in front in overlays), and minus
  the pixels of triangles with a corner the texture stage filled (`filled_triangle_pixels`:
  beside occluders, beyond the silhouette of the photo's face): what the overlay shows of
  the face is the photo's own albedo, relit. With `landmarks68`, also only inside the
  photo's face region (`metrics.face_region_mask`): where the fitted jaw sits below the
  detected one, the photo shows the neck, not the face.
  """
  rendering = coarse.rendering
  shaded = shape_shading.shape_render(components.renderer, coarse.coeffs,
                                      geometry=rendering.geometry, raster=rendering.raster)
  coarse_images = _unit_images(rendering.image)
  shape_images = _unit_images(shaded.image)
  coverage = rendering.mask.numpy().astype(np.float32)
  if coarse.occlusion is not None:   # occluders stay in front of the face
    coverage = coverage * (1.0 - coarse.occlusion)
  coverage = coverage * (1.0 - filled_triangle_pixels(components, coarse, refinement))
  if landmarks68 is not None:
    coverage = coverage * np.stack([metrics.face_region_mask(points, coverage.shape[1:])
                                    for points in np.asarray(landmarks68)])
  return [overlay.AlignedRenders(crop=np.clip(np.rint(crops[i]), 0, 255).astype(np.uint8),
                                 coarse=coarse_images[i], fine=refinement.render[i],
                                 shape=shape_images[i], mask=coverage[i])
          for i in range(len(coverage))]


def filled_triangle_pixels(components: Components, coarse: CoarseFit,
                           refinement: Refinement) -> np.ndarray:
  """[B, S, S] 1 on the rendered pixels whose triangle has a corner the texture stage
  filled rather than took from the photo (`Refinement.trusted` <= 0.5; without it, the
  corners under the occlusion), else 0."""
  if refinement.trusted is not None:
    filled = np.asarray(refinement.trusted, np.float32) <= 0.5
  elif coarse.occlusion is not None:
    filled = refine.vertex_occlusion(coarse).numpy() >= 0.5
  else:
    return np.zeros(coarse.rendering.mask.shape, np.float32)
  weight = interpolate_attributes(tf.constant(filled[..., None], tf.float32),
                                  components.renderer.triangles, coarse.rendering.raster)
  return (weight.numpy()[..., 0] > 1e-3).astype(np.float32)


def direct_copy_renders(components: Components, coarse: CoarseFit,
                        crops: np.ndarray) -> np.ndarray:
  """[B, S, S, 3] in [0, 1]: the baseline of a direct copy (as 3DDFA_V2 colours its
  meshes): each vertex takes the photo's colour at its projection, drawn unlit on the
  coarse raster. Judged beside the fine render by the same figures."""
  rendering = coarse.rendering
  colors = sampling.bilinear_sample(tf.constant(crops, tf.float32) / 255.0,
                                    rendering.geometry.pixels)
  image = interpolate_attributes(colors, components.renderer.triangles, rendering.raster)
  return _unit_images(image)


def _image_figures(renders: overlay.AlignedRenders, face_mask: np.ndarray,
                   copy: np.ndarray) -> Dict[str, float]:
  """Masked PSNR and SSIM of the coarse, fine and direct-copy renders inside the replaced
  pixels ∩ face mask."""
  photo = renders.crop.astype(np.float32) / 255.0
  region = renders.mask * face_mask
  out = {}
  for stage, render in (("coarse", renders.coarse), ("fine", renders.fine), ("copy", copy)):
    out[f"psnr_{stage}_db"] = float(metrics.masked_psnr(photo, render, region, peak=1.0))
    out[f"ssim_{stage}"] = metrics.masked_ssim(photo, render, region)
  return out


def _identity_figures(components: Components, renders: Sequence[overlay.AlignedRenders],
                      features: np.ndarray, copies: np.ndarray) -> Dict[str, np.ndarray]:
  """Identity distance photo <-> render composited on the photo, coarse, fine and direct
  copy: [B] each."""
  out = {}
  for stage in ("coarse", "fine", "copy"):
    images = copies if stage == "copy" else [getattr(r, stage) for r in renders]
    composites = np.stack([overlay.composite(image, r.mask, r.crop)
                           for image, r in zip(images, renders)]).astype(np.float32)
    out[f"identity_distance_{stage}"] = metrics.identity_distance(
        features, components.identity(composites)).numpy()
  return out


def face_results(components: Components, faces: Sequence[PreparedFace], names: Sequence[str],
                 photos: Sequence[np.ndarray], batch: FaceBatch, coarse: CoarseFit,
                 refinement: Refinement, extras: Sequence[Dict[str, Any]]) -> List[FaceResult]:
  """One `FaceResult` per face of a batch, with its panels and every figure.

  Args:
    components: the run's models.
    faces, names, photos, extras: per face: the prepared face, its output name, its
      full-resolution photo and the run facts for its report.
    batch: the stacked faces.
    coarse, refinement: the batch's stage results.
  """
  renders = aligned_renders(components, coarse, refinement, batch.images, batch.landmarks)
  copies = direct_copy_renders(components, coarse, batch.images)
  per_batch = dict(coarse.figures)
  per_batch.update(refinement.figures)
  per_batch.update(_identity_figures(components, renders, batch.features, copies))
  geometry = coarse.rendering.geometry
  shapes = geometry.shape.numpy()
  pixels = geometry.pixels.numpy()
  coeffs = coarse.coeffs.numpy()
  albedo = coarse.albedo.numpy()
  # What the photo decided (seen and unoccluded); the writer fills the rest the same way.
  visibility = (coarse.visibility.numpy() if refinement.trusted is None
                else (refinement.trusted > 0.5).astype(np.float32))
  occlusion = coarse.occlusion  # [B, S, S] when the fitter estimates it
  results = []
  for i, face in enumerate(faces):
    figures = {k: float(v[i]) for k, v in per_batch.items()}
    figures.update(_image_figures(renders[i], batch.face_mask[i], copies[i]))
    figures.update(evaluation.overlay_figures(
        photos[i], renders[i], face.aligned.transform, face.landmarks68,
        None if occlusion is None else np.asarray(occlusion[i])))
    results.append(FaceResult(
        name=names[i], model=components.model, face=face, photo=photos[i], coeffs=coeffs[i],
        shape=shapes[i], coarse_albedo=albedo[i], fine_albedo=refinement.fine_albedo[i],
        lit_colors=refinement.lit_colors[i], visibility=visibility[i],
        landmarks=coarse.landmarks[i], renders=renders[i], figures=figures,
        extra=dict(extras[i], refinement=dict(refinement.method)), pixels=pixels[i],
        irradiance=None if refinement.irradiance is None else refinement.irradiance[i],
        photo_trust=None if refinement.trusted is None else refinement.trusted[i],
        head_model=components.head_model))
  return results


def make_renders(renderer: FaceRenderer, coeffs, fine_albedo, crop: np.ndarray,
                 coarse_albedo=None) -> overlay.AlignedRenders:
  """The aligned panels of one face from its coefficients alone (poses and rasterizes once).

  For ad-hoc use; the pipeline makes them from its stage results (`aligned_renders`).

  Args:
    renderer: the pipeline's renderer (its camera size must be the crop's size).
    coeffs: [N] or [1, N] coefficients of the face.
    fine_albedo: [V, 3] or [1, V, 3] fine albedo in [0, 1].
    crop: [S, S, 3] aligned photo (uint8 or float in [0, 1]).
    coarse_albedo: [V, 3] or [1, V, 3]; default: the coefficients' 3DMM albedo.

  Returns:
    :class:`overlay.AlignedRenders` (renders clipped to [0, 1], float32).
  """
  crop = overlay.as_rgb_uint8(crop, "crop")
  size = renderer.image_size
  if crop.shape[:2] != (size, size):
    raise ValueError(f"crop is {crop.shape[:2]} but the renderer draws {size}x{size}")
  coeffs = tf.reshape(tf.convert_to_tensor(coeffs, tf.float32), [1, -1])
  fine = tf.reshape(tf.convert_to_tensor(fine_albedo, tf.float32), [1, -1, 3])
  if fine.shape[1] != renderer.model.num_vertices:
    raise ValueError(f"fine_albedo has {fine.shape[1]} vertices, the model "
                     f"{renderer.model.num_vertices}")
  coarse = (renderer.albedo(coeffs) if coarse_albedo is None else
            tf.reshape(tf.convert_to_tensor(coarse_albedo, tf.float32), [1, -1, 3]))
  geometry = renderer.geometry(coeffs)
  raster = renderer.rasterize(geometry)
  coarse_render = renderer.render(coeffs, vertex_colors=coarse, geometry=geometry, raster=raster)
  fine_render = renderer.render(coeffs, vertex_colors=fine, geometry=geometry, raster=raster)
  shaded = shape_shading.shape_render(renderer, coeffs, geometry=geometry, raster=raster)
  return overlay.AlignedRenders(crop=crop, coarse=_unit_images(coarse_render.image)[0],
                                fine=_unit_images(fine_render.image)[0],
                                shape=_unit_images(shaded.image)[0],
                                mask=raster.mask[0].numpy().astype(np.float32))


__all__ = ["aligned_renders", "face_results", "make_renders"]
