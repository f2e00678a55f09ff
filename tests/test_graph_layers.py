"""Tests for facegcn_tf.graph.layers (ChebConv, GraphResample) against dense NumPy."""

import keras
import numpy as np
import pytest
import scipy.sparse as sp
import tensorflow as tf

from facegcn_tf.graph import laplacian
from facegcn_tf.graph import layers

V = 30


def _random_laplacian(n=V, seed=0):
  """Normalised Laplacian of a random connected weighted graph (not a mesh)."""
  rng = np.random.default_rng(seed)
  w = (rng.random((n, n)) < 0.15) * rng.integers(1, 3, size=(n, n))
  w = np.triu(w, 1)
  ring = np.roll(np.eye(n), 1, axis=1)  # guarantees connectivity
  w = w + np.triu(ring + ring.T, 1)
  w = w + w.T
  return laplacian.normalized_laplacian(sp.csr_matrix(w.astype(float)))


def _cheb_polys(lap, order):
  """Dense Chebyshev matrices P_k(L - I), k < order."""
  lt = lap.toarray() - np.eye(lap.shape[0])
  polys = [np.eye(lap.shape[0]), lt]
  while len(polys) < order:
    polys.append(2 * lt @ polys[-1] - polys[-2])
  return polys[:order]


def _dense_cheb(x, lap, kernel, order):
  """NumPy reference: concat_k (P_k x) with channel-major (fin * K + k) layout."""
  terms = [np.einsum("vw,bwf->bvf", p, x) for p in _cheb_polys(lap, order)]
  t = np.stack(terms, axis=-1)  # [B, V, Fin, K]
  return t.reshape(x.shape[0], x.shape[1], -1) @ kernel


@pytest.mark.parametrize("order", [1, 2, 3, 6])
def test_chebconv_matches_dense_numpy(order):
  lap = _random_laplacian()
  rng = np.random.default_rng(order)
  x = rng.normal(size=(3, V, 4)).astype(np.float32)
  layer = layers.ChebConv(5, lap, order=order)
  y = layer(x).numpy()
  assert layer.kernel.shape == (4 * order, 5)
  ref = _dense_cheb(x.astype(np.float64), lap, layer.kernel.numpy().astype(np.float64), order)
  np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)


def test_chebconv_bias_and_sparse_tensor_laplacian():
  lap = _random_laplacian(seed=1)
  x = np.random.default_rng(5).normal(size=(2, V, 3)).astype(np.float32)
  from_scipy = layers.ChebConv(4, lap, order=6, use_bias=True)
  from_tf = layers.ChebConv(4, laplacian.to_sparse_tensor(lap), order=6, use_bias=True)
  from_scipy.build(x.shape)
  from_tf.build(x.shape)
  bias = np.arange(4, dtype=np.float32)
  from_scipy.set_weights([from_scipy.kernel.numpy(), bias])
  from_tf.set_weights(from_scipy.get_weights())
  ref = _dense_cheb(x.astype(np.float64), lap, from_scipy.kernel.numpy().astype(np.float64), 6)
  np.testing.assert_allclose(from_scipy(x).numpy(), ref + bias, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(from_tf(x).numpy(), from_scipy(x).numpy(), atol=1e-6)


def test_chebconv_gradients_match_analytic():
  lap = _random_laplacian(seed=2)
  order, fin, units = 6, 3, 2
  rng = np.random.default_rng(7)
  x = tf.constant(rng.normal(size=(2, V, fin)).astype(np.float32))
  g = rng.normal(size=(2, V, units))
  layer = layers.ChebConv(units, lap, order=order)
  with tf.GradientTape() as tape:
    tape.watch(x)
    loss = tf.reduce_sum(layer(x) * tf.constant(g, tf.float32))
  dx, dw = tape.gradient(loss, [x, layer.kernel])
  polys = _cheb_polys(lap, order)
  w = layer.kernel.numpy().astype(np.float64).reshape(fin, order, units)
  t = np.stack([np.einsum("vw,bwf->bvf", p, x.numpy()) for p in polys], axis=-1)
  dw_ref = np.einsum("bvfk,bvu->fku", t, g).reshape(fin * order, units)
  dx_ref = sum(np.einsum("wv,bwu,fu->bvf", p, g, w[:, k, :]) for k, p in enumerate(polys))
  np.testing.assert_allclose(dw.numpy(), dw_ref, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(dx.numpy(), dx_ref, rtol=1e-4, atol=1e-4)
  assert np.abs(dx.numpy()).max() > 0 and np.abs(dw.numpy()).max() > 0


def test_chebconv_in_tf_function_with_dynamic_batch():
  lap = _random_laplacian(seed=3)
  layer = layers.ChebConv(6, lap, order=6)

  @tf.function(input_signature=[tf.TensorSpec([None, V, 2], tf.float32)])
  def forward(x):
    return layer(x)

  out_spec = forward.get_concrete_function().structured_outputs
  assert out_spec.shape.as_list() == [None, V, 6]
  rng = np.random.default_rng(4)
  for batch in (1, 5):
    x = rng.normal(size=(batch, V, 2)).astype(np.float32)
    np.testing.assert_allclose(forward(x).numpy(), layer(x).numpy(), atol=1e-6)


def test_chebconv_mixed_precision():
  lap = _random_laplacian(seed=4)
  x = np.random.default_rng(8).normal(size=(2, V, 3)).astype(np.float32)
  full = layers.ChebConv(4, lap, order=6)
  mixed = layers.ChebConv(4, lap, order=6, dtype="mixed_float16")
  full.build(x.shape)
  mixed.build(x.shape)
  mixed.set_weights(full.get_weights())
  y = mixed(x)
  assert y.dtype == tf.float16 and mixed.kernel.dtype == "float32"
  np.testing.assert_allclose(y.numpy().astype(np.float32), full(x).numpy(), rtol=2e-2, atol=2e-2)
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(tf.cast(mixed(x), tf.float32))
  grad = tape.gradient(loss, mixed.kernel)
  assert grad.dtype == tf.float32 and np.all(np.isfinite(grad.numpy()))


def test_chebconv_config_and_keras_save_roundtrip(tmp_path):
  lap = _random_laplacian(seed=5)
  x = np.random.default_rng(9).normal(size=(2, V, 3)).astype(np.float32)
  layer = layers.ChebConv(4, lap, order=3, use_bias=True, name="cheb")
  layer.build(x.shape)
  clone = layers.ChebConv.from_config(layer.get_config())
  clone.build(x.shape)
  clone.set_weights(layer.get_weights())
  np.testing.assert_allclose(clone(x).numpy(), layer(x).numpy(), atol=1e-6)
  assert clone.order == 3 and clone.use_bias and clone.units == 4

  model = keras.Sequential([keras.Input((V, 3)), layers.ChebConv(5, lap, order=6),
                            layers.GraphResample(sp.identity(V) * 0.5)])
  path = tmp_path / "model.keras"
  model.save(path)
  loaded = keras.models.load_model(path)
  np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), atol=1e-6)


