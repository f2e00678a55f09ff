"""GCN texture-refinement training (paper_spec §1, §3): generator + WGAN-GP critic.

Data: the ``prepare_data`` TFRecords (aligned 224 crops + masks) and the coarse
coefficients fitted once per record by ``scripts/fit_data.py``
(`coarse_fits`), joined on the host by the record's ``source/path``.

One training step (`GCNTrainer`):

1. `refinement.inputs.build_inputs`: coarse geometry and raster, T, T_p, lit
   coarse colours, mask M, identity features of the photo (frozen).
2. Generator update (`runtime.minimize`: NaN guard, loss scaling):
   `refinement_step.forward` -> T' -> T̃' -> R' -> overlay -> the generator
   objective with the σ schedule read from the run's epoch counter.
3. Critic updates (when the adversarial term is on and σ1 > 0):
   `critic_steps` WGAN-GP updates on (real = I, fake = the overlay of step 2),
   each with a fresh ε from the run's checkpointed random generator.

Adam (β = 0.9 / 0.999, ε = 1e-8 as TF1's) with lr `learning_rate` ×
`lr_decay` per epoch (staircase, `schedule.learning_rate_schedule`) and
per-variable gradient clipping by norm (`clip_norm`), one optimizer each for
the generator and the critic. The loop, checkpoints (generator, critic, both
optimizers, step, epoch, random generator, data iterator: an exact resume),
summaries and the distribution strategy come from `training.runtime`. At the
end the generator is exported (`generator_spec.export_generator`) for
per-image refinement and inference.
"""

import dataclasses
import math
from typing import Dict, Optional

import keras
import numpy as np
import tensorflow as tf

from facegcn_tf.assets import loaders
from facegcn_tf.data import alignment
from facegcn_tf.data import dataset as data_lib
from facegcn_tf import metrics
from facegcn_tf.errors import AssetNotFoundError, FaceGCNError
from facegcn_tf.morphable import load_model
from facegcn_tf.morphable.model import MorphableModel
from facegcn_tf.networks import critic as critic_lib
from facegcn_tf.render.camera import Camera
from facegcn_tf.render.renderer import FaceRenderer
from facegcn_tf.training import coarse_fits
from facegcn_tf.training import preparation
from facegcn_tf.refinement import generator_spec as spec_lib
from facegcn_tf.refinement import losses
from facegcn_tf.refinement import inputs as ri
from facegcn_tf.refinement import step as refinement_step
from facegcn_tf.training import runtime as rt
from facegcn_tf.training import schedule

RECORD_SIZE = alignment.ALIGNED_SIZE
PHOTO_MASKS = ("face_mask", "skin_mask", "region_mask")
LOSS_VARIANTS = ("paper", "official")
IDENTITY_KINDS = ("dlib", "facenet")
IMAGE_GRID_KEY = rt.IMAGE_PREFIX + "input_coarse_fine_overlay"


