"""Deep3DFace's weakly supervised reconstruction losses, as pure functions.

Used twice: by the per-image fitter (`fitting.fitter`) and by the R-Net
regressor's training loop (`training/`). Every term returns one value PER
IMAGE, shape [B]; `total_loss` weighs and adds them. Deep3DFace (Deng et al.
2019, paper_spec §2.1) averages the same quantities over the batch.

Terms and their Deep3DFace definitions (TF1 ``losses.py``):

* ``landmark``: Σ_i w_i ||p_i − q_i||² / 68 over the 68 iBUG points, in
  pixels of the 224-px aligned crop; w_i = 20 for the nose points 28–30 and the
  inner-mouth points 60–67 (0-based), 1 elsewhere. The weights are not
  normalised (Deep3DFace divides by 68, not by Σw). Coordinates given on
  another grid are rescaled to 224-px units first, so the weight w_lm keeps its
  meaning at any render size.
* ``photo``: Σ_pixels M·||I − R||₂ / 255 / max(Σ M, 1) with I, R in 0..255 and
  M the attention (skin/face) mask times the rendered-face mask: the mean
  per-pixel colour distance over the mask, in units of the full colour range.
* ``identity``: max(0, 1 − cos(f(I), f(R))) between identity features of the
  photo and of the render composited onto the photo.
* ``reg``: w_id·||α||² + w_exp·||β||² + w_tex·||δ||² (Deep3DFace:
  ``2 · l2_loss``, i.e. plain sums of squares).
* ``reflectance``: Σ_{v∈skin} ||a_v − ā||² / |skin| with the albedo a in
  [0, 1] and ā its mean over the skin vertices (Deep3DFace works in 0..255 and
  divides by 255², the same number).
* ``gamma``: the mean over the 3×9 lighting coefficients of the squared
  deviation from their mean over the colour channels (monochromatic light).

Weights (`LossWeights` defaults): Deep3DFace's w_photo 1.92, w_lm 1.6e-3,
w_id 0.2, w_reg 3e-4 (inside it w_id 1.0, w_exp 0.8, w_tex 1.7e-2),
w_ref 5.0, w_gamma 10.0.
"""

import dataclasses
from typing import Mapping, Optional

import numpy as np
import tensorflow as tf

from facegcn_tf.networks import identity as identity_lib

REFERENCE_SIZE = 224.0
NUM_LANDMARKS = 68
# 0-based iBUG indices Deep3DFace weighs 20x: nose ridge 28-30, inner mouth 60-67.
HEAVY_LANDMARKS = tuple(range(28, 31)) + tuple(range(60, 68))
HEAVY_WEIGHT = 20.0
TERMS = ("photo", "landmark", "identity", "reg", "reflectance", "gamma")


def landmark_weights() -> np.ndarray:
  """[68] float32: 20 on the nose (28-30) and inner mouth (60-67), 1 elsewhere."""
  weights = np.ones([NUM_LANDMARKS], np.float32)
  weights[list(HEAVY_LANDMARKS)] = HEAVY_WEIGHT
  return weights


def _check_last_dims(x: tf.Tensor, dims, name: str) -> None:
  shape = x.shape
  if shape.rank is not None and (shape.rank != len(dims) + 1 or any(
      d is not None and s is not None and s != d for s, d in zip(shape[1:], dims))):
    expected = ", ".join("?" if d is None else str(d) for d in dims)
    raise ValueError(f"{name} must have shape [B, {expected}], got {shape}")


