"""Trains the occluder network (`networks.occluder_net`) on synthetic pairs.

Loss: per-pixel sigmoid cross-entropy against the drawn occluder's coverage, weighted 1
inside the rendered face and `outside_weight` outside it (the fitter only asks about the
face). Adam, a learning-rate drop at `drop_at` of the run, random mirroring. The weights
are written as one ``.npz`` (float16 arrays ``w000``, ``w001``... in the network's
`get_weights` order, plus ``widths`` and ``work_size``), which
`facegcn_tf.assets.loaders.load_occluder_net` reads.
"""

import dataclasses
import os
import pathlib
from typing import Callable, List, Optional, Union

import numpy as np
import tensorflow as tf

from facegcn_tf import atomic
from facegcn_tf.networks import occluder_net as net_lib
from facegcn_tf.training.occluder_data import OccluderPairs


@dataclasses.dataclass(frozen=True)
class OccluderTrainConfig:
  """steps, batch_size, learning_rate; the rate is multiplied by `drop` after `drop_at` of
  the steps; `outside_weight`: the loss weight of pixels off the face; seed: batches and
  initial weights."""
  steps: int = 3000
  batch_size: int = 32
  learning_rate: float = 1e-3
  drop_at: float = 0.7
  drop: float = 0.3
  outside_weight: float = 0.2
  seed: int = 0


def train_occluder_net(pairs: OccluderPairs,
                       config: OccluderTrainConfig = OccluderTrainConfig(),
                       net: Optional[net_lib.OccluderNet] = None,
                       log: Optional[Callable[[int, float], None]] = None) -> List[float]:
  """Trains `net` (a new `OccluderNet` when None) on `pairs`; returns the loss per step.

  Args:
    pairs: images [N, s, s, 3] at the network's working size s, masks, coverage.
    config: the `OccluderTrainConfig`.
    net: the network to train in place.
    log: called as ``log(step, smoothed_loss)`` every 100 steps.
  """
  tf.keras.utils.set_random_seed(config.seed)
  net = net if net is not None else net_lib.OccluderNet(work_size=pairs.images.shape[1])
  optimizer = tf.keras.optimizers.Adam(config.learning_rate)

  @tf.function(reduce_retracing=True)
  def step(images, masks, weights):
    with tf.GradientTape() as tape:
      logits = net(images, training=True)[..., 0]
      loss = tf.nn.sigmoid_cross_entropy_with_logits(labels=masks, logits=logits)
      loss = tf.reduce_sum(loss * weights) / tf.reduce_sum(weights)
    grads = tape.gradient(loss, net.trainable_variables)
    optimizer.apply_gradients(zip(grads, net.trainable_variables))
    return loss

  rng = np.random.default_rng(config.seed)
  count = len(pairs.images)
  losses, smooth = [], 0.0
  for i in range(config.steps):
    if i == int(config.drop_at * config.steps):
      optimizer.learning_rate.assign(config.learning_rate * config.drop)
    pick = rng.integers(0, count, config.batch_size)
    images = pairs.images[pick].astype(np.float32)
    masks, coverage = pairs.masks[pick], pairs.coverage[pick]
    if rng.random() < 0.5:
      images, masks, coverage = images[:, :, ::-1], masks[:, :, ::-1], coverage[:, :, ::-1]
    weights = np.where(coverage > 0.5, 1.0, config.outside_weight).astype(np.float32)
    loss = float(step(tf.constant(images), tf.constant(np.ascontiguousarray(masks)),
                      tf.constant(weights)))
    losses.append(loss)
    smooth = 0.98 * smooth + 0.02 * loss
    if log is not None and i % 100 == 0:
      log(i, smooth / (1.0 - 0.98 ** (i + 1)))
  return losses


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


__all__ = ["OccluderTrainConfig", "save_occluder_net", "train_occluder_net"]
