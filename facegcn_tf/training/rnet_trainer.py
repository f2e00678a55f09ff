"""Weakly supervised training of the R-Net coefficient regressor (Deep3DFace, paper_spec §2.1).

Each step: the R-Net (:func:`networks.rnet.build_rnet`) predicts coefficients
for a batch of aligned crops from the ``prepare_data`` TFRecords
(:func:`data.dataset.make_dataset`), :class:`render.renderer.FaceRenderer`
renders them, and Deep3DFace's losses (:mod:`fitting.losses`) compare the
result with the photo: landmarks (the records' iBUG-68), the photometric loss
inside the records' skin mask times the rendered face, identity features of
photo vs render composited onto the photo, and the coefficient, reflectance
and lighting priors. Optionally (**distillation**) coefficients fitted per
image (``fitting.fitter``) are extra targets: a per-part weighted L2.

Training resolution: the records hold 224-px crops; ``image_size`` < 224
trains on area-resized crops rendered with the same field of view (landmark
coordinates are rescaled; the landmark loss is measured in 224-px units, so
its weight keeps its meaning).

The loop, checkpoints (model, optimizer, step, epoch, data iterator), resume,
NaN guard, mixed precision, distribution and TensorBoard come from
:mod:`training.runtime`. At the end the weights are also written to
``<output_dir>/rnet.weights.h5`` (+ ``rnet.json``), loadable with
:func:`networks.rnet.load_rnet` or, input size included,
:func:`assets.loaders.load_rnet_predictor`.
"""

import dataclasses
import json
import os
from typing import Dict, Optional

import keras
import numpy as np
import tensorflow as tf

from facegcn_tf.assets import loaders
from facegcn_tf.data import alignment
from facegcn_tf.data import dataset as data_lib
from facegcn_tf.data.augment import AugmentOptions
from facegcn_tf.errors import AssetNotFoundError
from facegcn_tf.fitting import losses
from facegcn_tf.morphable import load_model
from facegcn_tf.morphable.model import COEFF_NAMES, MorphableModel
from facegcn_tf.networks import rnet as rnet_lib
from facegcn_tf.render.camera import Camera
from facegcn_tf.render.renderer import FaceRenderer
from facegcn_tf.training import runtime as rt

RECORD_SIZE = alignment.ALIGNED_SIZE
IDENTITY_KINDS = ("dlib", "facenet", "none")
PHOTO_MASKS = ("skin_mask", "face_mask", "region_mask")
WEIGHTS_FILE = "rnet.weights.h5"
CONFIG_FILE = loaders.RNET_CONFIG_FILE


@dataclasses.dataclass(frozen=True)
class DistillWeights:
  """Per-part weights of the distillation L2 (mean squared difference per part)."""
  id: float = 1.0
  exp: float = 1.0
  tex: float = 1.0
  angles: float = 1.0
  gamma: float = 1.0
  trans: float = 1.0

  def __post_init__(self):
    for name in COEFF_NAMES:
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
          np.isfinite(value) and value >= 0):
        raise ValueError(f"DistillWeights.{name} must be a finite number >= 0, got {value!r}")


