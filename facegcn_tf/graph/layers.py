"""Keras 3 layers on a fixed mesh graph: Chebyshev convolution and resampling.

Both layers hold a constant sparse matrix (the graph) and do the sparse
products with `tf.sparse.sparse_dense_matmul` on a `[V, B*F]` view of the
batch, so one sparse matmul serves the whole batch. Sparse products always run
in float32 (float16 sparse kernels are missing on some devices and lose
precision); under a mixed-precision policy only the dense kernel matmul runs in
the compute dtype.
"""

import keras
import numpy as np
import scipy.sparse as sp
import tensorflow as tf

from facegcn_tf.graph import laplacian as laplacian_lib


def _as_scipy(matrix, name):
  """scipy sparse, tf.SparseTensor (eager) or config dict -> float32 csr_matrix."""
  if isinstance(matrix, tf.SparseTensor):
    if matrix.shape.rank != 2:
      raise ValueError(f"{name} must be a 2-D sparse matrix, got shape {matrix.shape}")
    idx = matrix.indices.numpy()
    matrix = sp.coo_matrix((matrix.values.numpy(), (idx[:, 0], idx[:, 1])),
                           shape=tuple(int(s) for s in matrix.dense_shape.numpy()))
  elif isinstance(matrix, dict) and {"indices", "values", "dense_shape"} <= set(matrix):
    idx = np.asarray(matrix["indices"], dtype=np.int64).reshape(-1, 2)
    matrix = sp.coo_matrix((np.asarray(matrix["values"]), (idx[:, 0], idx[:, 1])),
                           shape=tuple(int(s) for s in matrix["dense_shape"]))
  elif not sp.issparse(matrix):
    raise ValueError(f"{name} must be a scipy.sparse matrix or a tf.SparseTensor, "
                     f"got {type(matrix).__name__}")
  if len(matrix.shape) != 2:
    raise ValueError(f"{name} must be 2-D, got shape {matrix.shape}")
  m = sp.csr_matrix(matrix, dtype=np.float32)
  if not np.all(np.isfinite(m.data)):
    raise ValueError(f"{name} contains NaN or infinite values")
  return m


def _sparse_config(matrix):
  """JSON-friendly form of a scipy sparse matrix (used by get_config)."""
  coo = sp.coo_matrix(matrix)
  return {"indices": np.stack([coo.row, coo.col], axis=1).tolist(),
          "values": coo.data.tolist(), "dense_shape": list(coo.shape)}


def _check_input_shape(shape, num_vertices, layer, what):
  """One-line ValueError unless `shape` is `[B, num_vertices, F]` (None allowed)."""
  shape = tuple(shape)
  if len(shape) != 3:
    raise ValueError(f"{layer} expects input [B, V, F], got shape {shape}")
  if shape[1] is not None and shape[1] != num_vertices:
    raise ValueError(f"{layer} input has {shape[1]} vertices, {what} has {num_vertices}")


def _batched_sparse_matmul(matrix, x):
  """`matrix [R, V]` times each batch item of `x [V, F, B]` -> `[R, F, B]` (float32)."""
  v, f, b = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2]
  y = tf.sparse.sparse_dense_matmul(matrix, tf.reshape(x, [v, f * b]))
  return tf.reshape(y, [-1, f, b])


