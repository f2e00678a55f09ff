"""Per-image GCN texture refinement: the generator optimised on one photo (or a few).

Without a trained generator checkpoint (none is available: the paper's was
never released and training needs a face-photo data set), the paper's networks
and losses can still refine a coarse texture by optimising the generator's
weights on the photo itself, deep-image-prior style:

* the same `TextureGenerator` (residual decoder + residual refiner + combine
  net, the paper's widths) and the same generator objective
  (`refinement_step.forward`) as training;
* σ at the end of the training schedule: σ1 = 1 (L_pix + 0.2 L_id), σ4 small
  (`PerImageConfig.sigma4`, default 0.1: it keeps T' near the coarse albedo
  where the photo says nothing and pulls the lit colours towards T_p);
* no adversarial term by default (the paper's needs a critic trained on a
  data set); `adversarial=True` trains a critic on the fly for ablations;
* Adam on the generator's weights for a fixed number of steps with a cosine
  learning-rate decay, from a seeded fresh initialisation (the Combine Net's
  kernel scaled down so T' starts near 0, not in tanh's saturated tails) or
  from a trained generator (`checkpoint`, written by ``train.py --stage=gcn``).

Speed / convergence: with the paper's Chebyshev order K = 6 a fwd+bwd of the
generator costs ~1.5 s on the 37k-vertex face on this CPU and, from a random
start, the K = 6 filters blur so much that fine detail takes hundreds of
steps to appear. Per-image refinement therefore uses K = 2 (each graph
convolution sees the 1-ring; the hierarchy still gives a large receptive
field): ~3x cheaper per step and much faster to fit (measured in
docs/refinement.md). With a checkpoint, the checkpoint's own settings are used.

Each image is refined independently by default (the same initial weights,
its own optimisation), so a result does not depend on what else is in the
batch; `joint=True` optimises one generator on the whole batch instead.
"""

import dataclasses
import time
from typing import Dict, Optional

import keras
import numpy as np
import tensorflow as tf

from facegcn_tf import metrics
from facegcn_tf.networks import critic as critic_lib
from facegcn_tf.refinement import generator_spec as spec_lib
from facegcn_tf.refinement import losses
from facegcn_tf.refinement import inputs as ri
from facegcn_tf.refinement import step as refinement_step


