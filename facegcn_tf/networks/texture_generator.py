"""TextureGenerator: GCN Decoder + GCN Refiner + Combine Net (paper_spec §1 step 13).

```
decoded = Decoder(features)                        [B, V, 3]
refined = Refiner(concat(coarse_albedo, sampled))  [B, V, 3]   (7 channels in)
fine    = tanh(Cheb(concat(decoded, refined)))     [B, V, 3]   in [-1, 1]
```
`use_decoder=False` / `use_refiner=False` (ablations) build no such branch
and feed zeros in its place, so the Combine Net keeps its 6 input channels.
"""

import keras
import tensorflow as tf

from facegcn_tf.networks import combine_net
from facegcn_tf.networks import gcn_decoder
from facegcn_tf.networks import gcn_refiner

SAMPLED_CHANNELS = 4  # image RGB * visibility (3) + visibility (1)


class TextureGenerator(keras.Model):
  """`(features [B, D], coarse_albedo [B, V, 3], sampled [B, V, 4])` -> fine albedo.

  `call` returns the fine albedo T' `[B, V, 3]` (float32, in [-1, 1]);
  `components` also returns the decoder and refiner outputs.

  Args:
    hierarchy: `graph.hierarchy.MeshHierarchy` of the texture mesh.
    feature_dim: D, the length of the decoder's input vector (identity
      features, optionally concatenated with R-Net pooled features).
    refiner: "residual" (paper) or "unet" (official default).
    activation: "relu" (paper) or "elu" (official code) in every graph layer.
    widths: decoder widths (None = `gcn_decoder.DEFAULT_WIDTHS[decoder]`).
    decoder: "residual" (paper) or "plain" (official default).
    refiner_widths: refiner widths (None = the refiner's default).
    order: Chebyshev order K everywhere.
    use_decoder, use_refiner: False replaces that branch by zeros.
    fc_weight_decay: the official code's 5e-4 L2 on the FC layers (0 = off);
      collected in `self.losses`.
  """

  def __init__(self, hierarchy, feature_dim, refiner="residual", activation="relu", widths=None,
               decoder="residual", refiner_widths=None, order=6, use_decoder=True,
               use_refiner=True, fc_weight_decay=0.0, **kwargs):
    super().__init__(**kwargs)
    if isinstance(feature_dim, bool) or not isinstance(feature_dim, int) or feature_dim < 1:
      raise ValueError(f"feature_dim must be a positive int, got {feature_dim!r}")
    if refiner not in gcn_refiner.REFINERS:
      raise ValueError(f"refiner must be one of {gcn_refiner.REFINERS}, got {refiner!r}")
    if not (use_decoder or use_refiner):
      raise ValueError("TextureGenerator needs the decoder, the refiner or both")
    gcn_decoder.check_hierarchy(hierarchy, 2, "TextureGenerator")
    self.feature_dim = feature_dim
    self.num_vertices = hierarchy.num_vertices[0]
    self.refiner_name = refiner
    self.decoder = None
    self.refiner = None
    if use_decoder:
      self.decoder = gcn_decoder.GCNDecoder(
          hierarchy, widths=widths, activation=activation, block=decoder, order=order,
          fc_weight_decay=fc_weight_decay, dtype=self.dtype_policy, name="decoder")
    if use_refiner:
      extra = {"fc_weight_decay": fc_weight_decay} if refiner == "unet" else {}
      self.refiner = gcn_refiner.make_refiner(
          refiner, hierarchy, activation=activation, order=order, widths=refiner_widths,
          dtype=self.dtype_policy, name="refiner", **extra)
    self.combine = combine_net.CombineNet(hierarchy.laplacians[0], order=order,
                                          dtype=self.dtype_policy, name="combine")

  def _check_shapes(self, features_shape, coarse_shape, sampled_shape):
    f, c, s = tuple(features_shape), tuple(coarse_shape), tuple(sampled_shape)
    if len(f) != 2 or f[1] != self.feature_dim:
      raise ValueError(f"features must be [B, {self.feature_dim}], got {f}")
    if len(c) != 3 or c[1] != self.num_vertices or c[2] != 3:
      raise ValueError(f"coarse_albedo must be [B, {self.num_vertices}, 3], got {c}")
    if len(s) != 3 or s[1] != self.num_vertices or s[2] != SAMPLED_CHANNELS:
      raise ValueError(f"sampled must be [B, {self.num_vertices}, {SAMPLED_CHANNELS}], got {s}")

  def build(self, input_shape):
    if len(input_shape) != 3:
      raise ValueError("TextureGenerator expects (features, coarse_albedo, sampled)")
    f, c, s = (tuple(x) for x in input_shape)
    self._check_shapes(f, c, s)
    b = f[0]
    if self.decoder is not None:
      self.decoder.build(f)
    if self.refiner is not None:
      self.refiner.build((b, self.num_vertices, 3 + SAMPLED_CHANNELS))
    self.combine.build([(b, self.num_vertices, 3), (b, self.num_vertices, 3)])

  def components(self, inputs, training=None):
    """Like calling the model, returning dict decoded / refined / fine (`[B, V, 3]` float32).

    decoded / refined are zeros for a disabled branch.
    """
    return self(inputs, training=training, return_components=True)

  def call(self, inputs, training=None, return_components=False):
    """`(features, coarse_albedo, sampled)` -> fine albedo `[B, V, 3]` float32 in [-1, 1].

    With `return_components=True`, the dict of `components` instead.
    """
    del training  # no dropout / normalisation in the generator
    if not isinstance(inputs, (tuple, list)) or len(inputs) != 3:
      raise ValueError("TextureGenerator expects (features, coarse_albedo, sampled)")
    features, coarse, sampled = (tf.convert_to_tensor(x) for x in inputs)
    self._check_shapes(features.shape, coarse.shape, sampled.shape)
    dtype = self.compute_dtype
    zeros = tf.zeros(tf.concat([tf.shape(coarse)[:2], [3]], 0), dtype)
    decoded = zeros if self.decoder is None else self.decoder(features)
    if self.refiner is None:
      refined = zeros
    else:
      refined = self.refiner(tf.concat([tf.cast(coarse, dtype), tf.cast(sampled, dtype)], -1))
    fine = self.combine([decoded, refined])
    if not return_components:
      return fine
    return {"decoded": tf.cast(decoded, tf.float32), "refined": tf.cast(refined, tf.float32),
            "fine": fine}

  def compute_output_shape(self, input_shape):
    return (input_shape[0][0], self.num_vertices, 3)