@dataclasses.dataclass(frozen=True)
class RNetTrainConfig:
  """Settings of one R-Net training run (defaults: Deep3DFace's, paper_spec §2.1).

  Attributes:
    runtime: checkpoints, summaries, precision (see ``runtime.RuntimeConfig``).
    data: glob of ``prepare_data`` TFRecord shards.
    batch_size: global batch size (Deep3DFace: 16).
    steps, epochs: run length; exactly one is set (None: the other one).
    learning_rate: Adam's learning rate (Deep3DFace: 1e-4) ...
    lr_drop_step, lr_after_drop: ... then ``lr_after_drop`` from step
      ``lr_drop_step`` on (Deep3DFace: 2e-5 after 100k; 0 = never).
    face_model: ``"ict"``, ``"ict_coarse"`` or ``"bfm"``; face_model_path its file.
    image_size: training resolution (crops area-resized from 224).
    identity: identity network for the identity loss: "dlib", "facenet" or
      "none" (no identity term); identity_weights its file.
    backbone_weights: optional local Keras ResNet-50 notop weights.
    weights: loss weights (``fitting.losses.LossWeights``).
    photo_mask: record mask weighing the photometric loss (times the
      rendered face and the valid area): "skin_mask" (Deep3DFace's skin
      attention), "face_mask" (the paper's face segmentation) or "region_mask".
    distill_targets: optional fitted coefficients: an ``.npz`` with ``paths``
      [N] (the records' ``source/path``) and ``coeffs`` [N, layout.total], or
      a folder / glob of them (see :func:`load_distill_targets`).
    distill_weight: weight of the distillation term.
    distill: per-part weights inside it.
    augment: data augmentation (``data.augment``); with distillation only
      the colour part (moving or flipping the face would break the targets).
    shuffle_buffer: examples in the shuffle buffer.
    seed: data order and augmentation seed.
  """
  runtime: rt.RuntimeConfig
  data: str
  batch_size: int = 16
  steps: Optional[int] = None
  epochs: Optional[float] = None
  learning_rate: float = 1e-4
  lr_drop_step: int = 100_000
  lr_after_drop: float = 2e-5
  face_model: str = "ict"
  face_model_path: Optional[str] = None
  image_size: int = 224
  identity: str = "dlib"
  identity_weights: Optional[str] = None
  backbone_weights: Optional[str] = None
  weights: losses.LossWeights = losses.LossWeights()
  photo_mask: str = "skin_mask"
  distill_targets: Optional[str] = None
  distill_weight: float = 1.0
  distill: DistillWeights = DistillWeights()
  augment: bool = True
  shuffle_buffer: int = 512
  seed: int = 0

  def __post_init__(self):
    if not isinstance(self.runtime, rt.RuntimeConfig):
      raise ValueError("RNetTrainConfig.runtime must be a RuntimeConfig")
    if not self.data:
      raise ValueError("RNetTrainConfig.data (a TFRecord glob) must be set")
    for name in ("batch_size", "image_size", "shuffle_buffer"):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"RNetTrainConfig.{name} must be an int >= 1, got {value!r}")
    if (self.steps is None) == (self.epochs is None):
      raise ValueError("set exactly one of steps and epochs")
    if self.steps is not None and self.steps < 1:
      raise ValueError(f"steps must be >= 1, got {self.steps}")
    if self.epochs is not None and not self.epochs > 0:
      raise ValueError(f"epochs must be > 0, got {self.epochs}")
    if not (self.learning_rate > 0 and self.lr_after_drop > 0 and self.lr_drop_step >= 0):
      raise ValueError("learning rates must be > 0 and lr_drop_step >= 0")
    if not rnet_lib.MIN_INPUT_SIZE <= self.image_size <= RECORD_SIZE:
      raise ValueError(f"image_size must be in [{rnet_lib.MIN_INPUT_SIZE}, {RECORD_SIZE}], "
                       f"got {self.image_size}")
    if self.identity not in IDENTITY_KINDS:
      raise ValueError(f"identity must be one of {IDENTITY_KINDS}, got '{self.identity}'")
    if self.photo_mask not in PHOTO_MASKS:
      raise ValueError(f"photo_mask must be one of {PHOTO_MASKS}, got '{self.photo_mask}'")
    if not (np.isfinite(self.distill_weight) and self.distill_weight >= 0):
      raise ValueError(f"distill_weight must be >= 0, got {self.distill_weight}")


# ---- pure pieces ------------------------------------------------------------------------------

def distillation_loss(predicted: tf.Tensor, target: tf.Tensor, has_target: tf.Tensor,
                      layout, weights: DistillWeights) -> tf.Tensor:
  """Per-part weighted L2 to fitted coefficients.

  Args:
    predicted, target: [B, N] coefficients (``layout``).
    has_target: [B] 1 where the image has a fitted target, 0 elsewhere.
    layout: the ``CoeffLayout``.
    weights: per-part weights.

  Returns:
    [B] Σ_part w_part · mean_part((predicted − target)²), 0 without target.
  """
  diff = tf.square(tf.convert_to_tensor(predicted, tf.float32)
                   - tf.convert_to_tensor(target, tf.float32))
  total = tf.zeros_like(diff[:, 0])
  for name, part in layout.split(diff).items():
    if part.shape[-1]:
      total += getattr(weights, name) * tf.reduce_mean(part, axis=-1)
  return total * tf.cast(has_target, tf.float32)


