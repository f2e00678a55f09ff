"""Loss-weight (σ) and learning-rate schedules of the GCN texture training.

paper_spec §3.1 / §3.2:

* paper: σ1 (rendering terms) ramps 0 -> 1 and σ4 (vertex terms) 1 -> 0,
  linearly over `ramp_epochs` (the paper gives no length; 5 epochs, the
  official code's ramp, is the default).
* official: `ren_l = clip(0.2 e, 0, 1)`, `ref_l = clip(1 - ren_l, 0.2, 1)`,
  i.e. σ4 never drops below 0.2. The official code evaluates it at the
  integer epoch; pass `floor(epoch)` for that exact staircase.
* learning rate: Adam 1e-4 x 0.98 per epoch, staircase, as
  `keras.optimizers.schedules.ExponentialDecay(decay_steps=steps_per_epoch,
  staircase=True)`.

The σ functions take a Python number (-> Python floats) or a tf scalar tensor
(-> float32 tensors, usable inside `tf.function`).
"""

import math

import keras
import tensorflow as tf

SIGMA_VARIANTS = ("paper", "official")
OFFICIAL_RAMP_EPOCHS = 5.0    # ren_l = 0.2 * epoch
OFFICIAL_MIN_SIGMA4 = 0.2


def _clip(x, lo, hi):
  if isinstance(x, (tf.Tensor, tf.Variable)):
    return tf.clip_by_value(x, lo, hi)
  return min(max(x, lo), hi)


def _check_epoch(epoch):
  """Python number -> float (finite, >= 0 checked); tensors -> float32 tensors."""
  if isinstance(epoch, (tf.Tensor, tf.Variable)):
    return tf.cast(epoch, tf.float32)
  if isinstance(epoch, bool) or not isinstance(epoch, (int, float)) and not hasattr(
      epoch, "__float__"):
    raise ValueError(f"epoch must be a number or a tf scalar, got {epoch!r}")
  epoch = float(epoch)
  if not math.isfinite(epoch) or epoch < 0:
    raise ValueError(f"epoch must be a finite number >= 0, got {epoch!r}")
  return epoch


def sigma_schedule(epoch, variant="paper", ramp_epochs=OFFICIAL_RAMP_EPOCHS):
  """(σ1, σ4) at a (possibly fractional) epoch.

  Args:
    epoch: epochs trained so far (float or tf scalar), >= 0.
    variant: "paper" (σ1 = clip(e / ramp, 0, 1), σ4 = 1 - σ1) or "official"
      (σ1 = clip(0.2 e, 0, 1), σ4 = clip(1 - σ1, 0.2, 1); `ramp_epochs` unused).
    ramp_epochs: length of the paper's linear ramp (> 0).

  Returns:
    `(sigma1, sigma4)`, Python floats or float32 scalar tensors.
  """
  if variant not in SIGMA_VARIANTS:
    raise ValueError(f"variant must be one of {SIGMA_VARIANTS}, got {variant!r}")
  epoch = _check_epoch(epoch)
  if variant == "official":
    sigma1 = _clip(epoch / OFFICIAL_RAMP_EPOCHS, 0.0, 1.0)
    return sigma1, _clip(1.0 - sigma1, OFFICIAL_MIN_SIGMA4, 1.0)
  if isinstance(ramp_epochs, bool) or not isinstance(ramp_epochs, (int, float)) \
      or not ramp_epochs > 0 or not math.isfinite(ramp_epochs):
    raise ValueError(f"ramp_epochs must be a finite number > 0, got {ramp_epochs!r}")
  sigma1 = _clip(epoch / float(ramp_epochs), 0.0, 1.0)
  return sigma1, 1.0 - sigma1


def learning_rate_schedule(steps_per_epoch, initial_learning_rate=1e-4, decay_rate=0.98):
  """`initial * decay_rate ** floor(step / steps_per_epoch)` (the official code's lr).

  Args:
    steps_per_epoch: optimiser steps per epoch (official: num_train // batch).
    initial_learning_rate: > 0 (paper / official: 1e-4).
    decay_rate: factor per epoch, in (0, 1] (official: 0.98).

  Returns:
    `keras.optimizers.schedules.ExponentialDecay` with `staircase=True`.
  """
  if isinstance(steps_per_epoch, bool) or not isinstance(steps_per_epoch, int) \
      or steps_per_epoch < 1:
    raise ValueError(f"steps_per_epoch must be a positive int, got {steps_per_epoch!r}")
  if not (isinstance(initial_learning_rate, (int, float)) and initial_learning_rate > 0):
    raise ValueError(f"initial_learning_rate must be > 0, got {initial_learning_rate!r}")
  if not (isinstance(decay_rate, (int, float)) and 0 < decay_rate <= 1):
    raise ValueError(f"decay_rate must be in (0, 1], got {decay_rate!r}")
  return keras.optimizers.schedules.ExponentialDecay(
      initial_learning_rate=float(initial_learning_rate), decay_steps=steps_per_epoch,
      decay_rate=float(decay_rate), staircase=True)
