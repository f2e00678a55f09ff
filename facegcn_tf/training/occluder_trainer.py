"""Trains the occluder network (`networks.occluder_net`) on synthetic pairs, resumably.

Loss (`occluder_loss`): per-pixel sigmoid cross-entropy against the drawn occluder's
coverage, weighted 1 inside the rendered face and `outside_weight` outside it (the fitter
only asks about the face). Adam, a learning-rate drop at `drop_at` of the run, random
mirroring.

The run lives in a folder (`runtime.RuntimeConfig.output_dir`) and uses the shared
`training.runtime`: checkpoints of the network, the optimizer and the step every
`checkpoint_every` steps, the NaN guard, TensorBoard scalars and a progress bar. Each step's
batch is a pure function of (seed, step) (`training_batch`), so a run killed at any point
and started again with the same settings resumes from its last checkpoint and ends with the
weights an uninterrupted run gives. The settings are written to ``occluder_run.json`` in
the folder, and a folder started with other settings is refused.

The weights are exported as one ``.npz`` (float16 arrays ``w000``, ``w001``... in the
network's `get_weights` order, plus ``widths`` and ``work_size``), which
`facegcn_tf.assets.loaders.load_occluder_net` reads.
"""

import dataclasses
import json
import os
import pathlib
from typing import Dict, Iterator, Optional, Union

import keras
import numpy as np
import tensorflow as tf

from facegcn_tf import atomic
from facegcn_tf.errors import FaceGCNError
from facegcn_tf.networks import occluder_net as net_lib
from facegcn_tf.training import runtime as rt
from facegcn_tf.training.occluder_data import OccluderPairs

SETTINGS_FILE = "occluder_run.json"


@dataclasses.dataclass(frozen=True)
class OccluderTrainConfig:
  """steps, batch_size, learning_rate; the rate is multiplied by `drop` from step
  ``int(drop_at * steps)`` on; `outside_weight`: the loss weight of pixels off the face;
  seed: the batches and the initial weights."""
  steps: int = 3000
  batch_size: int = 32
  learning_rate: float = 1e-3
  drop_at: float = 0.7
  drop: float = 0.3
  outside_weight: float = 0.2
  seed: int = 0


@dataclasses.dataclass(frozen=True)
class OccluderRun:
  """What `train_occluder_net` returns: the trained network and the runtime's result
  (first and last step, last losses, last checkpoint, seconds)."""
  net: net_lib.OccluderNet
  result: rt.RunResult