def resize_examples(batch: Dict[str, tf.Tensor], size: int, mask_key: str) -> Dict[str, tf.Tensor]:
  """Batched parsed records (224 px) -> what a train step needs, at ``size`` px.

  Returns:
    ``image`` [B, S, S, 3] RGB 0..255, ``mask`` [B, S, S] photometric weights
    (``mask_key`` times the valid area, area-resized, in [0, 1]),
    ``landmarks`` [B, 68, 2] in S-px pixel coordinates, ``source_path`` [B].
  """
  image = batch["image"]
  mask = batch[mask_key] * batch["valid_mask"] if "valid_mask" in batch else batch[mask_key]
  landmarks = batch["landmarks68"]
  in_size = image.shape[1]
  if in_size != size:
    image = tf.image.resize(image, [size, size], method="area")
    mask = tf.image.resize(mask, [size, size], method="area")
    landmarks = (landmarks + 0.5) * (size / in_size) - 0.5
  out = {"image": image, "mask": mask[..., 0], "landmarks": landmarks}
  if "source_path" in batch:
    out["source_path"] = batch["source_path"]
  return out


def load_distill_targets(path: str, face_model) -> Dict[str, np.ndarray]:
  """Reads distillation targets: ``source/path`` -> [N] fitted coefficients.

  Args:
    path: an ``.npz`` with ``paths`` [N] (the records' source paths) and
      ``coeffs`` [N, layout.total], a folder of such files, or a glob (e.g.
      the per-shard coarse-fit cache of ``training.coarse_fits``). A file's
      optional ``face_model`` entry must name ``face_model``.
    face_model: the ``MorphableModel`` being trained.

  Raises:
    AssetNotFoundError: nothing found.
    ValueError: wrong keys, shapes or face model, or non-finite coefficients.
  """
  if os.path.isdir(path):
    files = sorted(tf.io.gfile.glob(os.path.join(path, "*.npz")))
  else:
    files = sorted(tf.io.gfile.glob(path))
  if not files:
    raise AssetNotFoundError(f"distillation targets '{path}' not found (an .npz with 'paths' "
                             "and 'coeffs' of fitted coefficients, a folder or a glob of them)")
  total = face_model.layout.total
  targets = {}
  for name in files:
    with np.load(name, allow_pickle=False) as data:
      if "paths" not in data or "coeffs" not in data:
        raise ValueError(f"'{name}' must hold arrays 'paths' and 'coeffs', has {sorted(data)}")
      if "face_model" in data and str(data["face_model"]) != face_model.name:
        raise ValueError(f"'{name}' was fitted with face model '{data['face_model']}', not "
                         f"'{face_model.name}'")
      paths = [str(p) for p in data["paths"]]
      coeffs = np.asarray(data["coeffs"], np.float32)
    if coeffs.shape != (len(paths), total):
      raise ValueError(f"'{name}': coeffs must be [{len(paths)}, {total}] for face model "
                       f"'{face_model.name}', got {coeffs.shape}")
    if not np.all(np.isfinite(coeffs)):
      raise ValueError(f"'{name}': coeffs contain NaN or inf")
    targets.update(zip(paths, coeffs))
  return targets


def count_examples(pattern: str) -> int:
  """Examples in the shards matching ``pattern`` (manifests' counts, else by reading)."""
  files = sorted(tf.io.gfile.glob(pattern))
  if not files:
    raise FileNotFoundError(f"no TFRecord files match '{pattern}'")
  total = 0
  for path in files:
    manifest = os.path.splitext(path)[0] + ".json"
    count = None
    if os.path.isfile(manifest):
      try:
        with open(manifest, "r", encoding="utf-8") as f:
          count = int(json.load(f)["num_examples"])
      except (OSError, ValueError, KeyError, TypeError):
        count = None
    if count is None:
      count = sum(1 for _ in tf.data.TFRecordDataset(path))
    total += count
  return total


# ---- the trainer ------------------------------------------------------------------------------