@dataclasses.dataclass(frozen=True, kw_only=True)
class PerImageConfig(spec_lib.GeneratorHParams):
  """Settings of per-image refinement.

  Attributes:
    steps: Adam steps (0: just run the (trained) generator once).
    learning_rate: Adam's initial step size (cosine decay to
      `final_lr_fraction` of it). From scratch the generator needs a large
      one (3e-3); fine-tuning a trained one wants ~1e-4.
    final_lr_fraction: the cosine decay's floor.
    sigma1, sigma4: loss-group weights (end of the training schedule).
    id_weight: σ2, the identity term's weight inside the σ1 group.
    vertex_loss: False drops the σ4 group (ablation).
    loss_variant: "paper" or "official" (see `refinement_step.loss_config`).
    refiner, decoder, activation, order, widths, ...: the generator built
      when no checkpoint is given (`generator_spec.GeneratorHParams`; here
      order defaults to 2).
    output_init_scale: scales the Combine Net's initial kernel so that T'
      starts near 0 instead of in tanh's saturated tails (1 = plain He init).
    mask_visibility: T_p's visibility also needs the face mask.
    adversarial: add σ3 L_adv with a WGAN-GP critic trained ON THE FLY on the
      photo (real) against the overlays (fake), `critic_steps` critic updates
      (Adam, `critic_learning_rate`) after each generator step. Not the
      paper's critic (trained on a data set); for the ablation only.
    adv_weight, gp_weight, critic_norm: σ3, λ and the critic's normalisation.
    joint: one generator for the whole batch instead of one per image.
    seed: initialisation seed (results are reproducible).
  """
  steps: int = 150
  learning_rate: float = 3e-3
  final_lr_fraction: float = 0.1
  sigma1: float = 1.0
  sigma4: float = 0.1
  id_weight: float = 0.2
  vertex_loss: bool = True
  loss_variant: str = "paper"
  order: int = 2
  output_init_scale: float = 0.1
  mask_visibility: bool = True
  adversarial: bool = False
  adv_weight: float = 1e-3
  critic_steps: int = 1
  critic_learning_rate: float = 1e-4
  critic_norm: str = "layer"
  gp_weight: float = 10.0
  joint: bool = False
  seed: int = 0

  def __post_init__(self):
    if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 0:
      raise ValueError(f"steps must be an int >= 0, got {self.steps!r}")
    if not (self.learning_rate > 0 and 0 < self.final_lr_fraction <= 1):
      raise ValueError("learning_rate must be > 0 and final_lr_fraction in (0, 1]")
    if isinstance(self.critic_steps, bool) or not isinstance(self.critic_steps, int) \
        or self.critic_steps < 1:
      raise ValueError(f"critic_steps must be an int >= 1, got {self.critic_steps!r}")
    for name in ("sigma1", "sigma4", "id_weight", "output_init_scale", "adv_weight",
                 "critic_learning_rate", "gp_weight"):
      value = getattr(self, name)
      if not (isinstance(value, (int, float)) and np.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    super().__post_init__()  # the generator's hyper-parameters


@dataclasses.dataclass
class RefinementResult:
  """Per-image refinement of B faces (numpy arrays).

  Attributes:
    fine_albedo: [B, V, 3] T' in [0, 1].
    coarse_albedo: [B, V, 3] T in [0, 1].
    lit_colors: [B, V, 3] the lit fine colours T̃' in [0, 1] (clipped).
    render: [B, S, S, 3] the lit fine face R' in [0, 1] (0 outside).
    coarse_render: [B, S, S, 3] the lit coarse face in [0, 1] (0 outside).
    overlay: [B, S, S, 3] R' composited on the photo, [0, 1].
    mask: [B, S, S] the composite / loss mask M.
    figures: per image [B]: "psnr_coarse", "psnr_fine" (dB, inside M),
      "identity_coarse", "identity_fine" (dlib distance photo <-> overlay),
      "albedo_change_unseen" (mean |T' - T| in [0, 1] units over the vertices
      T_p does not see: how far the texture drifts where the photo says
      nothing), and the final unweighted loss terms "loss_<name>".
    history: loss term -> [steps, G] values during the optimisation (G = B images,
      or 1 with `joint`).
    seconds: wall time of the optimisation (all images).
    first_step_seconds: [G] wall time of each group's first step (it includes
      the one-time tracing of the step on a refiner's first call).
  """
  fine_albedo: np.ndarray
  coarse_albedo: np.ndarray
  lit_colors: np.ndarray
  render: np.ndarray
  coarse_render: np.ndarray
  overlay: np.ndarray
  mask: np.ndarray
  figures: Dict[str, np.ndarray]
  history: Dict[str, np.ndarray]
  seconds: float
  first_step_seconds: np.ndarray


class PerImageRefiner:
  """Refines coarse textures of aligned photos; build once, call many times.

  Args:
    renderer: the `FaceRenderer` of the texture mesh (its size = the photos').
    encoder: identity encoder (`networks.identity`): decoder input and
      identity loss.
    config: the `PerImageConfig`.
    checkpoint: optional exported generator (folder or weights file, see
      `generator_spec.load_generator`) to start from.
  """

  def __init__(self, renderer, encoder, config: PerImageConfig = PerImageConfig(),
               checkpoint: Optional[str] = None):
    if not isinstance(config, PerImageConfig):
      raise ValueError(f"config must be a PerImageConfig, got {type(config).__name__}")
    self.renderer = renderer
    self.encoder = encoder
    self.config = config
    self.checkpoint = checkpoint
    model = renderer.model
    if checkpoint:
      _, self.spec = spec_lib.load_generator(checkpoint, model)
    else:
      dim = encoder.feature_dim or int(encoder(tf.zeros([1, 224, 224, 3])).shape[-1])
      self.spec = config.spec(model.name, dim)
    self.hierarchy = spec_lib.build_hierarchy(model, self.spec)
    self.loss_config = refinement_step.loss_config(config.loss_variant, config.id_weight,
                                                   config.adv_weight,
                                                   adversarial=config.adversarial)
    self._pairs = model.symmetry_pairs if self.loss_config.symmetry_weight > 0 else None
    self._skin = model.skin_mask if self.loss_config.skin_variance_weight > 0 else None
    self._generator = None
    self._critic = None

  def _build(self):
    """The generator, its optimizer, their initial state and the traced step (once)."""
    cfg = self.config
    keras.utils.set_random_seed(cfg.seed)
    if self.checkpoint:
      generator, _ = spec_lib.load_generator(self.checkpoint, self.renderer.model, self.hierarchy)
    else:
      generator = spec_lib.build_generator(self.spec, self.hierarchy)
      if cfg.output_init_scale != 1.0:
        kernel = generator.combine.conv.kernel
        kernel.assign(kernel * cfg.output_init_scale)
    schedule = keras.optimizers.schedules.CosineDecay(
        cfg.learning_rate, max(cfg.steps - 1, 1), alpha=cfg.final_lr_fraction)
    optimizer = keras.optimizers.Adam(schedule, epsilon=1e-8)
    optimizer.build(generator.trainable_variables)
    self._generator, self._optimizer = generator, optimizer
    state = generator.weights + list(optimizer.variables)
    critic = critic_optimizer = None
    if cfg.adversarial:
      size = self.renderer.image_size
      critic = critic_lib.ImageCritic(norm=cfg.critic_norm, name="critic")
      critic.build((None, size, size, 3))
      critic_optimizer = keras.optimizers.Adam(cfg.critic_learning_rate, epsilon=1e-8)
      critic_optimizer.build(critic.trainable_variables)
      state += critic.weights + list(critic_optimizer.variables)
    self._critic, self._state = critic, state
    self._initial = [v.numpy() for v in state]
    self._rng = tf.random.Generator.from_seed(cfg.seed)

    @tf.function
    def step(inputs):
      with tf.GradientTape() as tape:
        out = self._forward(inputs)
      grads = tape.gradient(out.terms["total"], generator.trainable_variables)
      optimizer.apply_gradients(zip(grads, generator.trainable_variables))
      terms = dict(out.terms)
      if critic is not None:
        fake = tf.stop_gradient(out.overlay)
        for _ in range(cfg.critic_steps):
          epsilon = self._rng.uniform(tf.stack([tf.shape(fake)[0], 1, 1, 1]))
          with tf.GradientTape() as tape:
            closs = losses.critic_loss(critic, inputs.image, fake, cfg.gp_weight,
                                       training=True, epsilon=epsilon)
          cgrads = tape.gradient(closs, critic.trainable_variables)
          critic_optimizer.apply_gradients(zip(cgrads, critic.trainable_variables))
        terms["critic"] = closs
      return terms

    self._step = step

  def _reset(self):
    """Back to the initial weights and a fresh optimizer state."""
    for var, value in zip(self._state, self._initial):
      var.assign(value)
    self._rng.reset_from_seed(self.config.seed)

  def _sigma4(self):
    return self.config.sigma4 if self.config.vertex_loss else 0.0

  def _forward(self, inputs):
    return refinement_step.forward(
        self._generator, self.renderer, inputs, sigma1=self.config.sigma1,
        sigma4=self._sigma4(), loss_config=self.loss_config, encoder=self.encoder,
        critic=self._critic, symmetry_pairs=self._pairs, skin_mask=self._skin, training=True)

  def _optimise(self, inputs: ri.RefinementInputs):
    """Fits the generator (from its initial state) to one group.

    Returns:
      (outputs, history {term: [steps]}, seconds of the first step).
    """
    if self._generator is None:
      self._build()
    self._reset()
    records, first = [], 0.0
    for i in range(self.config.steps):
      start = time.perf_counter()
      records.append(self._step(inputs))
      if i == 0:
        float(records[0]["total"])
        first = time.perf_counter() - start
    history = {k: np.array([float(r[k]) for r in records]) for k in records[0]} if records else {}
    return self._forward(inputs), history, first

  def _per_image_terms(self, inputs, out):
    """Final unweighted loss terms per image ({"loss_<name>": [B]})."""
    terms = {}
    for b in range(int(inputs.image.shape[0])):
      one = _take(inputs, slice(b, b + 1))
      values = losses.total_generator_loss(
          sigma1=self.config.sigma1, sigma4=self._sigma4(), coarse_albedo=one.coarse_albedo,
          fine_albedo=out.fine_albedo[b:b + 1], lit_fine=out.lit_fine[b:b + 1],
          sampled=one.sampled, image=one.image, rendering=out.rendering[b:b + 1],
          pixel_mask=one.mask, real_features=one.features,
          fake_features=None if out.fake_features is None else out.fake_features[b:b + 1],
          fake_scores=(self._critic(out.overlay[b:b + 1], training=False)
                       if self._critic is not None else None),
          lit_coarse=one.lit_coarse, symmetry_pairs=self._pairs, skin_mask=self._skin,
          config=self.loss_config)
      for k, v in values.items():
        terms.setdefault(f"loss_{k}", []).append(float(v))
    return {k: np.array(v) for k, v in terms.items()}

  def __call__(self, images, coeffs, face_mask, features=None, geometry=None,
               raster=None, visibility=None) -> RefinementResult:
    """Refines B faces.

    Args:
      images: [B, S, S, 3] aligned photos, RGB 0..255.
      coeffs: [B, N] their coarse coefficients.
      face_mask: [B, S, S] face region in [0, 1] (face segmentation × valid area).
      features: optional [B, D] identity features of the photos.
      geometry, raster: optional posed coarse face and its raster at the renderer's size
        (the coarse stage's), reused instead of posing and rasterizing again.
      visibility: optional [B, V] vertex visibility in that raster, reused likewise.

    Returns:
      A `RefinementResult`.
    """
    cfg = self.config
    inputs = ri.build_inputs(self.renderer, images, coeffs, face_mask, encoder=self.encoder,
                             features=features, mask_visibility=cfg.mask_visibility,
                             geometry=geometry, raster=raster, visibility=visibility)
    batch = int(inputs.image.shape[0])
    groups = [slice(0, batch)] if cfg.joint else [slice(b, b + 1) for b in range(batch)]
    start = time.perf_counter()
    results = [self._optimise(_take(inputs, group)) for group in groups]
    seconds = time.perf_counter() - start
    out = refinement_step.RefinementOutputs(**{
        name: (None if getattr(results[0][0], name) is None else
               tf.concat([getattr(r[0], name) for r in results], axis=0))
        for name in refinement_step.RefinementOutputs._fields if name != "terms"}, terms={})
    history = {}
    if results[0][1]:
      for k in results[0][1]:
        history[k] = np.stack([r[1][k] for r in results], axis=1)   # [steps, groups]
    figures = self._per_image_terms(inputs, out)
    figures["psnr_coarse"] = metrics.masked_psnr(inputs.image, inputs.coarse_render,
                                                 inputs.mask, **ri.SIGNED).numpy()
    figures["psnr_fine"] = metrics.masked_psnr(inputs.image, out.rendering, inputs.mask,
                                               **ri.SIGNED).numpy()
    coarse_overlay = ri.composite(inputs.coarse_render, inputs.image, inputs.mask)
    figures["identity_coarse"] = metrics.identity_distance(
        inputs.features, self.encoder(ri.to_255(coarse_overlay))).numpy()
    figures["identity_fine"] = metrics.identity_distance(
        inputs.features, self.encoder(ri.to_255(out.overlay))).numpy()
    unseen = 1.0 - inputs.sampled[..., 3]
    change = tf.reduce_mean(tf.abs(out.fine_albedo - inputs.coarse_albedo), axis=-1) * 0.5
    figures["albedo_change_unseen"] = (tf.reduce_sum(change * unseen, axis=1) / tf.maximum(
        tf.reduce_sum(unseen, axis=1), 1.0)).numpy()
    covered = inputs.coverage[..., tf.newaxis]
    return RefinementResult(
        fine_albedo=ri.to_unit(out.fine_albedo).numpy(),
        coarse_albedo=ri.to_unit(inputs.coarse_albedo).numpy(),
        lit_colors=np.clip(ri.to_unit(out.lit_fine).numpy(), 0.0, 1.0),
        render=(ri.to_unit(tf.clip_by_value(out.rendering, -1.0, 1.0)) * covered).numpy(),
        coarse_render=(ri.to_unit(inputs.coarse_render) * covered).numpy(),
        overlay=ri.to_unit(out.overlay).numpy(), mask=inputs.mask.numpy(), figures=figures,
        history=history, seconds=seconds, first_step_seconds=np.array([r[2] for r in results]))


def _take(inputs: ri.RefinementInputs, index: slice) -> ri.RefinementInputs:
  """The images `index` of a batch of inputs."""
  return ri.RefinementInputs(*[None if v is None else tf.nest.map_structure(
      lambda t: t[index], v) for v in inputs])


def refine(renderer, images, coeffs, face_mask, encoder, config: PerImageConfig = PerImageConfig(),
           checkpoint: Optional[str] = None, features=None) -> RefinementResult:
  """Per-image refinement of B aligned photos; see `PerImageRefiner`."""
  return PerImageRefiner(renderer, encoder, config, checkpoint)(images, coeffs, face_mask,
                                                                features)


__all__ = ["PerImageConfig", "PerImageRefiner", "RefinementResult", "refine"]
