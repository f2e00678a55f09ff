"""Combine Net: decoder and refiner colours -> fine albedo T' in [-1, 1].

paper_spec §2.9 (paper and both code variants): concat the two `[B, V, 3]`
outputs -> one ChebConv (K = 6, -> 3, no bias) -> tanh.
"""

import keras
import tensorflow as tf

from facegcn_tf.graph import layers as graph_layers
from facegcn_tf.networks import gcn_blocks


class CombineNet(keras.layers.Layer):
  """`[decoded [B, V, Cd], refined [B, V, Cr]]` -> fine albedo `[B, V, 3]` float32.

  The tanh runs in float32 so that the output is float32 in [-1, 1] under a
  mixed-precision policy too.

  Args:
    laplacian: normalised Laplacian `[V, V]` of the finest level.
    order: Chebyshev order K (paper: 6).
    out_channels: output channels.
  """

  def __init__(self, laplacian, order=6, out_channels=3, **kwargs):
    super().__init__(**kwargs)
    self.conv = graph_layers.ChebConv(out_channels, laplacian, order=order, use_bias=False,
                                      dtype=self.dtype_policy, name="combine")
    self.num_vertices = self.conv.num_vertices
    self.out_channels = int(out_channels)

  def build(self, input_shape):
    shapes = list(input_shape)
    if len(shapes) != 2:
      raise ValueError("CombineNet expects two inputs (decoded, refined)")
    channels = sum(gcn_blocks.check_channels(s, "CombineNet") for s in shapes)
    self.conv.build((shapes[0][0], self.num_vertices, channels))

  def call(self, inputs):
    """`[decoded, refined]` -> `[B, V, out_channels]` float32 in [-1, 1]."""
    decoded, refined = inputs
    x = tf.concat([tf.cast(decoded, self.compute_dtype),
                   tf.cast(refined, self.compute_dtype)], axis=-1)
    return tf.tanh(tf.cast(self.conv(x), tf.float32))

  def compute_output_shape(self, input_shape):
    return (input_shape[0][0], self.num_vertices, self.out_channels)
