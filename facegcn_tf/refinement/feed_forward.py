"""Feed-forward refinement: a trained generator run once on each face (the paper's inference).

The paper's GCNs are trained on a data set and then applied in one forward pass
(paper_spec §1 steps 12-14): ``T' = Generator(features, T, T_p)``, lit with the coarse
lighting and rendered with the coarse raster. :class:`FeedForwardRefiner` does exactly that
with a generator exported by ``scripts/train.py --stage=gcn`` (`generator_spec`): no
optimisation, no loss. Per-image fine-tuning of a trained generator is
`per_image.PerImageRefiner` with the checkpoint and a low learning rate
(:data:`FINE_TUNE_LEARNING_RATE`).

The checkpoint's spec decides the face model, the identity encoder (kind and feature
size), the Chebyshev order and the widths; :func:`check_encoder` refuses an encoder that
does not match it, so a mismatch fails once, before the first photo.
"""

import time
from typing import Optional

import numpy as np
import tensorflow as tf

from facegcn_tf import metrics
from facegcn_tf.refinement import generator_spec as spec_lib
from facegcn_tf.refinement import inputs as ri
from facegcn_tf.refinement.per_image import RefinementResult

# Adam's step size for per-image fine-tuning of a trained generator (from scratch the
# per-image refiner needs ~3e-3; at that rate a trained generator forgets what it learnt).
FINE_TUNE_LEARNING_RATE = 1e-4


def check_encoder(spec: spec_lib.GeneratorSpec, encoder, where: str = "the generator") -> None:
  """Raises ValueError (one line) when `encoder` is not the kind / size `spec` was trained with.

  Args:
    spec: the generator's spec.
    encoder: an `networks.identity.IdentityEncoder` (its ``kind`` and ``feature_dim``).
    where: names the generator in the message (e.g. its path).
  """
  kind = getattr(encoder, "kind", None)
  if kind is not None and kind != spec.identity:
    raise ValueError(f"{where} was trained with '{spec.identity}' identity features, but the "
                     f"'{kind}' encoder was given")
  dim = getattr(encoder, "feature_dim", None)
  if dim is not None and dim != spec.feature_dim:
    raise ValueError(f"{where} expects {spec.feature_dim}-d identity features, the "
                     f"'{kind}' encoder gives {dim}")


class FeedForwardRefiner:
  """A trained generator applied in one forward pass; build once, call many times.

  Args:
    renderer: the `FaceRenderer` of the texture mesh (its size = the photos').
    encoder: identity encoder of the generator's decoder input (checked against the spec).
    checkpoint: the exported generator (folder or weights file, `generator_spec`).

  Raises:
    AssetNotFoundError: nothing exported there.
    ValueError: trained for another face model or encoder, or weights that do not fit.
  """

  def __init__(self, renderer, encoder, checkpoint: str):
    self.renderer = renderer
    self.encoder = encoder
    self.checkpoint = checkpoint
    self.spec = spec_lib.load_spec(checkpoint)
    check_encoder(self.spec, encoder, f"the generator at '{checkpoint}'")
    self.generator, _ = spec_lib.load_generator(checkpoint, renderer.model)
    self._forward = tf.function(self._forward_eager, reduce_retracing=True)

  def _forward_eager(self, features, coarse_albedo, sampled):
    return self.generator((features, coarse_albedo, sampled), training=False)

  def fine_albedo(self, inputs: ri.RefinementInputs) -> tf.Tensor:
    """[B, V, 3] T' in [-1, 1], the generator's output for built `RefinementInputs`."""
    features, albedo, sampled = ri.generator_inputs(inputs)
    if int(features.shape[-1]) != self.spec.feature_dim:
      raise ValueError(f"identity features are {features.shape[-1]}-d, the generator at "
                       f"'{self.checkpoint}' needs {self.spec.feature_dim}")
    return self._forward(features, albedo, sampled)

  def __call__(self, images, coeffs, face_mask, features=None, geometry=None, raster=None,
               visibility=None) -> RefinementResult:
    """Refines B faces with one forward pass (arguments as `PerImageRefiner.__call__`).

    Returns:
      A `RefinementResult` (empty history; figures: "psnr_coarse", "psnr_fine",
      "albedo_change_unseen").
    """
    start = time.perf_counter()
    inputs = ri.build_inputs(self.renderer, images, coeffs, face_mask, encoder=self.encoder,
                             features=features, geometry=geometry, raster=raster,
                             visibility=visibility)
    fine = self.fine_albedo(inputs)
    lit = ri.light(self.renderer, fine, inputs)
    rendering = ri.render_colors(self.renderer, lit, inputs.raster)
    overlay = ri.composite(rendering, inputs.image, inputs.mask)
    unseen = 1.0 - inputs.sampled[..., 3]
    change = tf.reduce_mean(tf.abs(fine - inputs.coarse_albedo), axis=-1) * 0.5
    figures = {
        "psnr_coarse": metrics.masked_psnr(inputs.image, inputs.coarse_render, inputs.mask,
                                           **ri.SIGNED).numpy(),
        "psnr_fine": metrics.masked_psnr(inputs.image, rendering, inputs.mask,
                                         **ri.SIGNED).numpy(),
        "albedo_change_unseen": (tf.reduce_sum(change * unseen, axis=1) / tf.maximum(
            tf.reduce_sum(unseen, axis=1), 1.0)).numpy()}
    covered = inputs.coverage[..., tf.newaxis]
    count = int(inputs.image.shape[0])
    return RefinementResult(
        fine_albedo=ri.to_unit(fine).numpy(),
        coarse_albedo=ri.to_unit(inputs.coarse_albedo).numpy(),
        lit_colors=np.clip(ri.to_unit(lit).numpy(), 0.0, 1.0),
        render=(ri.to_unit(tf.clip_by_value(rendering, -1.0, 1.0)) * covered).numpy(),
        coarse_render=(ri.to_unit(inputs.coarse_render) * covered).numpy(),
        overlay=ri.to_unit(overlay).numpy(), mask=inputs.mask.numpy(), figures=figures,
        history={}, seconds=time.perf_counter() - start,
        first_step_seconds=np.zeros([count]))


def feed_forward(renderer, images, coeffs, face_mask, encoder, checkpoint: str,
                 features: Optional[tf.Tensor] = None) -> RefinementResult:
  """One-off feed-forward refinement of B aligned photos; see `FeedForwardRefiner`."""
  return FeedForwardRefiner(renderer, encoder, checkpoint)(images, coeffs, face_mask, features)


__all__ = ["FINE_TUNE_LEARNING_RATE", "FeedForwardRefiner", "check_encoder", "feed_forward"]
