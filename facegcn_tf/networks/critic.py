"""Image critic (WGAN-GP discriminator) of paper_spec §2.10.

Six hidden convolutions, each conv + bias -> normalisation -> LeakyReLU(0.2):
1x1 -> 16, then 3x3 -> 32, 64, 128, 256, 512, with a 2x2 max-pool after
each of the first five (224 -> 7), then one VALID conv whose kernel covers
the remaining spatial size (7x7 at 224) -> 1 score per image.

Normalisation: "batch" (the official code: BatchNorm, decay 0.9, eps 1e-3,
no scale as in `tf.contrib.layers.batch_norm`'s defaults), "layer"
(per-sample over H, W, C with a per-channel gain and offset, done with
`keras.layers.GroupNormalization(groups=1)`; the choice the WGAN-GP paper
recommends, since a batch-normalised critic breaks the per-sample gradient
penalty), or "none".
"""

import keras
import tensorflow as tf

NORMS = ("batch", "layer", "none")
NUM_POOLS = 5


class ImageCritic(keras.Model):
  """Images `[B, H, W, 3]` in [-1, 1] -> scores `[B]` (float32).

  H and W must be known and at least 32 (the final conv covers
  `floor(H / 32) x floor(W / 32)`).

  Args:
    norm: "batch", "layer" or "none".
    widths: channels of the six hidden convs.
    negative_slope: LeakyReLU slope.
  """

  def __init__(self, norm="batch", widths=(16, 32, 64, 128, 256, 512), negative_slope=0.2,
               **kwargs):
    super().__init__(**kwargs)
    if norm not in NORMS:
      raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    widths = tuple(widths)
    if len(widths) != NUM_POOLS + 1 or not all(
        isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in widths):
      raise ValueError(f"widths must be {NUM_POOLS + 1} positive ints, got {widths!r}")
    self.norm = norm
    self.widths = widths
    policy = self.dtype_policy
    self.convs, self.norms = [], []
    for i, units in enumerate(widths):
      self.convs.append(keras.layers.Conv2D(units, 1 if i == 0 else 3, padding="same",
                                            dtype=policy, name=f"conv{i + 1}"))
      if norm == "batch":
        self.norms.append(keras.layers.BatchNormalization(
            momentum=0.9, epsilon=1e-3, scale=False, dtype=policy, name=f"bn{i + 1}"))
      elif norm == "layer":
        self.norms.append(keras.layers.GroupNormalization(groups=1, epsilon=1e-3, dtype=policy,
                                                          name=f"ln{i + 1}"))
      else:
        self.norms.append(None)
    self.act = keras.layers.LeakyReLU(negative_slope, dtype=policy)
    self.pool = keras.layers.MaxPooling2D(2, dtype=policy)
    self.score = None

  @staticmethod
  def _check_shape(shape):
    shape = tuple(shape)
    if len(shape) != 4 or shape[3] != 3:
      raise ValueError(f"ImageCritic expects images [B, H, W, 3], got shape {shape}")
    if shape[1] is None or shape[2] is None or shape[1] < 2**NUM_POOLS \
        or shape[2] < 2**NUM_POOLS:
      raise ValueError(f"ImageCritic needs known H, W >= {2**NUM_POOLS}, got shape {shape}")
    return shape

  def build(self, input_shape):
    b, h, w, c = self._check_shape(input_shape)
    shape = (b, h, w, c)
    for i, conv in enumerate(self.convs):
      conv.build(shape)
      shape = (b, shape[1], shape[2], conv.filters)
      if self.norms[i] is not None:
        self.norms[i].build(shape)
      if i < NUM_POOLS:
        shape = (b, shape[1] // 2, shape[2] // 2, shape[3])
    self.score = keras.layers.Conv2D(1, (shape[1], shape[2]), padding="valid",
                                     dtype=self.dtype_policy, name="score")
    self.score.build(shape)
    self._built_hw = (h, w)

  def call(self, images, training=None):
    """`[B, H, W, 3]` -> `[B]` float32 (H, W as at build time)."""
    x = tf.convert_to_tensor(images)
    shape = self._check_shape(x.shape)
    if tuple(shape[1:3]) != self._built_hw:
      raise ValueError(f"ImageCritic was built for {self._built_hw} images, got {shape[1:3]}")
    for i, conv in enumerate(self.convs):
      x = conv(x)
      if self.norms[i] is not None:
        x = self.norms[i](x, training=training)
      x = self.act(x)
      if i < NUM_POOLS:
        x = self.pool(x)
    return tf.reshape(tf.cast(self.score(x), tf.float32), [-1])

  def compute_output_shape(self, input_shape):
    return (input_shape[0],)