def landmark_loss(predicted: tf.Tensor, target: tf.Tensor,
                  weights: Optional[tf.Tensor] = None,
                  image_size: float = REFERENCE_SIZE) -> tf.Tensor:
  """Weighted squared landmark reprojection error.

  Args:
    predicted: [B, 68, 2] projected model landmarks (pixels of an
      `image_size` grid).
    target: [B, 68, 2] detected landmarks, same grid.
    weights: [68] or [B, 68] per-landmark weights (default `landmark_weights()`).
    image_size: side of the pixel grid of the coordinates; they are rescaled to
      the 224-px grid Deep3DFace's weight was set for.

  Returns:
    [B] Σ_i w_i ||p_i − q_i||² / 68, in squared 224-px pixels.
  """
  predicted = tf.convert_to_tensor(predicted, tf.float32)
  target = tf.convert_to_tensor(target, tf.float32)
  _check_last_dims(predicted, (NUM_LANDMARKS, 2), "predicted landmarks")
  _check_last_dims(target, (NUM_LANDMARKS, 2), "target landmarks")
  if not image_size > 0:
    raise ValueError(f"image_size must be positive, got {image_size}")
  if weights is None:
    weights = landmark_weights()
  weights = tf.convert_to_tensor(weights, tf.float32)
  scale = REFERENCE_SIZE / float(image_size)
  squared = tf.reduce_sum(tf.square((predicted - target) * scale), axis=-1)  # [B, 68]
  return tf.reduce_sum(squared * weights, axis=-1) / NUM_LANDMARKS


def photometric_loss(images: tf.Tensor, rendered: tf.Tensor, mask: tf.Tensor,
                     epsilon: float = 1e-8) -> tf.Tensor:
  """Masked mean per-pixel colour distance (Deep3DFace's photo loss).

  Args:
    images: [B, H, W, 3] photos, RGB 0..255.
    rendered: [B, H, W, 3] renders, RGB 0..255 (not clipped, so that
      gradients survive over-exposure).
    mask: [B, H, W] weights in [0, 1]: the skin/face mask times the rendered
      face's coverage. Treated as a constant (no gradient), as in Deep3DFace.
    epsilon: inside the square root, keeps the gradient finite where the
      colours agree exactly.

  Returns:
    [B] Σ M·||I − R||₂ / 255 / max(Σ M, 1); 0 for an image with an empty mask.
  """
  images = tf.convert_to_tensor(images, tf.float32)
  rendered = tf.convert_to_tensor(rendered, tf.float32)
  mask = tf.stop_gradient(tf.convert_to_tensor(mask, tf.float32))
  _check_last_dims(images, (None, None, 3), "images")
  _check_last_dims(rendered, (None, None, 3), "rendered")
  _check_last_dims(mask, (None, None), "mask")
  if images.shape[1:3] != rendered.shape[1:3] or images.shape[1:3] != mask.shape[1:3]:
    raise ValueError(f"images {images.shape}, rendered {rendered.shape} and mask "
                     f"{mask.shape} must share [H, W]")
  distance = tf.sqrt(tf.reduce_sum(tf.square(images - rendered), axis=-1) + epsilon) / 255.0
  return (tf.reduce_sum(distance * mask, axis=[1, 2])
          / tf.maximum(tf.reduce_sum(mask, axis=[1, 2]), 1.0))


def identity_loss(photo_features: tf.Tensor, render_features: tf.Tensor) -> tf.Tensor:
  """[B, D] x [B, D] -> [B] max(0, 1 − cos) between identity features."""
  a = tf.convert_to_tensor(photo_features, tf.float32)
  b = tf.convert_to_tensor(render_features, tf.float32)
  if a.shape.rank != 2 or b.shape.rank != 2:
    raise ValueError(f"identity features must be [B, D], got {a.shape} and {b.shape}")
  return tf.maximum(0.0, identity_lib.cosine_distance(a, b))


def regularization_loss(id_coeffs: tf.Tensor, exp_coeffs: tf.Tensor, tex_coeffs: tf.Tensor,
                        w_id: float = 1.0, w_exp: float = 0.8,
                        w_tex: float = 1.7e-2) -> tf.Tensor:
  """[B, K_*] coefficients -> [B] w_id·||α||² + w_exp·||β||² + w_tex·||δ||²."""
  def sq(x):
    x = tf.convert_to_tensor(x, tf.float32)
    if x.shape.rank != 2:
      raise ValueError(f"coefficients must be [B, K], got shape {x.shape}")
    return tf.reduce_sum(tf.square(x), axis=-1)
  return w_id * sq(id_coeffs) + w_exp * sq(exp_coeffs) + w_tex * sq(tex_coeffs)


