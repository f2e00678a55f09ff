"""The generator's forward pass and losses, shared by training and per-image refinement.

paper_spec §1 steps 13-16 on one batch of `RefinementInputs`:

```
T'       = Generator(features, T, T_p)                  fine albedo, [-1, 1]
T̃'       = SH-light(T')                                 coarse lighting and normals
R'       = render(T̃')                                   the coarse raster
overlay  = R' · M + I · (1 - M)
L        = losses.total_generator_loss(...)             identity of I vs overlay,
                                                        critic score of the overlay
```
"""

import collections
import dataclasses

import tensorflow as tf

from facegcn_tf.refinement import losses
from facegcn_tf.refinement import inputs as ri

RefinementOutputs = collections.namedtuple(
    "RefinementOutputs", ["fine_albedo", "lit_fine", "rendering", "overlay", "fake_features",
                          "terms"])
RefinementOutputs.__doc__ = """fine_albedo: [B, V, 3] T' in [-1, 1]; lit_fine: [B, V, 3] T̃'
(unclipped, [-1, 1] units); rendering: [B, S, S, 3] R' (-1 outside the face, unclipped);
overlay: [B, S, S, 3] in [-1, 1]; fake_features: [B, D] identity features of the overlay
(None when the identity term is off); terms: dict of float32 scalars from
`losses.total_generator_loss` ("total" and every term, unweighted)."""


def forward(generator, renderer, inputs: ri.RefinementInputs, *, sigma1, sigma4,
            loss_config: losses.GeneratorLossConfig, encoder=None, critic=None,
            symmetry_pairs=None, skin_mask=None, training: bool = True) -> RefinementOutputs:
  """Generator forward pass, rendering, composite and the generator objective.

  Args:
    generator: a `TextureGenerator`.
    renderer: the `FaceRenderer` the inputs were built with.
    inputs: the batch's `RefinementInputs` (with features).
    sigma1, sigma4: loss-group weights (floats or scalar tensors).
    loss_config: which terms and weights (`losses.GeneratorLossConfig`).
    encoder: identity encoder (needed when `loss_config.id_weight` > 0).
    critic: image critic (needed when `loss_config.adversarial`).
    symmetry_pairs, skin_mask: for the official-code extra terms.
    training: passed to the networks.

  Returns:
    `RefinementOutputs`.
  """
  fine = generator(ri.generator_inputs(inputs), training=training)
  lit = ri.light(renderer, fine, inputs)
  rendering = ri.render_colors(renderer, lit, inputs.raster)
  overlay = ri.composite(rendering, inputs.image, inputs.mask)
  fake_features = None
  if loss_config.id_weight > 0:
    if encoder is None:
      raise ValueError("the identity loss (id_weight > 0) needs an identity encoder")
    fake_features = encoder(ri.to_255(overlay))
  fake_scores = None
  if loss_config.adversarial:
    if critic is None:
      raise ValueError("the adversarial loss needs a critic")
    fake_scores = critic(overlay, training=training)
  regularization = tf.add_n(generator.losses) if generator.losses else None
  terms = losses.total_generator_loss(
      sigma1=sigma1, sigma4=sigma4, coarse_albedo=inputs.coarse_albedo, fine_albedo=fine,
      lit_fine=lit, sampled=inputs.sampled, image=inputs.image, rendering=rendering,
      pixel_mask=inputs.mask, real_features=inputs.features, fake_features=fake_features,
      fake_scores=fake_scores, lit_coarse=inputs.lit_coarse, symmetry_pairs=symmetry_pairs,
      skin_mask=skin_mask, regularization=regularization, config=loss_config)
  return RefinementOutputs(fine_albedo=fine, lit_fine=lit, rendering=rendering, overlay=overlay,
                           fake_features=fake_features, terms=terms)


def loss_config(variant: str = "paper", id_weight: float = 0.2, adv_weight: float = 1e-3,
                adversarial: bool = True) -> losses.GeneratorLossConfig:
  """`GeneratorLossConfig` of the paper ("paper") or the official code ("official")."""
  if variant == "paper":
    base = losses.PAPER_LOSS
  elif variant == "official":
    base = losses.OFFICIAL_LOSS
  else:
    raise ValueError(f"loss variant must be 'paper' or 'official', got '{variant}'")
  return dataclasses.replace(base, id_weight=id_weight, adv_weight=adv_weight,
                             adversarial=adversarial)


def image_grid(inputs: ri.RefinementInputs, outputs: RefinementOutputs) -> tf.Tensor:
  """[B, S, 4S, 3] in [0, 1]: input | coarse render | fine render | overlay."""
  columns = [inputs.image, inputs.coarse_render,
             tf.clip_by_value(outputs.rendering, -1.0, 1.0), outputs.overlay]
  return tf.concat([ri.to_unit(tf.cast(c, tf.float32)) for c in columns], axis=2)


__all__ = ["RefinementOutputs", "forward", "image_grid", "loss_config"]