@dataclasses.dataclass(frozen=True, kw_only=True)
class GCNTrainConfig(spec_lib.GeneratorHParams):
  """Settings of one GCN texture run (defaults: the paper's / official values).

  Attributes:
    runtime: checkpoints, summaries, precision (`runtime.RuntimeConfig`).
    data: glob of ``prepare_data`` TFRecord shards.
    coarse_coeffs: folder of the cached coarse fits (default: next to the
      data, ``coarse_<face model>``; made by ``scripts/fit_data.py``).
    batch_size: global batch size (official: 4).
    steps, epochs: run length; exactly one is set (official: 50 epochs).
    learning_rate, lr_decay: Adam lr × lr_decay per epoch (1e-4, 0.98).
    clip_norm: per-variable gradient-norm clip (official: 5; 0 = off).
    face_model, face_model_path: the 3DMM (paper: BFM 2009) and its file.
    image_size: training resolution (crops are area-resized from 224).
    photo_mask: record mask used as M_face ("face_mask" = the paper's face
      segmentation), times the crop's valid area.
    mask_visibility: T_p's visibility also needs the face mask (official).
    identity, identity_weights: identity network of the decoder input and
      the identity loss ("dlib" here; "facenet" = the paper's, user file).
    refiner, decoder, activation, order, decoder_widths, refiner_widths,
      use_decoder, use_refiner, fc_weight_decay, factors: the generator's
      hyper-parameters, inherited from `generator_spec.GeneratorHParams`.
    loss_variant: "paper" (L_pix, L2 norms) or "official" (projection loss,
      L1, symmetry and skin-variance terms).
    sigma_variant, ramp_epochs: the σ1/σ4 schedule (`schedule.sigma_schedule`).
    vertex_loss: False drops the σ4 (L_vert) group (Fig. 7 ablation).
    id_weight: σ2. adv_weight: σ3.
    gan: train the critic and use the adversarial term.
    gp_weight: λ of the gradient penalty. critic_steps: critic updates per
      generator step. critic_norm: "batch" (official), "layer" or "none".
    per_sample_epsilon: one interpolation ε per image (WGAN-GP) or one per
      batch (official).
    shuffle_buffer, seed: data order and initial weights.
  """
  runtime: rt.RuntimeConfig
  data: str
  coarse_coeffs: Optional[str] = None
  batch_size: int = 4
  steps: Optional[int] = None
  epochs: Optional[float] = None
  learning_rate: float = 1e-4
  lr_decay: float = 0.98
  clip_norm: float = 5.0
  face_model: str = "bfm"
  face_model_path: Optional[str] = None
  image_size: int = 224
  photo_mask: str = "face_mask"
  mask_visibility: bool = True
  identity: str = "dlib"
  identity_weights: Optional[str] = None
  loss_variant: str = "paper"
  sigma_variant: str = "paper"
  ramp_epochs: float = 5.0
  vertex_loss: bool = True
  id_weight: float = 0.2
  adv_weight: float = 1e-3
  gan: bool = True
  gp_weight: float = 10.0
  critic_steps: int = 5
  critic_norm: str = "layer"
  per_sample_epsilon: bool = True
  shuffle_buffer: int = 512
  seed: int = 0

  def __post_init__(self):
    if not isinstance(self.runtime, rt.RuntimeConfig):
      raise ValueError("GCNTrainConfig.runtime must be a RuntimeConfig")
    if not self.data:
      raise ValueError("GCNTrainConfig.data (a TFRecord glob) must be set")
    for name in ("batch_size", "image_size", "shuffle_buffer"):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    if isinstance(self.critic_steps, bool) or not isinstance(self.critic_steps, int) \
        or self.critic_steps < 0:
      raise ValueError(f"critic_steps must be an int >= 0, got {self.critic_steps!r}")
    if (self.steps is None) == (self.epochs is None):
      raise ValueError("set exactly one of steps and epochs")
    if self.steps is not None and self.steps < 1:
      raise ValueError(f"steps must be >= 1, got {self.steps}")
    if self.epochs is not None and not self.epochs > 0:
      raise ValueError(f"epochs must be > 0, got {self.epochs}")
    if not (self.learning_rate > 0 and 0 < self.lr_decay <= 1 and self.clip_norm >= 0):
      raise ValueError("need learning_rate > 0, lr_decay in (0, 1] and clip_norm >= 0")
    if not 32 <= self.image_size <= RECORD_SIZE:
      raise ValueError(f"image_size must be in [32, {RECORD_SIZE}], got {self.image_size}")
    if self.photo_mask not in PHOTO_MASKS:
      raise ValueError(f"photo_mask must be one of {PHOTO_MASKS}, got '{self.photo_mask}'")
    if self.identity not in IDENTITY_KINDS:
      raise ValueError(f"identity must be one of {IDENTITY_KINDS}, got '{self.identity}'")
    if self.loss_variant not in LOSS_VARIANTS:
      raise ValueError(f"loss_variant must be one of {LOSS_VARIANTS}, got '{self.loss_variant}'")
    if self.sigma_variant not in schedule.SIGMA_VARIANTS:
      raise ValueError(f"sigma_variant must be one of {schedule.SIGMA_VARIANTS}, "
                       f"got '{self.sigma_variant}'")
    if self.critic_norm not in critic_lib.NORMS:
      raise ValueError(f"critic_norm must be one of {critic_lib.NORMS}, got '{self.critic_norm}'")
    for name in ("ramp_epochs", "id_weight", "adv_weight", "gp_weight"):
      value = getattr(self, name)
      if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    if not self.ramp_epochs > 0:
      raise ValueError(f"ramp_epochs must be > 0, got {self.ramp_epochs}")
    super().__post_init__()  # the generator's hyper-parameters

  def generator_spec(self, feature_dim: int, face_model: Optional[str] = None):
    """The `GeneratorSpec` of this run's generator."""
    return self.spec(face_model or self.face_model, feature_dim, identity=self.identity)

  def loss_config(self) -> losses.GeneratorLossConfig:
    return refinement_step.loss_config(self.loss_variant, self.id_weight, self.adv_weight,
                                       adversarial=self.gan)


