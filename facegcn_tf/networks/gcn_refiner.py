"""GCN Refiners: per-vertex input (coarse albedo + image samples) -> `[B, V, 3]`.

paper_spec §2.8. Input `[B, V0, C]`; for the texture generator C = 7: coarse
albedo (3, in [-1, 1]), image colours at the projected vertices (3, in
[-1, 1], zero where invisible) and the visibility (1).

* `ResidualRefiner` (the paper; official `--model resnet`):
  Res(L0 -> w0); D0-pool; Res(L1 -> w1); Res(L1 -> w1); U0-unpool;
  Res(L0 -> w0); Res(L0 -> 3), with `widths = (w0, w1) = (16, 32)`.
* `UNetRefiner` (the official default `--model normal`): Cheb(L0 -> w0) with
  no bias or activation; per level a D-pool then Cheb + bias + act to
  `widths`; an FC bottleneck (flatten -> 512 -> back, ReLU); per level a
  U-unpool, a skip concat with the encoder's features (the first
  `skip_steps` steps, i.e. the coarsest levels) and Cheb + bias + act to the
  reversed widths; then Cheb -> 3 + bias + act.

`make_refiner(kind, hierarchy, **kwargs)` picks one by name.
"""

import keras
import tensorflow as tf

from facegcn_tf.graph import layers as graph_layers
from facegcn_tf.networks import gcn_blocks
from facegcn_tf.networks import gcn_decoder

REFINERS = ("residual", "unet")


class ResidualRefiner(keras.layers.Layer):
  """The paper's refiner: residual blocks with one pool and one unpool.

  Args:
    hierarchy: `MeshHierarchy` (only levels 0 and 1 are used).
    widths: `(w0, w1)`, channels on level 0 and level 1 (paper: (16, 32)).
    activation: "relu" (paper) or "elu" (official code).
    order: Chebyshev order K.
    out_channels: output channels.
  """

  def __init__(self, hierarchy, widths=(16, 32), activation="relu", order=6, out_channels=3,
               **kwargs):
    super().__init__(**kwargs)
    gcn_blocks.activation_fn(activation)
    gcn_decoder.check_hierarchy(hierarchy, 2, "ResidualRefiner")
    w0, w1 = gcn_decoder.check_widths(widths, 2, "ResidualRefiner widths")
    self.widths = (w0, w1)
    self.out_channels = int(out_channels)
    self.num_vertices = hierarchy.num_vertices[0]
    lap0, lap1 = hierarchy.laplacians[0], hierarchy.laplacians[1]

    def res(units, lap, name):
      return gcn_blocks.ChebResBlock(units, lap, order=order, activation=activation,
                                     dtype=self.dtype_policy, name=name)

    self.res_in = res(w0, lap0, "res0_in")
    self.pool = graph_layers.GraphResample(hierarchy.down[0], dtype=self.dtype_policy,
                                           name="pool0")
    self.res_mid1 = res(w1, lap1, "res1_a")
    self.res_mid2 = res(w1, lap1, "res1_b")
    self.unpool = graph_layers.GraphResample(hierarchy.up[0], dtype=self.dtype_policy,
                                             name="unpool0")
    self.res_out1 = res(w0, lap0, "res0_out")
    self.res_out2 = res(self.out_channels, lap0, "res0_rgb")

  def build(self, input_shape):
    gcn_blocks.check_channels(input_shape, "ResidualRefiner")
    b = input_shape[0]
    n0, n1 = self.num_vertices, self.pool.num_out
    w0, w1 = self.widths
    self.res_in.build(input_shape)
    self.pool.build((b, n0, w0))
    self.res_mid1.build((b, n1, w0))
    self.res_mid2.build((b, n1, w1))
    self.unpool.build((b, n1, w1))
    self.res_out1.build((b, n0, w1))
    self.res_out2.build((b, n0, w0))

  def call(self, inputs):
    """`[B, V0, C]` -> `[B, V0, out_channels]`."""
    x = self.res_in(inputs)
    x = self.res_mid2(self.res_mid1(self.pool(x)))
    return self.res_out2(self.res_out1(self.unpool(x)))

  def compute_output_shape(self, input_shape):
    return (input_shape[0], self.num_vertices, self.out_channels)


