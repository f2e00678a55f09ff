"""The refinement stage: the fine albedo of a batch from its coarse fit."""

import numpy as np

from facegcn_tf.pipeline.factory import Components
from facegcn_tf.pipeline.stages import CoarseFit, FaceBatch, Refinement


def refine(components: Components, batch: FaceBatch, coarse: CoarseFit) -> Refinement:
  """GCN refinement of B faces on the coarse stage's geometry, raster and visibility.

  Without a refiner the coarse albedo is the fine one (and its render the coarse render).

  Returns:
    A `Refinement`; figures are the refiner's, prefixed "refine_" (and "refine_seconds",
    its wall time per face).
  """
  rendering = coarse.rendering
  if components.refiner is None:
    lit = np.clip(rendering.colors.numpy(), 0.0, 1.0)
    render = np.clip(rendering.image.numpy(), 0.0, 1.0)
    return Refinement(fine_albedo=coarse.albedo.numpy(), lit_colors=lit, render=render,
                      figures={})
  result = components.refiner(batch.images, coarse.coeffs, batch.face_mask,
                              features=batch.features, geometry=rendering.geometry,
                              raster=rendering.raster, visibility=coarse.visibility)
  count = result.fine_albedo.shape[0]
  figures = {f"refine_{k}": np.asarray(v) for k, v in result.figures.items()}
  figures["refine_seconds"] = np.full([count], result.seconds / max(count, 1))
  return Refinement(fine_albedo=np.clip(result.fine_albedo, 0.0, 1.0).astype(np.float32),
                    lit_colors=result.lit_colors.astype(np.float32),
                    render=np.clip(result.render, 0.0, 1.0).astype(np.float32),
                    figures=figures)


__all__ = ["refine"]