def select_examples(batch: Dict[str, tf.Tensor], size: int, mask_key: str) -> Dict[str, tf.Tensor]:
  """Parsed record batch (224 px) -> ``image`` [B, S, S, 3] 0..255, ``mask`` [B, S, S], ``source_path``.

  ``mask`` = the chosen mask times the valid area (area-resized when S < 224).
  """
  image = batch["image"]
  mask = batch[mask_key] * batch["valid_mask"]
  if image.shape[1] != size:
    image = tf.image.resize(image, [size, size], method="area")
    mask = tf.image.resize(mask, [size, size], method="area")
  return {"image": image, "mask": mask[..., 0], "source_path": batch["source_path"]}


def check_inputs_exist(config: GCNTrainConfig) -> None:
  """One-line FaceGCNError naming everything missing (face-model file, data), before any work."""
  problems = []
  try:
    load_model(config.face_model, config.face_model_path)
  except AssetNotFoundError as err:
    problems.append(str(err).splitlines()[0])
  if not tf.io.gfile.glob(config.data):
    problems.append(f"no TFRecord files match --data='{config.data}' (make them with "
                    "scripts/prepare_data.py)")
  if problems:
    raise FaceGCNError("; ".join(p.rstrip(".") for p in problems))


class GCNTrainer:
  """Builds everything for one GCN texture run; :meth:`train` runs (or resumes) it.

  Args:
    config: the `GCNTrainConfig`.
    face_model: an already loaded model instead of ``config.face_model``.
    coarse_coeffs: ``{source path: coeffs}`` instead of the cache folder.
    strategy: a ``tf.distribute`` strategy (default: ``runtime.make_strategy``).
  """

  def __init__(self, config: GCNTrainConfig, face_model: Optional[MorphableModel] = None,
               coarse_coeffs: Optional[Dict[str, np.ndarray]] = None,
               strategy: Optional[tf.distribute.Strategy] = None):
    self.config = config
    if face_model is None:
      check_inputs_exist(config)
      face_model = load_model(config.face_model, config.face_model_path)
    self.face_model = face_model
    # The records must be aligned to this model's template (one line otherwise).
    self.preparation = preparation.check_preparation(config.data, face_model)
    self.layout = face_model.layout
    self.renderer = FaceRenderer(face_model, Camera().resized(config.image_size))
    if coarse_coeffs is None:
      cache_dir = config.coarse_coeffs or coarse_fits.default_cache_dir(config.data,
                                                                        face_model.name)
      coarse_coeffs = coarse_fits.load_coarse_coeffs(cache_dir, self.layout, face_model.name,
                                                     config.data)
    else:
      cache_dir = "<given table>"
    self._coeffs = {k: np.asarray(v, np.float32) for k, v in coarse_coeffs.items()}
    for key, value in self._coeffs.items():
      if value.shape != (self.layout.total,):
        raise ValueError(f"coarse coefficients of '{key}' have shape {value.shape}, the face "
                         f"model needs [{self.layout.total}]")
    num_records = coarse_fits.check_coverage(self._coeffs, config.data, cache_dir)
    self.steps_per_epoch = max(1, num_records // config.batch_size)
    self.total_steps = rt.steps_for(config.epochs, config.steps, self.steps_per_epoch)
    self.loss_config = config.loss_config()

    self.runtime = rt.TrainingRuntime(config.runtime, strategy)
    self.dataset = self._make_dataset()
    self.iterator = iter(self.dataset)
    template5 = face_model.template5
    self.encoder = loaders.load_identity_encoder(config.identity, template5=template5,
                                                 fit_method=self.preparation.fit_method,
                                                 weights_path=config.identity_weights)
    feature_dim = self.encoder.feature_dim or int(
        self.encoder(tf.zeros([1, config.image_size, config.image_size, 3])).shape[-1])
    self.spec = config.generator_spec(feature_dim, face_model.name)
    self.hierarchy = spec_lib.build_hierarchy(face_model, self.spec)
    self._critic_on = config.gan and config.critic_steps > 0
    keras.utils.set_random_seed(config.seed)  # reproducible initial weights
    with self.runtime.scope():
      with self.runtime.policy_scope():
        self.generator = spec_lib.build_generator(self.spec, self.hierarchy)
        self.critic = None
        if config.gan:
          self.critic = critic_lib.ImageCritic(norm=config.critic_norm, name="critic")
          self.critic.build((None, config.image_size, config.image_size, 3))
      self.generator_optimizer = self._optimizer(self.steps_per_epoch)
      self.generator_optimizer.build(self.generator.trainable_variables)
      objects = {"generator": self.generator, "generator_optimizer": self.generator_optimizer}
      if self.critic is not None:
        self.critic_optimizer = self._optimizer(self.steps_per_epoch * max(1, config.critic_steps))
        self.critic_optimizer.build(self.critic.trainable_variables)
        objects.update(critic=self.critic, critic_optimizer=self.critic_optimizer)
    self.runtime.track(data=self.iterator, **objects)
    self._pairs = face_model.symmetry_pairs if self.loss_config.symmetry_weight > 0 else None
    self._skin = face_model.skin_mask if self.loss_config.skin_variance_weight > 0 else None
    self._steps = {}

  # -- setup --

  def _optimizer(self, steps_per_epoch: int):
    cfg = self.config
    lr = schedule.learning_rate_schedule(int(steps_per_epoch), cfg.learning_rate, cfg.lr_decay)
    return self.runtime.wrap_optimizer(keras.optimizers.Adam(
        learning_rate=lr, epsilon=1e-8, clipnorm=cfg.clip_norm or None))

  def _make_dataset(self) -> tf.data.Dataset:
    cfg = self.config
    ds = data_lib.make_dataset(cfg.data, cfg.batch_size, shuffle=True, augment=False,
                               seed=cfg.seed, shuffle_buffer=cfg.shuffle_buffer, repeat=True,
                               drop_remainder=True)
    size, mask_key = cfg.image_size, cfg.photo_mask
    return ds.map(lambda b: select_examples(b, size, mask_key),
                  num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

  def prepare_batch(self, batch: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    """Host side: looks up each record's coarse coefficients by its source path."""
    paths = [p.decode("utf-8") for p in batch["source_path"].numpy()]
    try:
      coeffs = np.stack([self._coeffs[p] for p in paths])
    except KeyError as err:
      raise FaceGCNError(f"record {err} has no coarse coefficients; run scripts/fit_data.py "
                         "on this data") from None
    return {"image": batch["image"], "mask": batch["mask"], "coeffs": tf.constant(coeffs)}

  # -- the step --

  def sigmas(self, epoch):
    """(σ1, σ4) at `epoch` (tensor or float); σ4 = 0 without the vertex losses."""
    cfg = self.config
    if cfg.sigma_variant == "official":
      epoch = tf.floor(epoch) if isinstance(epoch, tf.Tensor) else math.floor(epoch)
    sigma1, sigma4 = schedule.sigma_schedule(epoch, cfg.sigma_variant, cfg.ramp_epochs)
    if not cfg.vertex_loss:
      sigma4 = 0.0 * sigma4
    return sigma1, sigma4

  def build_inputs(self, batch) -> ri.RefinementInputs:
    return ri.build_inputs(self.renderer, batch["image"], batch["coeffs"], batch["mask"],
                           encoder=self.encoder, mask_visibility=self.config.mask_visibility)

  def _replica_step(self, batch, train_critic: bool):
    cfg = self.config
    inputs = self.build_inputs(batch)
    sigma1, sigma4 = self.sigmas(tf.cast(self.runtime.epoch, tf.float32))

    def loss_fn():
      out = refinement_step.forward(
          self.generator, self.renderer, inputs, sigma1=sigma1, sigma4=sigma4,
          loss_config=self.loss_config, encoder=self.encoder, critic=self.critic,
          symmetry_pairs=self._pairs, skin_mask=self._skin, training=True)
      return out.terms["total"], out

    loss, out, finite = self.runtime.minimize(self.generator_optimizer, loss_fn,
                                              self.generator.trainable_variables)
    outputs = {rt.LOSS_KEY: loss}
    outputs.update({f"loss/{k}": v for k, v in out.terms.items() if k != "total"})
    outputs["sigma/sigma1"] = tf.convert_to_tensor(sigma1, tf.float32)
    outputs["sigma/sigma4"] = tf.convert_to_tensor(sigma4, tf.float32)
    outputs["lr/generator"] = tf.cast(self.generator_optimizer.learning_rate, tf.float32)
    outputs["metric/psnr_coarse"] = tf.reduce_mean(
        metrics.masked_psnr(inputs.image, inputs.coarse_render, inputs.mask, **ri.SIGNED))
    outputs["metric/psnr_fine"] = tf.reduce_mean(
        metrics.masked_psnr(inputs.image, out.rendering, inputs.mask, **ri.SIGNED))
    if train_critic:
      real, fake = inputs.image, tf.stop_gradient(out.overlay)
      batch_size = tf.shape(real)[0] if cfg.per_sample_epsilon else 1
      for _ in range(cfg.critic_steps):
        epsilon = self.runtime.rng.uniform(tf.stack([batch_size, 1, 1, 1]), 0.0, 1.0)

        def critic_fn(eps=epsilon):
          return losses.critic_loss(self.critic, real, fake, cfg.gp_weight, training=True,
                                    epsilon=eps, return_terms=True)

        closs, cterms, cfinite = self.runtime.minimize(self.critic_optimizer, critic_fn,
                                                       self.critic.trainable_variables)
        finite = tf.logical_and(finite, cfinite)
      outputs["critic/loss"] = closs
      outputs.update({f"critic/{k}": v for k, v in cterms.items()})
      outputs["lr/critic"] = tf.cast(self.critic_optimizer.learning_rate, tf.float32)
    outputs[rt.FINITE_KEY] = finite
    outputs[IMAGE_GRID_KEY] = refinement_step.image_grid(inputs, out)
    return outputs

  def critic_active(self) -> bool:
    """The critic trains this step: GAN on and σ1 > 0 at the current epoch."""
    if not self._critic_on:
      return False
    sigma1, _ = self.sigmas(float(self.runtime.epoch.numpy()))
    return float(sigma1) > 0.0

  def step(self, batch) -> Dict[str, tf.Tensor]:
    """One training step on a (distributed) batch: generator update, then the critic's."""
    train_critic = self.critic_active()
    if train_critic not in self._steps:
      self._steps[train_critic] = self.runtime.distributed_step(
          lambda b, c=train_critic: self._replica_step(b, c))
    return self._steps[train_critic](batch)

  # -- running --

  def restore(self) -> Optional[str]:
    """Restores the latest checkpoint of the run (None: nothing to resume)."""
    return self.runtime.restore()

  def train(self) -> rt.RunResult:
    """Resumes from the latest checkpoint if any, trains to ``total_steps``, exports (the
    chief, under a multi-worker strategy)."""
    self.restore()
    result = self.runtime.run(self.step, self.iterator, self.total_steps,
                              steps_per_epoch=self.steps_per_epoch,
                              prepare_batch=self.prepare_batch, description="gcn")
    if self.runtime.is_chief:
      self.export()
    return result

  def export(self) -> str:
    """Writes the generator's weights + spec to the output dir (see `generator_spec`)."""
    return spec_lib.export_generator(
        self.generator, self.spec, self.config.runtime.output_dir,
        extra={"step": int(self.runtime.step.numpy()), "image_size": self.config.image_size,
               "align_method": self.preparation.fit_method})


def train(config: GCNTrainConfig,
          strategy: Optional[tf.distribute.Strategy] = None) -> rt.RunResult:
  """Builds a :class:`GCNTrainer` from ``config`` and trains (resuming if possible)."""
  return GCNTrainer(config, strategy=strategy).train()


def make_config(runtime_config: rt.RuntimeConfig, **settings) -> GCNTrainConfig:
  """The stage entry of ``scripts/train.py``: a :class:`GCNTrainConfig` from common settings.

  Raises:
    ValueError: a setting this stage does not have, no ``data``, or invalid values.
  """
  rt.check_stage_settings(GCNTrainConfig, settings, "GCN")
  if settings.get("steps") is None and settings.get("epochs") is None:
    settings["epochs"] = 50.0
  return GCNTrainConfig(runtime=runtime_config, **settings)


__all__ = ["GCNTrainConfig", "GCNTrainer", "check_inputs_exist", "make_config",
           "select_examples", "train"]
