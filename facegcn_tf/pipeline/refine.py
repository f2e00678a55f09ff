"""The refinement stage: the fine albedo of a batch from its coarse fit."""

from typing import Any, Dict

import numpy as np

from facegcn_tf.pipeline.factory import Components
from facegcn_tf.pipeline.stages import CoarseFit, FaceBatch, Refinement
from facegcn_tf.refinement import feed_forward


def refine(components: Components, batch: FaceBatch, coarse: CoarseFit) -> Refinement:
  """GCN refinement of B faces on the coarse stage's geometry, raster and visibility.

  Without a refiner the coarse albedo is the fine one (and its render the coarse render).

  Returns:
    A `Refinement`; figures are the refiner's, prefixed "refine_" (and "refine_seconds",
    its wall time per face); `method` says how the texture was refined (`method`).
  """
  rendering = coarse.rendering
  if components.refiner is None:
    lit = np.clip(rendering.colors.numpy(), 0.0, 1.0)
    render = np.clip(rendering.image.numpy(), 0.0, 1.0)
    return Refinement(fine_albedo=coarse.albedo.numpy(), lit_colors=lit, render=render,
                      figures={}, method=method(None))
  refiner = components.refiner
  # The photo's features are the pipeline encoder's; a generator trained on another
  # encoder's (FaceNet) computes its own from the crops.
  features = batch.features if refiner.encoder is components.identity else None
  result = refiner(batch.images, coarse.coeffs, batch.face_mask, features=features,
                   geometry=rendering.geometry, raster=rendering.raster,
                   visibility=coarse.visibility)
  count = result.fine_albedo.shape[0]
  figures = {f"refine_{k}": np.asarray(v) for k, v in result.figures.items()}
  figures["refine_seconds"] = np.full([count], result.seconds / max(count, 1))
  return Refinement(fine_albedo=np.clip(result.fine_albedo, 0.0, 1.0).astype(np.float32),
                    lit_colors=result.lit_colors.astype(np.float32),
                    render=np.clip(result.render, 0.0, 1.0).astype(np.float32),
                    figures=figures, method=method(refiner))


def method(refiner) -> Dict[str, Any]:
  """How a refiner refines, for each face's JSON (``"refinement"``).

  ``{"mode": "feed_forward" | "per_image" | "none", "steps": N}``, plus the learning rate of
  per-image steps and the trained generator's path when there is one.
  """
  if refiner is None:
    return {"mode": "none", "steps": 0}
  checkpoint = getattr(refiner, "checkpoint", None)
  if isinstance(refiner, feed_forward.FeedForwardRefiner):
    out = {"mode": "feed_forward", "steps": 0}
  else:
    out = {"mode": "per_image", "steps": int(refiner.config.steps),
           "learning_rate": float(refiner.config.learning_rate)}
  if checkpoint:
    out["checkpoint"] = str(checkpoint)
  return out


__all__ = ["method", "refine"]