def occluder_loss(logits: tf.Tensor, masks: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
  """Weighted mean sigmoid cross-entropy: logits [B, s, s], masks and weights [B, s, s] -> []."""
  loss = tf.nn.sigmoid_cross_entropy_with_logits(labels=masks, logits=logits)
  return tf.reduce_sum(loss * weights) / tf.reduce_sum(weights)


def training_batch(pairs: OccluderPairs, config: OccluderTrainConfig,
                   step: int) -> Dict[str, np.ndarray]:
  """Step `step`'s batch, drawn from (config.seed, step) alone (so a resumed run sees the
  same batches): ``images`` [b, s, s, 3] float32 0..255, ``masks`` [b, s, s] coverage,
  ``weights`` [b, s, s]; the whole batch is mirrored with probability 1/2."""
  rng = np.random.default_rng([config.seed, step])
  pick = rng.integers(0, len(pairs.images), config.batch_size)
  images = pairs.images[pick].astype(np.float32)
  masks, coverage = pairs.masks[pick], pairs.coverage[pick]
  if rng.random() < 0.5:
    images, masks, coverage = images[:, :, ::-1], masks[:, :, ::-1], coverage[:, :, ::-1]
  weights = np.where(coverage > 0.5, 1.0, config.outside_weight).astype(np.float32)
  return {"images": np.ascontiguousarray(images), "masks": np.ascontiguousarray(masks),
          "weights": weights}


def _batches(pairs: OccluderPairs, config: OccluderTrainConfig,
             first: int) -> Iterator[Dict[str, tf.Tensor]]:
  step = first
  while True:
    yield {k: tf.constant(v) for k, v in training_batch(pairs, config, step).items()}
    step += 1


def _check_settings(folder: str, settings: dict) -> None:
  """Writes the run's settings into its folder, or refuses a folder started with others
  (`steps` may grow: a finished run can be extended)."""
  path = pathlib.Path(folder) / SETTINGS_FILE
  if path.is_file():
    with open(path, encoding="utf-8") as f:
      before = json.load(f)
    changed = sorted(k for k in set(before) | set(settings)
                     if k != "steps" and before.get(k) != settings.get(k))
    if changed:
      raise FaceGCNError(
          f"'{folder}' holds an occluder run with other settings "
          f"({', '.join(f'{k}: {before.get(k)!r} -> {settings.get(k)!r}' for k in changed)}); "
          "use another output folder to start a new run")
  path.parent.mkdir(parents=True, exist_ok=True)
  with atomic.atomic_write(path, "w") as f:
    json.dump(settings, f, indent=1, sort_keys=True)


def train_occluder_net(pairs: OccluderPairs, config: OccluderTrainConfig,
                       runtime_config: rt.RuntimeConfig,
                       widths=net_lib.DEFAULT_WIDTHS,
                       data_settings: Optional[dict] = None,
                       initial: Optional[net_lib.OccluderNet] = None) -> OccluderRun:
  """Trains (or resumes training) an `OccluderNet` on `pairs` in `runtime_config`'s folder.

  Args:
    pairs: images [N, s, s, 3] at the network's working size s, masks, coverage.
    config: the `OccluderTrainConfig`.
    runtime_config: the run folder, checkpoint cadence, progress bar.
    widths: the network's channels per level.
    data_settings: how `pairs` were drawn (e.g. the `OccluderDataConfig` as a dict), kept
      with the run's settings so that a resume on other data is refused.
    initial: a trained network to start from (fine-tuning; its widths and working size
      replace `widths` and must fit `pairs`); None: random initial weights. A checkpoint
      of the run, when there is one, wins over both.

  Raises:
    FaceGCNError: the folder holds a run with other settings.
    runtime.CheckpointMismatchError, runtime.NonFiniteLossError: see `training.runtime`.
  """
  work_size = int(pairs.images.shape[1])
  if initial is not None:
    widths = initial.widths
    if initial.work_size != work_size:
      raise ValueError(f"the initial network works at {initial.work_size} px, the pairs are "
                       f"{work_size} px")
  settings = dict(dataclasses.asdict(config), widths=[int(w) for w in widths],
                  work_size=work_size, data=data_settings or {},
                  fine_tuned=initial is not None)
  _check_settings(runtime_config.output_dir, json.loads(json.dumps(settings)))
  runtime = rt.TrainingRuntime(runtime_config)
  keras.utils.set_random_seed(config.seed)   # the initial weights
  with runtime.scope():
    net = net_lib.OccluderNet(widths=widths, work_size=work_size)
    if initial is not None:
      net.set_weights(initial.get_weights())
    drop_step = int(config.drop_at * config.steps)
    # The optimizer's iteration count is the step about to run: the rate drops from
    # step `drop_step` on.
    rate = keras.optimizers.schedules.PiecewiseConstantDecay(
        [max(drop_step - 1, 0)], [config.learning_rate, config.learning_rate * config.drop])
    optimizer = keras.optimizers.Adam(learning_rate=rate)
    optimizer.build(net.trainable_variables)
  runtime.track(model=net, optimizer=optimizer)
  runtime.restore()

  def replica_step(batch):
    def loss_fn():
      logits = net(batch["images"], training=True)[..., 0]
      return occluder_loss(logits, batch["masks"], batch["weights"]), ()
    loss, _, finite = runtime.minimize(optimizer, loss_fn, net.trainable_variables)
    return {rt.LOSS_KEY: loss, rt.FINITE_KEY: finite}

  first = int(runtime.step.numpy())
  result = runtime.run(runtime.distributed_step(replica_step), _batches(pairs, config, first),
                       config.steps, description="occluders")
  return OccluderRun(net=net, result=result)


def save_occluder_net(net: net_lib.OccluderNet, path: Union[str, os.PathLike]) -> pathlib.Path:
  """Writes `net`'s weights as float16 ``.npz`` (module docstring), atomically."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  arrays = {f"w{i:03d}": w.astype(np.float16) for i, w in enumerate(net.get_weights())}
  arrays["widths"] = np.asarray(net.widths, np.int32)
  arrays["work_size"] = np.asarray(net.work_size, np.int32)
  with atomic.atomic_write(path, "wb") as f:
    np.savez_compressed(f, **arrays)
  return path


__all__ = ["OccluderRun", "OccluderTrainConfig", "SETTINGS_FILE", "occluder_loss",
           "save_occluder_net", "train_occluder_net", "training_batch"]
