"""Building blocks shared by the GCN decoder and refiners.

* `activation_fn(name)`: the nonlinearity after every graph convolution
  ("relu" = the paper, "elu" = the official code, paper_spec §2.6).
* `ChebResBlock`: the spectral residual block of paper_spec §2.7
  (two Chebyshev convolutions plus a shortcut).
* `ChebActivation`: one Chebyshev convolution + per-channel bias + activation
  (the plain layers of the official code's 'normal' model, §2.7/§2.8).

The GCN layers hold their mesh's sparse matrices, rebuilt from the cached
hierarchy, so models built from them are saved and restored as weights
(`save_weights` / `tf.train.Checkpoint`), not as full `.keras` configs.
"""

import keras
import tensorflow as tf

from facegcn_tf.graph import layers as graph_layers

ACTIVATIONS = ("relu", "elu")


def activation_fn(name):
  """'relu' | 'elu' -> the elementwise function (one-line ValueError otherwise)."""
  if name == "relu":
    return tf.nn.relu
  if name == "elu":
    return tf.nn.elu
  raise ValueError(f"activation must be one of {ACTIVATIONS}, got {name!r}")


def check_channels(shape, what):
  """Returns the known channel count of a `[B, V, C]` shape or raises ValueError."""
  shape = tuple(shape)
  if len(shape) != 3 or shape[2] is None:
    raise ValueError(f"{what} expects input [B, V, C] with known C, got shape {shape}")
  return int(shape[2])


class ChebResBlock(keras.layers.Layer):
  """Spectral residual block on one mesh level.

  ```
  s   = x                       if Fin == units
        ChebConv_{K=1}(x)       otherwise (a per-vertex linear map, no bias)
  h   = act(b1 + Cheb_K(x))
  out = act(b2 + Cheb_K(h) + s)
  ```
  The biases are the ChebConvs' own (`use_bias=True`), which is the same
  function as a separate bias add.

  Input `[B, V, Fin]` -> output `[B, V, units]` (compute dtype of the policy).

  Args:
    units: output channels.
    laplacian: normalised Laplacian `[V, V]` of the level (scipy sparse).
    order: Chebyshev order K (paper: 6).
    activation: "relu" (paper) or "elu" (official code).
  """

  def __init__(self, units, laplacian, order=6, activation="relu", **kwargs):
    super().__init__(**kwargs)
    self._act = activation_fn(activation)
    self.units = int(units)
    self.order = int(order)
    self.activation = activation
    self.conv1 = graph_layers.ChebConv(units, laplacian, order=order, use_bias=True,
                                       dtype=self.dtype_policy, name="cheb1")
    self.conv2 = graph_layers.ChebConv(units, laplacian, order=order, use_bias=True,
                                       dtype=self.dtype_policy, name="cheb2")
    self._laplacian = laplacian
    self.shortcut = None
    self.num_vertices = self.conv1.num_vertices

  def build(self, input_shape):
    fin = check_channels(input_shape, "ChebResBlock")
    self.conv1.build(input_shape)
    self.conv2.build((input_shape[0], self.num_vertices, self.units))
    if fin != self.units:
      self.shortcut = graph_layers.ChebConv(self.units, self._laplacian, order=1,
                                            use_bias=False, dtype=self.dtype_policy,
                                            name="shortcut")
      self.shortcut.build(input_shape)

  def call(self, inputs):
    h = self._act(self.conv1(inputs))
    skip = inputs if self.shortcut is None else self.shortcut(inputs)
    return self._act(self.conv2(h) + tf.cast(skip, self.compute_dtype))

  def compute_output_shape(self, input_shape):
    return (input_shape[0], self.num_vertices, self.units)


class ChebActivation(keras.layers.Layer):
  """`act(b + Cheb_K(x))` (or without the activation): `[B, V, Fin] -> [B, V, units]`.

  Args:
    units: output channels.
    laplacian: normalised Laplacian `[V, V]` of the level.
    order: Chebyshev order K.
    activation: "relu", "elu" or None (no bias, no activation: the official
      U-Net refiner's first layer).
  """

  def __init__(self, units, laplacian, order=6, activation="relu", **kwargs):
    super().__init__(**kwargs)
    self._act = None if activation is None else activation_fn(activation)
    self.units = int(units)
    self.conv = graph_layers.ChebConv(units, laplacian, order=order,
                                      use_bias=activation is not None,
                                      dtype=self.dtype_policy, name="cheb")
    self.num_vertices = self.conv.num_vertices

  def build(self, input_shape):
    check_channels(input_shape, "ChebActivation")
    self.conv.build(input_shape)

  def call(self, inputs):
    y = self.conv(inputs)
    return y if self._act is None else self._act(y)

  def compute_output_shape(self, input_shape):
    return (input_shape[0], self.num_vertices, self.units)
