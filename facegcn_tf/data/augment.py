"""Training-time augmentation of parsed aligned examples (TF ops, stateless).

Geometry: an optional horizontal flip, a small scale about the crop centre
and a small shift, composed into one affine ``G`` (aligned -> augmented)
and applied with a single bilinear resampling to the image and the masks
(masks re-thresholded at 0.5). Landmarks go through ``G`` too; on a flip the
iBUG-68 and 5-point orders are mirrored so "left eye" stays image-left, and
``affine`` (original -> aligned) becomes ``G @ affine`` so results can still
be pasted back onto the photo. Colour: brightness, contrast, saturation and
hue jitter (masks unchanged); padding outside the photo stays black.
Ranges are close to Deep3DFace-PyTorch's (shift 10 px, scale 0.1), kept
smaller by default because the alignment is already tight.
"""

import dataclasses
from typing import Dict

import tensorflow as tf

from facegcn_tf.data.landmark_indices import IBUG68_FLIP, POINTS5_FLIP
from facegcn_tf.data.tfrecords import MASK_CHANNELS


@dataclasses.dataclass(frozen=True)
class AugmentOptions:
  """Augmentation ranges (0 disables a term).

  Attributes:
    flip_prob: probability of a horizontal flip.
    max_shift: shift in pixels, uniform in [-max_shift, max_shift] per axis.
    max_scale: scale uniform in [1 - max_scale, 1 + max_scale].
    brightness: additive brightness delta, fraction of full range.
    contrast: contrast factor in [1 - contrast, 1 + contrast].
    saturation: saturation factor in [1 - saturation, 1 + saturation].
    hue: hue delta (fraction of the colour wheel), at most 0.5.
  """
  flip_prob: float = 0.5
  max_shift: float = 8.0
  max_scale: float = 0.05
  brightness: float = 0.08
  contrast: float = 0.1
  saturation: float = 0.1
  hue: float = 0.02


def geometry_matrix(flip: tf.Tensor, scale: tf.Tensor, shift: tf.Tensor, size: int) -> tf.Tensor:
  """[3, 3] aligned -> augmented affine: flip, then scale about the centre, then shift.

  Args:
    flip: scalar bool.
    scale: scalar float.
    shift: [2] float (x, y) pixels.
    size: crop side.
  """
  c = (size - 1) / 2.0
  f = tf.where(flip, -1.0, 1.0)
  sx = scale * f
  return tf.stack([
      tf.stack([sx, 0.0, c - sx * c + shift[0]]),
      tf.stack([0.0, scale, c - scale * c + shift[1]]),
      tf.constant([0.0, 0.0, 1.0]),
  ])


def _warp(images: tf.Tensor, matrix: tf.Tensor) -> tf.Tensor:
  """Resamples [H, W, C] so that output(G p) = input(p) (bilinear, zero fill)."""
  inverse = tf.linalg.inv(matrix)
  transform = tf.stack([inverse[0, 0], inverse[0, 1], inverse[0, 2],
                        inverse[1, 0], inverse[1, 1], inverse[1, 2], 0.0, 0.0])
  shape = tf.shape(images)[:2]
  out = tf.raw_ops.ImageProjectiveTransformV3(
      images=images[None], transforms=transform[None], output_shape=shape,
      fill_value=0.0, interpolation="BILINEAR", fill_mode="CONSTANT")
  return out[0]


def _apply_points(points: tf.Tensor, matrix: tf.Tensor) -> tf.Tensor:
  return tf.matmul(points, matrix[:2, :2], transpose_b=True) + matrix[:2, 2]


def augment_example(example: Dict[str, tf.Tensor], seed: tf.Tensor,
                    options: AugmentOptions = AugmentOptions()) -> Dict[str, tf.Tensor]:
  """Augments one parsed example (see ``tfrecords.parse_example``).

  Args:
    example: dict with ``image`` [S, S, 3] 0..255, the mask channels
      [S, S, 1], ``landmarks68`` [68, 2], ``points5`` [5, 2], ``affine`` [2, 3].
    seed: [2] int stateless seed; the same seed gives the same result.
    options: ranges.

  Returns:
    A new dict with the same keys and shapes.
  """
  seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=8)
  size = example["image"].shape[0]
  flip = tf.random.stateless_uniform([], seeds[0]) < options.flip_prob
  scale = 1.0 + tf.random.stateless_uniform([], seeds[1], -options.max_scale, options.max_scale)
  shift = tf.random.stateless_uniform([2], seeds[2], -options.max_shift, options.max_shift)
  matrix = geometry_matrix(flip, scale, shift, size)

  out = dict(example)
  stacked = tf.concat([example["image"]] + [example[name] for name in MASK_CHANNELS], axis=-1)
  warped = _warp(stacked, matrix)
  masks = tf.cast(warped[..., 3:] > 0.5, tf.float32)
  for i, name in enumerate(MASK_CHANNELS):
    out[name] = masks[..., i:i + 1]

  image = warped[..., :3] / 255.0
  if options.brightness > 0:
    image = tf.image.stateless_random_brightness(image, options.brightness, seeds[3])
  if options.contrast > 0:
    image = tf.image.stateless_random_contrast(image, 1 - options.contrast,
                                               1 + options.contrast, seeds[4])
  if options.saturation > 0:
    image = tf.image.stateless_random_saturation(image, 1 - options.saturation,
                                                 1 + options.saturation, seeds[5])
  if options.hue > 0:
    image = tf.image.stateless_random_hue(image, options.hue, seeds[6])
  valid = out["valid_mask"]
  out["image"] = tf.clip_by_value(image, 0.0, 1.0) * 255.0 * valid

  lm68 = _apply_points(example["landmarks68"], matrix)
  pts5 = _apply_points(example["points5"], matrix)
  out["landmarks68"] = tf.where(flip, tf.gather(lm68, IBUG68_FLIP), lm68)
  out["points5"] = tf.where(flip, tf.gather(pts5, POINTS5_FLIP), pts5)
  affine = tf.concat([example["affine"], tf.constant([[0.0, 0.0, 1.0]])], axis=0)
  out["affine"] = tf.matmul(matrix, affine)[:2]
  return out