def test_chebconv_rejects_bad_input():
  lap = _random_laplacian()
  with pytest.raises(ValueError, match="vertices"):
    layers.ChebConv(3, lap)(np.zeros((1, V + 1, 2), np.float32))
  with pytest.raises(ValueError, match=r"\[B, V, F\]"):
    layers.ChebConv(3, lap)(np.zeros((V, 2), np.float32))
  built = layers.ChebConv(3, lap)
  built(np.zeros((1, V, 2), np.float32))
  with pytest.raises(ValueError, match="vertices"):
    built(np.zeros((1, V - 1, 2), np.float32))
  with pytest.raises(ValueError, match="2 input channels"):
    built(np.zeros((1, V, 5), np.float32))
  with pytest.raises(ValueError, match="scipy.sparse"):
    layers.ChebConv(3, lap.toarray())
  with pytest.raises(ValueError, match="square"):
    layers.ChebConv(3, sp.csr_matrix(np.ones((3, 4))))
  with pytest.raises(ValueError, match="units"):
    layers.ChebConv(0, lap)
  with pytest.raises(ValueError, match="order"):
    layers.ChebConv(3, lap, order=0)


def test_graph_resample_matches_dense_and_backprops():
  rng = np.random.default_rng(10)
  m = sp.random(7, V, density=0.2, random_state=1, format="csr")
  x = rng.normal(size=(3, V, 4)).astype(np.float32)
  layer = layers.GraphResample(m)
  np.testing.assert_allclose(layer(x).numpy(), np.einsum("ow,bwf->bof", m.toarray(), x),
                             rtol=1e-5, atol=1e-6)

  @tf.function(input_signature=[tf.TensorSpec([None, V, 4], tf.float32)])
  def forward(z):
    return layer(z)

  assert forward.get_concrete_function().structured_outputs.shape.as_list() == [None, 7, 4]
  np.testing.assert_allclose(forward(x[:1]).numpy(), layer(x[:1]).numpy(), atol=1e-6)

  g = rng.normal(size=(3, 7, 4)).astype(np.float32)
  xt = tf.constant(x)
  with tf.GradientTape() as tape:
    tape.watch(xt)
    loss = tf.reduce_sum(layer(xt) * g)
  np.testing.assert_allclose(tape.gradient(loss, xt).numpy(),
                             np.einsum("ow,bof->bwf", m.toarray(), g), rtol=1e-5, atol=1e-5)

  clone = layers.GraphResample.from_config(layer.get_config())
  np.testing.assert_allclose(clone(x).numpy(), layer(x).numpy(), atol=1e-7)
  mixed = layers.GraphResample(m, dtype="mixed_float16")
  assert mixed(x).dtype == tf.float16
  with pytest.raises(ValueError, match="7 vertices"):
    layer(np.zeros((1, 7, 4), np.float32))
