"""The quality figures, one home each: masked PSNR, masked SSIM, landmark NME, identity distance.

Used by the pipeline (each face's JSON), the trainers (TensorBoard), the evaluation
scripts and the benchmarks, so a figure means the same thing everywhere.

* :func:`masked_psnr` is a TensorFlow function (it runs inside the trainers'
  ``tf.function`` steps) that also takes numpy arrays; any leading batch shape.
* :func:`masked_ssim` uses scikit-image's Gaussian-window SSIM (numpy, one image).
* :func:`landmark_nme` is numpy, normalised by the target's outer-eye-corner distance.
* :func:`identity_distance` is dlib's L2 convention on identity features (< 0.6: the same
  person), differentiable.
"""

from typing import Optional, Tuple

import numpy as np
import tensorflow as tf

# iBUG-68 outer eye corners (left eye's 37th point, right eye's 46th, 0-based).
OUTER_EYE_CORNERS = (36, 45)


def masked_psnr(image, rendered, mask, peak: float = 255.0,
                value_range: Optional[Tuple[float, float]] = None) -> tf.Tensor:
  """PSNR (dB) of a render against a photo inside a mask.

  Args:
    image: [..., H, W, C] the photo.
    rendered: [..., H, W, C] the render, clipped to `value_range` first.
    mask: [..., H, W] weights (usually {0, 1}).
    peak: the peak-to-peak value of the colour range (255 for 0..255, 1 for [0, 1],
      2 for [-1, 1]).
    value_range: (low, high) the render is clipped to; default (0, peak).

  Returns:
    [...] float32; NaN where the mask is empty.
  """
  low, high = value_range if value_range is not None else (0.0, peak)
  image = tf.cast(tf.convert_to_tensor(image), tf.float32)
  rendered = tf.clip_by_value(tf.cast(tf.convert_to_tensor(rendered), tf.float32), low, high)
  mask = tf.cast(tf.convert_to_tensor(mask), tf.float32)
  channels = tf.cast(tf.shape(image)[-1], tf.float32)
  squared = tf.reduce_sum(tf.square(image - rendered), axis=-1) * mask
  count = channels * tf.reduce_sum(mask, axis=[-2, -1])
  mse = tf.reduce_sum(squared, axis=[-2, -1]) / tf.maximum(count, 1e-12)
  psnr = 10.0 * tf.math.log(peak * peak / tf.maximum(mse, 1e-12)) / tf.math.log(10.0)
  return tf.where(count > 0, psnr, tf.fill(tf.shape(psnr), float("nan")))


def masked_ssim(image: np.ndarray, rendered: np.ndarray, mask: np.ndarray) -> float:
  """Mean SSIM (Gaussian window, scikit-image) of a render vs a photo over a mask.

  Args:
    image: [H, W, 3] the photo in [0, 1].
    rendered: [H, W, 3] the render (clipped to [0, 1]).
    mask: [H, W] where to average the SSIM map.

  Returns:
    The mean over the mask's pixels (channels averaged); NaN for an empty mask.
  """
  from skimage.metrics import structural_similarity  # pylint: disable=import-outside-toplevel
  inside = np.asarray(mask) > 0.5
  if not inside.any():
    return float("nan")
  _, ssim_map = structural_similarity(np.asarray(image, np.float64),
                                      np.clip(np.asarray(rendered, np.float64), 0, 1),
                                      channel_axis=-1, data_range=1.0, gaussian_weights=True,
                                      full=True)
  return float(ssim_map.mean(axis=-1)[inside].mean())


def landmark_nme(predicted: np.ndarray, target: np.ndarray) -> np.ndarray:
  """[..., 68, 2] x [..., 68, 2] -> [...] mean point distance / outer-eye-corner distance of `target`."""
  predicted = np.asarray(predicted, np.float64)
  target = np.asarray(target, np.float64)
  if predicted.shape != target.shape or predicted.shape[-2:] != (68, 2):
    raise ValueError(f"need [..., 68, 2] landmarks, got {predicted.shape} and {target.shape}")
  left, right = OUTER_EYE_CORNERS
  ocular = np.linalg.norm(target[..., left, :] - target[..., right, :], axis=-1)
  return np.mean(np.linalg.norm(predicted - target, axis=-1), axis=-1) / np.maximum(ocular, 1e-9)


def identity_distance(a, b) -> tf.Tensor:
  """L2 distance [..., D] x [..., D] -> [...] (dlib's convention; < 0.6 = same person).

  A 1e-12 inside the square root keeps the gradient finite at a == b.
  """
  a = tf.cast(tf.convert_to_tensor(a), tf.float32)
  b = tf.cast(tf.convert_to_tensor(b), tf.float32)
  return tf.sqrt(tf.reduce_sum(tf.square(a - b), axis=-1) + 1e-12)


__all__ = ["OUTER_EYE_CORNERS", "identity_distance", "landmark_nme", "masked_psnr",
           "masked_ssim"]