class RNetTrainer:
  """Builds everything for one R-Net run; :meth:`train` runs (or resumes) it.

  Args:
    config: the :class:`RNetTrainConfig`.
    dataset: optional ``tf.data.Dataset`` of batches shaped like
      :func:`resize_examples`' output (``image``, ``mask``, ``landmarks``,
      optional ``source_path``), used instead of ``config.data`` (tests,
      custom pipelines); it should repeat.
    steps_per_epoch: with ``dataset``: batches per epoch (for ``epochs`` and
      the epoch counter).
    face_model: an already loaded model instead of ``config.face_model``.
    strategy: a ``tf.distribute`` strategy (default: ``runtime.make_strategy``).
  """

  def __init__(self, config: RNetTrainConfig, dataset: Optional[tf.data.Dataset] = None,
               steps_per_epoch: Optional[float] = None,
               face_model: Optional[MorphableModel] = None,
               strategy: Optional[tf.distribute.Strategy] = None):
    self.config = config
    self.runtime = rt.TrainingRuntime(config.runtime, strategy)
    self.face_model = face_model if face_model is not None else load_model(
        config.face_model, config.face_model_path)
    self.layout = self.face_model.layout
    size = config.image_size
    self.renderer = FaceRenderer(self.face_model, Camera().resized(size))
    self._skin = self.face_model.skin_mask.astype(np.float32)
    self._targets = (load_distill_targets(config.distill_targets, self.face_model)
                     if config.distill_targets else None)

    if dataset is None:
      self.steps_per_epoch = count_examples(config.data) / config.batch_size
      dataset = self._make_dataset()
    else:
      self.steps_per_epoch = steps_per_epoch
    if config.epochs is not None and not self.steps_per_epoch:
      raise ValueError("epochs need steps_per_epoch when a dataset is passed in")
    self.total_steps = rt.steps_for(config.epochs, config.steps, self.steps_per_epoch or 1.0)
    self.dataset = dataset
    self.iterator = iter(dataset)

    with self.runtime.scope():
      with self.runtime.policy_scope():
        self.model = rnet_lib.build_rnet(self.layout, size, config.backbone_weights)
      schedule = config.learning_rate
      if config.lr_drop_step:
        schedule = keras.optimizers.schedules.PiecewiseConstantDecay(
            [config.lr_drop_step], [config.learning_rate, config.lr_after_drop])
      # epsilon 1e-8: TF1's AdamOptimizer default, which Deep3DFace used.
      self.optimizer = self.runtime.wrap_optimizer(
          keras.optimizers.Adam(learning_rate=schedule, epsilon=1e-8))
      self.optimizer.build(self.model.trainable_variables)
      self.encoder = self._make_identity_encoder()
    self.runtime.track(model=self.model, optimizer=self.optimizer, data=self.iterator)
    self._step_fn = None

  # -- setup --

  def _make_dataset(self) -> tf.data.Dataset:
    cfg = self.config
    options = AugmentOptions()
    if self._targets is not None:
      options = dataclasses.replace(options, flip_prob=0.0, max_shift=0.0, max_scale=0.0)
    ds = data_lib.make_dataset(cfg.data, cfg.batch_size, shuffle=True, augment=cfg.augment,
                               seed=cfg.seed, shuffle_buffer=cfg.shuffle_buffer, repeat=True,
                               drop_remainder=True, augment_options=options)
    size, mask_key = cfg.image_size, cfg.photo_mask
    return ds.map(lambda b: resize_examples(b, size, mask_key),
                  num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

  def _make_identity_encoder(self):
    if self.config.identity == "none" or self.config.weights.identity == 0:
      return None
    model = self.face_model
    template5 = model.template5
    return loaders.load_identity_encoder(self.config.identity, template5=template5,
                                         weights_path=self.config.identity_weights)

  # -- the model's losses --

  def loss_terms(self, batch: Dict[str, tf.Tensor], training: bool = True):
    """Per-image loss terms of one batch.

    Args:
      batch: ``image`` [B, S, S, 3], ``mask`` [B, S, S], ``landmarks``
        [B, 68, 2], and with distillation ``target`` [B, N], ``has_target`` [B].
      training: BatchNorm mode.

    Returns:
      (terms {name: [B]}, per_image total [B], overlay [B, S, S, 3] 0..255 the
      render composited onto the photo).
    """
    cfg = self.config
    images = tf.cast(batch["image"], tf.float32)
    coeffs, _ = self.model(images, training=training)
    coeffs = tf.cast(coeffs, tf.float32)
    parts = self.layout.split(coeffs)
    geometry = self.renderer.geometry(coeffs)
    raster = self.renderer.rasterize(geometry)
    albedo = self.renderer.albedo(coeffs)
    out = self.renderer.render(coeffs, vertex_colors=albedo, geometry=geometry, raster=raster)
    rendered = out.image * 255.0
    covered = out.mask[..., tf.newaxis]
    overlay = tf.clip_by_value(rendered, 0.0, 255.0) * covered + images * (1.0 - covered)
    w = cfg.weights
    terms = {
        "landmark": losses.landmark_loss(self.renderer.landmarks(geometry), batch["landmarks"],
                                         image_size=cfg.image_size),
        "photo": losses.photometric_loss(images, rendered, batch["mask"] * out.mask),
        "reg": losses.regularization_loss(parts["id"], parts["exp"], parts["tex"],
                                          w.reg_id, w.reg_exp, w.reg_tex),
        "reflectance": losses.reflectance_loss(albedo, self._skin),
        "gamma": losses.gamma_loss(parts["gamma"]),
    }
    if self.encoder is not None:
      photo_features = tf.stop_gradient(self.encoder(images))
      terms["identity"] = losses.identity_loss(photo_features, self.encoder(overlay))
    per_image = losses.total_loss(terms, w)
    if self._targets is not None:
      terms["distill"] = distillation_loss(coeffs, batch["target"], batch["has_target"],
                                           self.layout, cfg.distill)
      per_image += cfg.distill_weight * terms["distill"]
    return terms, per_image, overlay

  def _replica_step(self, batch):
    def loss_fn():
      terms, per_image, overlay = self.loss_terms(batch, training=True)
      return tf.reduce_mean(per_image), (terms, overlay)

    loss, (terms, overlay), finite = self.runtime.minimize(
        self.optimizer, loss_fn, self.model.trainable_variables)
    outputs = {rt.LOSS_KEY: loss, rt.FINITE_KEY: finite}
    outputs.update({f"loss/{name}": tf.reduce_mean(value) for name, value in terms.items()})
    outputs["images/input_render"] = rt.image_grid([batch["image"] / 255.0, overlay / 255.0])
    return outputs

  def prepare_batch(self, batch: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    """Host side: keeps the step's inputs and looks up distillation targets by source path."""
    out = {key: batch[key] for key in ("image", "mask", "landmarks")}
    if self._targets is not None:
      paths = [p.decode("utf-8") for p in batch["source_path"].numpy()]
      found = [self._targets.get(p) for p in paths]
      zeros = np.zeros([self.layout.total], np.float32)
      out["target"] = tf.constant(np.stack([t if t is not None else zeros for t in found]))
      out["has_target"] = tf.constant([t is not None for t in found], tf.float32)
    return out

  # -- running --

  def restore(self) -> Optional[str]:
    """Restores the latest checkpoint of the run (None: nothing to resume)."""
    return self.runtime.restore()

  @property
  def step_function(self):
    """The (traced on first call) train step: prepared batch -> outputs dict (see runtime)."""
    if self._step_fn is None:
      self._step_fn = self.runtime.distributed_step(self._replica_step)
    return self._step_fn

  def train(self) -> rt.RunResult:
    """Resumes from the latest checkpoint if any, trains to ``total_steps``, saves (the
    chief, under a multi-worker strategy)."""
    self.restore()
    result = self.runtime.run(self.step_function, self.iterator, self.total_steps,
                              steps_per_epoch=self.steps_per_epoch,
                              prepare_batch=self.prepare_batch, description="rnet")
    if self.runtime.is_chief:
      self.export_weights()
    return result

  def export_weights(self) -> str:
    """Writes ``rnet.weights.h5`` and ``rnet.json`` (layout, input size) to the output dir."""
    out = self.config.runtime.output_dir
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, WEIGHTS_FILE)
    self.model.save_weights(path)
    meta = {"layout": {"n_id": self.layout.n_id, "n_exp": self.layout.n_exp,
                       "n_tex": self.layout.n_tex},
            "input_size": self.config.image_size, "face_model": self.face_model.name,
            "step": int(self.runtime.step.numpy())}
    with open(os.path.join(out, CONFIG_FILE), "w", encoding="utf-8") as f:
      json.dump(meta, f, indent=1)
    return path


def train(config: RNetTrainConfig,
          strategy: Optional[tf.distribute.Strategy] = None) -> rt.RunResult:
  """Builds an :class:`RNetTrainer` from ``config`` and trains (resuming if possible)."""
  return RNetTrainer(config, strategy=strategy).train()


def make_config(runtime_config: rt.RuntimeConfig, **settings) -> RNetTrainConfig:
  """The stage entry of ``scripts/train.py``: an :class:`RNetTrainConfig` from common settings.

  Raises:
    ValueError: a setting this stage does not have, no ``data``, or invalid values.
  """
  rt.check_stage_settings(RNetTrainConfig, settings, "R-Net")
  return RNetTrainConfig(runtime=runtime_config, **settings)
