"""A small U-Net that segments occluders (glasses, hands, masks, hair) on aligned face crops.

The per-photo occlusion test (`fitting.occlusion`) finds what the fitted face model cannot
explain. A skin-coloured occluder (a hand) is explained well by a flexible albedo, so that
test misses it. This network adds a learned shape cue, as FOCUS (Li et al., CVPR 2023)
learns its segmentation: it is trained on synthetic occluders drawn onto synthetic faces
(`training.occluder_data`), since no face-parsing weights can be obtained offline.

``net(images) -> [B, s, s, 1]`` logits at the working size ``s`` (``work_size``, 112 by
default) for ``images`` [B, S, S, 3] RGB in [0, 255] (any S: they are area-resized to s);
`occluder_probability` gives [B, S, S] probabilities at the input's size. The weights are
handed in (`set_weights`); `facegcn_tf.assets.loaders.load_occluder_net` loads them.
"""

from typing import Sequence

import keras
import tensorflow as tf

DEFAULT_WIDTHS = (16, 32, 64, 96)
DEFAULT_WORK_SIZE = 112


class _DoubleConv(keras.layers.Layer):
  """Two 3x3 convolutions with ReLU: [B, H, W, C] -> [B, H, W, width]."""

  def __init__(self, width: int, **kwargs):
    super().__init__(**kwargs)
    self.first = keras.layers.Conv2D(width, 3, padding="same", activation="relu")
    self.second = keras.layers.Conv2D(width, 3, padding="same", activation="relu")

  def call(self, x):
    return self.second(self.first(x))


class OccluderNet(keras.Model):
  """U-Net occluder segmentation: [B, S, S, 3] RGB 0..255 -> [B, s, s, 1] logits.

  Args:
    widths: channels per level, finest first; len(widths) - 1 poolings, so `work_size`
      must be divisible by 2 ** (len(widths) - 1).
    work_size: the side s the crops are resized to.
  """

  def __init__(self, widths: Sequence[int] = DEFAULT_WIDTHS,
               work_size: int = DEFAULT_WORK_SIZE, **kwargs):
    super().__init__(**kwargs)
    widths = tuple(int(w) for w in widths)
    if len(widths) < 2 or work_size % (2 ** (len(widths) - 1)):
      raise ValueError(f"work_size {work_size} must be divisible by 2**{len(widths) - 1} "
                       f"(widths {widths})")
    self.widths = widths
    self.work_size = int(work_size)
    self.down = [_DoubleConv(w) for w in widths]
    self.up = [_DoubleConv(w) for w in reversed(widths[:-1])]
    self.head = keras.layers.Conv2D(1, 1)
    self.build((None, self.work_size, self.work_size, 3))

  def build(self, input_shape):
    self.call(tf.zeros([1, self.work_size, self.work_size, 3]))
    self.built = True

  def call(self, images):
    x = tf.image.resize(tf.cast(images, tf.float32), [self.work_size] * 2, method="area")
    x = x / 127.5 - 1.0
    skips = []
    for level, block in enumerate(self.down):
      x = block(x)
      if level < len(self.down) - 1:
        skips.append(x)
        x = tf.nn.max_pool2d(x, 2, 2, "VALID")
    for block, skip in zip(self.up, reversed(skips)):
      x = tf.image.resize(x, tf.shape(skip)[1:3], method="bilinear")
      x = block(tf.concat([x, skip], axis=-1))
    return self.head(x)


def occluder_probability(net: OccluderNet, images) -> tf.Tensor:
  """[B, S, S] float32 occluder probabilities of `images` [B, S, S, 3] RGB 0..255."""
  images = tf.convert_to_tensor(images, tf.float32)
  logits = net(images)
  return tf.image.resize(tf.sigmoid(logits), tf.shape(images)[1:3], method="bilinear")[..., 0]


__all__ = ["DEFAULT_WIDTHS", "DEFAULT_WORK_SIZE", "OccluderNet", "occluder_probability"]
