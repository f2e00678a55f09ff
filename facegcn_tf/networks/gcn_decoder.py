"""GCN Decoder: a feature vector -> per-vertex albedo on the mesh hierarchy.

paper_spec §2.7. An FC layer puts the `[B, D]` features on the coarsest
level; then, once per level, a U-unpool to the next finer level and a graph
layer, finishing with 3 channels on the finest mesh.

* `block="residual"` (the paper; the official code's `--model resnet`): one
  `ChebResBlock` per level; the last block outputs 3 channels and still ends
  in the activation. `widths = (FC width, block widths...)` has one entry per
  unpool step, e.g. (32, 16, 16, 16) -> 140:32, 558:16, 2232:16, 8928:16,
  35709:3 on a 5-level BFM hierarchy; wide: (32, 64, 128, 256).
* `block="plain"` (the official default `--model normal`): unpool then
  Cheb + bias + activation per level, then one more Cheb -> 3 + bias +
  activation. `widths` has one more entry: (32, 16, 16, 16, 16).
"""

import keras
import tensorflow as tf

from facegcn_tf.graph import layers as graph_layers
from facegcn_tf.networks import gcn_blocks

BLOCKS = ("residual", "plain")
DEFAULT_WIDTHS = {"residual": (32, 16, 16, 16), "plain": (32, 16, 16, 16, 16)}


def check_hierarchy(hierarchy, min_levels, what):
  """One-line ValueError unless `hierarchy` is a MeshHierarchy with >= min_levels levels."""
  for attr in ("laplacians", "up", "down", "num_vertices"):
    if not hasattr(hierarchy, attr):
      raise ValueError(f"{what} needs a graph.hierarchy.MeshHierarchy, "
                       f"got {type(hierarchy).__name__}")
  if len(hierarchy.laplacians) < min_levels:
    raise ValueError(f"{what} needs a hierarchy with at least {min_levels} levels, "
                     f"got {len(hierarchy.laplacians)}")


def check_widths(widths, count, what):
  """Tuple of `count` positive ints, or a one-line ValueError."""
  try:
    widths = tuple(widths)
  except TypeError:
    raise ValueError(f"{what} must be a sequence of positive ints, got {widths!r}") from None
  if len(widths) != count or not all(
      isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in widths):
    raise ValueError(f"{what} must be {count} positive ints, got {widths!r}")
  return widths


class GCNDecoder(keras.layers.Layer):
  """Features `[B, D]` -> per-vertex colours `[B, V0, out_channels]`.

  Args:
    hierarchy: `graph.hierarchy.MeshHierarchy` of the texture mesh (level 0 =
      finest); all of its levels are used.
    widths: see the module docstring; None = the default of `block`. Its
      length must be `num_levels - 1` (residual) or `num_levels` (plain).
    activation: "relu" (paper) or "elu" (official code) after the graph convs.
    block: "residual" or "plain".
    order: Chebyshev order K.
    out_channels: output channels (3 = RGB).
    fc_activation: activation of the FC layer ("relu" in both paper and code).
    fc_weight_decay: coefficient c of the official code's `c * tf.nn.l2_loss`
      on the FC kernel and bias (5e-4 there; 0 = none). Added to `self.losses`.
  """

  def __init__(self, hierarchy, widths=None, activation="relu", block="residual", order=6,
               out_channels=3, fc_activation="relu", fc_weight_decay=0.0, **kwargs):
    super().__init__(**kwargs)
    if block not in BLOCKS:
      raise ValueError(f"block must be one of {BLOCKS}, got {block!r}")
    gcn_blocks.activation_fn(activation)
    check_hierarchy(hierarchy, 2, "GCNDecoder")
    steps = len(hierarchy.up)
    widths = DEFAULT_WIDTHS[block] if widths is None else widths
    widths = check_widths(widths, steps + (block == "plain"), "GCNDecoder widths")
    self.widths = widths
    self.block = block
    self.activation = activation
    self.out_channels = int(out_channels)
    self.num_vertices = hierarchy.num_vertices[0]
    self._coarse_vertices = hierarchy.num_vertices[-1]
    reg = keras.regularizers.L2(fc_weight_decay / 2.0) if fc_weight_decay else None
    self.fc = keras.layers.Dense(self._coarse_vertices * widths[0], activation=fc_activation,
                                 kernel_regularizer=reg, bias_regularizer=reg,
                                 dtype=self.dtype_policy, name="fc")
    self.unpools, self.graph_layers = [], []
    if block == "residual":
      conv_widths = widths[1:] + (self.out_channels,)
    else:
      conv_widths = widths[1:]
    for j, units in enumerate(conv_widths):
      level = steps - 1 - j  # unpool from level + 1 to level
      self.unpools.append(graph_layers.GraphResample(
          hierarchy.up[level], dtype=self.dtype_policy, name=f"unpool{level}"))
      layer_cls = gcn_blocks.ChebResBlock if block == "residual" else gcn_blocks.ChebActivation
      self.graph_layers.append(layer_cls(
          units, hierarchy.laplacians[level], order=order, activation=activation,
          dtype=self.dtype_policy, name=f"{block}{level}"))
    self.output_layer = None
    if block == "plain":
      self.output_layer = gcn_blocks.ChebActivation(
          self.out_channels, hierarchy.laplacians[0], order=order, activation=activation,
          dtype=self.dtype_policy, name="output")

  def build(self, input_shape):
    input_shape = tuple(input_shape)
    if len(input_shape) != 2 or input_shape[1] is None:
      raise ValueError(f"GCNDecoder expects features [B, D] with known D, got {input_shape}")
    self.fc.build(input_shape)
    shape = (input_shape[0], self._coarse_vertices, self.widths[0])
    for unpool, layer in zip(self.unpools, self.graph_layers):
      unpool.build(shape)
      shape = (shape[0], unpool.num_out, shape[2])
      layer.build(shape)
      shape = layer.compute_output_shape(shape)
    if self.output_layer is not None:
      self.output_layer.build(shape)

  def call(self, features):
    """`[B, D]` -> `[B, V0, out_channels]` in the compute dtype."""
    x = self.fc(features)
    x = tf.reshape(x, [-1, self._coarse_vertices, self.widths[0]])
    for unpool, layer in zip(self.unpools, self.graph_layers):
      x = layer(unpool(x))
    if self.output_layer is not None:
      x = self.output_layer(x)
    return x

  def compute_output_shape(self, input_shape):
    return (input_shape[0], self.num_vertices, self.out_channels)
