"""The coarse stage: 3DMM coefficients of a batch, fitted or regressed, posed and rendered once."""

import numpy as np
import tensorflow as tf

from facegcn_tf import metrics
from facegcn_tf.fitting.fitter import FitConfig, fit
from facegcn_tf.pipeline.factory import Components
from facegcn_tf.pipeline.stages import CoarseFit, FaceBatch


def coarse_fit(components: Components, batch: FaceBatch, fit_config: FitConfig) -> CoarseFit:
  """Coefficients of B faces and their coarse render on the texture mesh.

  With an R-Net the coefficients are its prediction; otherwise analysis-by-synthesis
  fitting (`fitting.fitter`) finds them, on `components.fit_renderer`'s coarser mesh where
  there is one, and its final render on the texture mesh is kept.

  Args:
    components: the run's models.
    batch: the stacked faces.
    fit_config: the fitting schedule.

  Returns:
    A `CoarseFit`; its `rendering` is the one rasterization of the fitted faces.
  """
  renderer = components.renderer
  if components.rnet is not None:
    coeffs = tf.convert_to_tensor(components.rnet(tf.constant(batch.images)), tf.float32)
    rendering = renderer.render(coeffs)
    figures = {}
  else:
    fitted = fit(renderer, batch.images, batch.landmarks, batch.face_mask, components.identity,
                 fit_config, fit_renderer=components.fit_renderer,
                 photo_features=batch.features)
    coeffs, rendering = fitted.coeffs, fitted.rendering
    figures = {f"fit_{k}": np.asarray(v) for k, v in fitted.losses.items()}
  geometry = rendering.geometry
  projected = renderer.landmarks(geometry).numpy()
  figures["landmark_nme"] = metrics.landmark_nme(projected, batch.landmarks)
  return CoarseFit(coeffs=coeffs, rendering=rendering, albedo=renderer.albedo(coeffs),
                   visibility=renderer.visibility(geometry, rendering.raster),
                   landmarks=projected, figures=figures)


__all__ = ["coarse_fit"]