@keras.saving.register_keras_serializable(package="facegcn_tf")
class ChebConv(keras.layers.Layer):
  """Chebyshev spectral graph convolution (Defferrard et al.; CoMA; GCN code).

  With `L̃ = L - I` (the normalised Laplacian rescaled by λmax = 2):
  `T0 = x`, `T1 = L̃ x`, `Tk = 2 L̃ T(k-1) - T(k-2)` for k < K, and
  `y[b, v, :] = concat_k T_k[b, v, :] @ W (+ bias)`.
  The kernel W is `[Fin * K, units]`, row `fin * K + k` multiplying `T_k[..., fin]`
  (the ordering of the official code and CoMA, so their weights map 1:1).

  Input `[B, V, Fin]` (B may be None); output `[B, V, units]`.

  Args:
    units: output channels.
    laplacian: the normalised Laplacian L `[V, V]` (scipy sparse,
      tf.SparseTensor, or the dict from `get_config`), not rescaled.
    order: K, the number of Chebyshev terms (K = 1 is a per-vertex linear map).
    kernel_initializer: keras initializer for W (paper: He normal).
    use_bias: add a per-channel bias (the paper's convs have none).
    bias_initializer: keras initializer for the bias.
  """

  def __init__(self, units, laplacian, order=6, kernel_initializer="he_normal",
               use_bias=False, bias_initializer="zeros", **kwargs):
    super().__init__(**kwargs)
    if not isinstance(units, (int, np.integer)) or isinstance(units, bool) or units < 1:
      raise ValueError(f"units must be a positive integer, got {units!r}")
    if not isinstance(order, (int, np.integer)) or isinstance(order, bool) or order < 1:
      raise ValueError(f"order must be a positive integer, got {order!r}")
    lap = _as_scipy(laplacian, "laplacian")
    n = lap.shape[0]
    if lap.shape[1] != n:
      raise ValueError(f"laplacian must be square, got {lap.shape}")
    self.units = int(units)
    self.order = int(order)
    self.num_vertices = n
    self.use_bias = bool(use_bias)
    self.kernel_initializer = keras.initializers.get(kernel_initializer)
    self.bias_initializer = keras.initializers.get(bias_initializer)
    self._laplacian = lap
    self._scaled = laplacian_lib.to_sparse_tensor(
        laplacian_lib.rescale_laplacian(lap, lmax=2.0))  # L̃ = L - I

  def build(self, input_shape):
    _check_input_shape(input_shape, self.num_vertices, "ChebConv", "the Laplacian")
    if input_shape[2] is None:
      raise ValueError("ChebConv needs a known number of input channels")
    self.input_channels = int(input_shape[2])
    self.kernel = self.add_weight(
        name="kernel", shape=(self.input_channels * self.order, self.units),
        initializer=self.kernel_initializer, trainable=True)
    self.bias = None
    if self.use_bias:
      self.bias = self.add_weight(name="bias", shape=(self.units,),
                                  initializer=self.bias_initializer, trainable=True)

  def call(self, inputs):
    x = tf.convert_to_tensor(inputs)
    _check_input_shape(x.shape, self.num_vertices, "ChebConv", "the Laplacian")
    if x.shape[2] is not None and x.shape[2] != self.input_channels:
      raise ValueError(f"ChebConv was built for {self.input_channels} input channels, "
                       f"got {x.shape[2]}")
    fin = self.input_channels
    batch = tf.shape(x)[0]
    x0 = tf.transpose(tf.cast(x, tf.float32), [1, 2, 0])  # [V, Fin, B]
    terms = [x0]
    if self.order > 1:
      terms.append(_batched_sparse_matmul(self._scaled, x0))
    for _ in range(2, self.order):
      terms.append(2.0 * _batched_sparse_matmul(self._scaled, terms[-1]) - terms[-2])
    t = tf.stack(terms, axis=3)  # [V, Fin, B, K]
    t = tf.transpose(t, [2, 0, 1, 3])  # [B, V, Fin, K]
    t = tf.reshape(t, [batch * self.num_vertices, fin * self.order])
    t = tf.cast(t, self.compute_dtype)
    y = tf.matmul(t, tf.cast(self.kernel, self.compute_dtype))
    if self.bias is not None:
      y = y + tf.cast(self.bias, self.compute_dtype)
    return tf.reshape(y, [batch, self.num_vertices, self.units])

  def compute_output_shape(self, input_shape):
    return (input_shape[0], self.num_vertices, self.units)

  def get_config(self):
    config = super().get_config()
    config.update({
        "units": self.units,
        "laplacian": _sparse_config(self._laplacian),
        "order": self.order,
        "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
        "use_bias": self.use_bias,
        "bias_initializer": keras.initializers.serialize(self.bias_initializer),
    })
    return config


@keras.saving.register_keras_serializable(package="facegcn_tf")
class GraphResample(keras.layers.Layer):
  """Pool / unpool on a mesh hierarchy: `y[b] = M @ x[b]`.

  Input `[B, n_in, F]` -> output `[B, n_out, F]` for `M [n_out, n_in]`
  (D_i to go coarser, U_i to go finer). No weights.

  Args:
    matrix: `[n_out, n_in]` scipy sparse, tf.SparseTensor, or the dict from
      `get_config`.
  """

  def __init__(self, matrix, **kwargs):
    super().__init__(**kwargs)
    self._matrix = _as_scipy(matrix, "matrix")
    self.num_out, self.num_in = self._matrix.shape
    self._sparse = laplacian_lib.to_sparse_tensor(self._matrix)

  def build(self, input_shape):
    _check_input_shape(input_shape, self.num_in, "GraphResample", "the matrix")

  def call(self, inputs):
    x = tf.convert_to_tensor(inputs)
    _check_input_shape(x.shape, self.num_in, "GraphResample", "the matrix")
    batch = tf.shape(x)[0]
    channels = x.shape[2] if x.shape[2] is not None else tf.shape(x)[2]
    xt = tf.transpose(tf.cast(x, tf.float32), [1, 2, 0])  # [n_in, F, B]
    y = _batched_sparse_matmul(self._sparse, xt)  # [n_out, F, B]
    y = tf.transpose(y, [2, 0, 1])
    y = tf.reshape(y, [batch, self.num_out, channels])
    return tf.cast(y, self.compute_dtype)

  def compute_output_shape(self, input_shape):
    return (input_shape[0], self.num_out, input_shape[2])

  def get_config(self):
    config = super().get_config()
    config.update({"matrix": _sparse_config(self._matrix)})
    return config