class UNetRefiner(keras.layers.Layer):
  """The official code's default refiner: graph U-Net with an FC bottleneck.

  Args:
    hierarchy: `MeshHierarchy`; every level is used.
    widths: encoder channels after each pool, one per pool step (official:
      (16, 32, 64, 128) for 4 steps; the first conv outputs `widths[0]`).
    bottleneck: FC bottleneck size (official: 512).
    skip_steps: how many of the first (coarsest) decoder steps concatenate
      the encoder's features of their level (official: 2).
    activation: "relu" (paper) or "elu" (official code) after the graph convs.
    order: Chebyshev order K.
    out_channels: output channels.
    fc_weight_decay: coefficient of `c * tf.nn.l2_loss` on the FC weights.
  """

  def __init__(self, hierarchy, widths=(16, 32, 64, 128), bottleneck=512, skip_steps=2,
               activation="relu", order=6, out_channels=3, fc_weight_decay=0.0, **kwargs):
    super().__init__(**kwargs)
    gcn_blocks.activation_fn(activation)
    gcn_decoder.check_hierarchy(hierarchy, 2, "UNetRefiner")
    steps = len(hierarchy.down)
    self.widths = gcn_decoder.check_widths(widths, steps, "UNetRefiner widths")
    gcn_decoder.check_widths((bottleneck,), 1, "UNetRefiner bottleneck")
    if isinstance(skip_steps, bool) or not isinstance(skip_steps, int) \
        or not 0 <= skip_steps < steps:
      raise ValueError(f"skip_steps must be an int in [0, {steps - 1}], got {skip_steps!r}")
    self.skip_steps = skip_steps
    self.out_channels = int(out_channels)
    self.num_vertices = hierarchy.num_vertices[0]
    self._levels = hierarchy.num_vertices
    policy = self.dtype_policy

    def cheb(units, level, act, name):
      return gcn_blocks.ChebActivation(units, hierarchy.laplacians[level], order=order,
                                       activation=act, dtype=policy, name=name)

    self.conv_in = cheb(self.widths[0], 0, None, "enc0")
    self.pools, self.enc = [], []
    for i in range(steps):
      self.pools.append(graph_layers.GraphResample(hierarchy.down[i], dtype=policy,
                                                   name=f"pool{i}"))
      self.enc.append(cheb(self.widths[i], i + 1, activation, f"enc{i + 1}"))
    reg = keras.regularizers.L2(fc_weight_decay / 2.0) if fc_weight_decay else None
    flat = self._levels[-1] * self.widths[-1]
    self.fc_down = keras.layers.Dense(bottleneck, activation="relu", kernel_regularizer=reg,
                                      bias_regularizer=reg, dtype=policy, name="fc_down")
    self.fc_up = keras.layers.Dense(flat, activation="relu", kernel_regularizer=reg,
                                    bias_regularizer=reg, dtype=policy, name="fc_up")
    self.unpools, self.dec = [], []
    for j in range(steps):
      level = steps - 1 - j  # unpool from level + 1 to level
      self.unpools.append(graph_layers.GraphResample(hierarchy.up[level], dtype=policy,
                                                     name=f"unpool{level}"))
      self.dec.append(cheb(self.widths[level], level, activation, f"dec{level}"))
    self.conv_out = cheb(self.out_channels, 0, activation, "out")

  def _encoder_widths(self):
    """Channels of the encoder features per level (level 0 = after conv_in)."""
    return (self.widths[0],) + self.widths

  def build(self, input_shape):
    gcn_blocks.check_channels(input_shape, "UNetRefiner")
    b = input_shape[0]
    enc_w = self._encoder_widths()
    self.conv_in.build(input_shape)
    for i, (pool, conv) in enumerate(zip(self.pools, self.enc)):
      pool.build((b, self._levels[i], enc_w[i]))
      conv.build((b, self._levels[i + 1], enc_w[i]))
    flat = self._levels[-1] * self.widths[-1]
    self.fc_down.build((b, flat))
    self.fc_up.build((b, self.fc_down.units))
    channels = self.widths[-1]
    for j, (unpool, conv) in enumerate(zip(self.unpools, self.dec)):
      level = len(self.dec) - 1 - j
      unpool.build((b, self._levels[level + 1], channels))
      if j < self.skip_steps:
        channels += enc_w[level]
      conv.build((b, self._levels[level], channels))
      channels = conv.units
    self.conv_out.build((b, self._levels[0], channels))

  def call(self, inputs):
    """`[B, V0, C]` -> `[B, V0, out_channels]`."""
    x = self.conv_in(inputs)
    features = [x]
    for pool, conv in zip(self.pools, self.enc):
      x = conv(pool(x))
      features.append(x)
    shape = tf.shape(x)
    x = self.fc_up(self.fc_down(tf.reshape(x, [shape[0], -1])))
    x = tf.reshape(x, [shape[0], self._levels[-1], self.widths[-1]])
    for j, (unpool, conv) in enumerate(zip(self.unpools, self.dec)):
      level = len(self.dec) - 1 - j
      x = unpool(x)
      if j < self.skip_steps:
        x = tf.concat([x, tf.cast(features[level], x.dtype)], axis=-1)
      x = conv(x)
    return self.conv_out(x)

  def compute_output_shape(self, input_shape):
    return (input_shape[0], self.num_vertices, self.out_channels)


def make_refiner(kind, hierarchy, activation="relu", order=6, widths=None, **kwargs):
  """`"residual"` -> ResidualRefiner, `"unet"` -> UNetRefiner (widths None = default).

  Other keyword arguments (e.g. `name`, `dtype`) go to the layer.
  """
  if kind == "residual":
    cls = ResidualRefiner
  elif kind == "unet":
    cls = UNetRefiner
  else:
    raise ValueError(f"refiner must be one of {REFINERS}, got {kind!r}")
  if widths is not None:
    kwargs["widths"] = widths
  return cls(hierarchy, activation=activation, order=order, **kwargs)