def reflectance_loss(albedo: tf.Tensor, skin_mask) -> tf.Tensor:
  """Albedo variance over the skin vertices.

  Args:
    albedo: [B, V, 3] per-vertex albedo in [0, 1].
    skin_mask: [V] bool or {0, 1} weights of the skin vertices.

  Returns:
    [B] Σ_{v∈skin} ||a_v − ā||² / |skin|.
  """
  albedo = tf.convert_to_tensor(albedo, tf.float32)
  _check_last_dims(albedo, (None, 3), "albedo")
  skin = tf.cast(tf.convert_to_tensor(skin_mask), tf.float32)
  if skin.shape.rank != 1:
    raise ValueError(f"skin_mask must be [V], got shape {skin.shape}")
  if albedo.shape[1] is not None and skin.shape[0] is not None and albedo.shape[1] != skin.shape[0]:
    raise ValueError(f"skin_mask has {skin.shape[0]} entries for {albedo.shape[1]} vertices")
  count = tf.maximum(tf.reduce_sum(skin), 1.0)
  weights = skin[tf.newaxis, :, tf.newaxis]
  mean = tf.reduce_sum(albedo * weights, axis=1, keepdims=True) / count
  return tf.reduce_sum(tf.square(albedo - mean) * weights, axis=[1, 2]) / count


def gamma_loss(gamma: tf.Tensor) -> tf.Tensor:
  """[B, 27] SH lighting (3 channels x 9) -> [B] mean squared deviation from the grey light."""
  gamma = tf.convert_to_tensor(gamma, tf.float32)
  _check_last_dims(gamma, (27,), "gamma")
  per_channel = tf.reshape(gamma, [-1, 3, 9])
  grey = tf.reduce_mean(per_channel, axis=1, keepdims=True)
  return tf.reduce_mean(tf.square(per_channel - grey), axis=[1, 2])


@dataclasses.dataclass(frozen=True)
class LossWeights:
  """Weights of the loss terms (defaults: Deep3DFace's).

  `photo`, `landmark`, `identity`, `reg`, `reflectance`, `gamma` weigh the terms
  of the same names; `reg_id`, `reg_exp`, `reg_tex` are the weights inside the
  coefficient regulariser (`regularization_loss`).
  """
  photo: float = 1.92
  landmark: float = 1.6e-3
  identity: float = 0.2
  reg: float = 3e-4
  reflectance: float = 5.0
  gamma: float = 10.0
  reg_id: float = 1.0
  reg_exp: float = 0.8
  reg_tex: float = 1.7e-2

  def __post_init__(self):
    for field in dataclasses.fields(self):
      value = getattr(self, field.name)
      if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
          np.isfinite(value) and value >= 0):
        raise ValueError(f"LossWeights.{field.name} must be a finite number >= 0, got {value!r}")

  def replace(self, **changes) -> "LossWeights":
    return dataclasses.replace(self, **changes)


def total_loss(terms: Mapping[str, tf.Tensor], weights: LossWeights) -> tf.Tensor:
  """Weighted sum of loss terms.

  Args:
    terms: name -> [B] per-image values; names from `TERMS` (any subset).
    weights: the `LossWeights`.

  Returns:
    [B] Σ weight(name) · terms[name].

  Raises:
    ValueError: no terms, or an unknown term name.
  """
  if not terms:
    raise ValueError("total_loss needs at least one term")
  unknown = sorted(set(terms) - set(TERMS))
  if unknown:
    raise ValueError(f"unknown loss terms {unknown}; known: {', '.join(TERMS)}")
  return tf.add_n([getattr(weights, name) * tf.convert_to_tensor(value, tf.float32)
                   for name, value in terms.items()])
