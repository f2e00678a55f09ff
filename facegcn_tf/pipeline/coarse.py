"""The coarse stage: 3DMM coefficients of a batch, fitted or regressed, posed and rendered once."""

import numpy as np
import tensorflow as tf

from facegcn_tf import metrics
from facegcn_tf.morphable import albedo as albedo_lib
from facegcn_tf.fitting.fitter import FitConfig, Fitter
from facegcn_tf.pipeline.factory import Components
from facegcn_tf.pipeline.stages import CoarseFit, FaceBatch


def coarse_fit(components: Components, batch: FaceBatch, fit_config: FitConfig,
               known_occluders=None) -> CoarseFit:
  """Coefficients of B faces and their coarse render on the texture mesh.

  With an R-Net the coefficients are its prediction; otherwise analysis-by-synthesis
  fitting (`components.fitter`, traced once per run) finds them, on
  `components.fit_renderer`'s coarser mesh where there is one, segments the occluders it
  cannot explain, and its final render on the texture mesh is kept.

  Args:
    components: the run's models.
    batch: the stacked faces.
    fit_config: the fitting schedule.
    known_occluders: optional [B, S, S] in [0, 1], occluders known beforehand, for the
      fitter (`fitting.fitter.fit`); an R-Net's regression takes none.

  Returns:
    A `CoarseFit`; its `rendering` is the one rasterization of the fitted faces.
  """
  renderer = components.renderer
  occlusion = None
  if components.rnet is not None:
    if known_occluders is not None:
      raise ValueError("known_occluders are for the fitter; an R-Net regression takes none")
    coeffs = tf.convert_to_tensor(components.rnet(tf.constant(batch.images)), tf.float32)
    rendering = renderer.render(coeffs)
    figures = {}
  else:
    fitter = components.fitter
    if fitter is None or fitter.config != fit_config:
      fitter = Fitter(renderer, fitter.encoder if fitter is not None else components.identity,
                      fit_config, fit_renderer=components.fit_renderer,
                      occluder_net=fitter.occluder_net if fitter is not None else None)
    fitted = fitter(batch.images, batch.landmarks, batch.face_mask,
                    photo_features=batch.features, oval=batch.oval,
                    known_occluders=known_occluders)
    coeffs, rendering, occlusion = fitted.coeffs, fitted.rendering, fitted.occlusion
    figures = {f"fit_{k}": np.asarray(v) for k, v in fitted.losses.items()}
  geometry = rendering.geometry
  projected = renderer.landmarks(geometry).numpy()
  figures["landmark_nme"] = metrics.landmark_nme(projected, batch.landmarks)
  albedo = renderer.albedo(coeffs)
  if batch.grayscale.any():
    # A grey photo says nothing about colour: grey albedo, white light (each SH band's
    # channels averaged); the one render is recoloured on its raster.
    gray = tf.constant(batch.grayscale)[:, None]
    albedo = tf.where(gray[..., None], albedo_lib.to_gray(albedo), albedo)
    gamma = renderer.split(coeffs)["gamma"]
    white = tf.tile(tf.reduce_mean(tf.reshape(gamma, [-1, 3, 9]), axis=1), [1, 3])
    layout = renderer.layout.slices()["gamma"]
    coeffs = tf.concat([coeffs[:, :layout.start], tf.where(gray, white, gamma),
                        coeffs[:, layout.stop:]], axis=1)
    rendering = renderer.render(coeffs, vertex_colors=albedo, geometry=geometry,
                                raster=rendering.raster)
  return CoarseFit(coeffs=coeffs, rendering=rendering, albedo=albedo,
                   visibility=renderer.visibility(geometry, rendering.raster),
                   landmarks=projected, figures=figures, occlusion=occlusion)


__all__ = ["coarse_fit"]
