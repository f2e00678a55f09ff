"""R-Net: the Keras regressor (layout, zero-initialised heads, input convention), the
loader of Deep3DFace's frozen FaceReconModel.pb (on a small synthetic graph with the
same tensor names), and finding both kinds of file (facegcn_tf.assets.loaders)."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from facegcn_tf.assets import loaders
from facegcn_tf.errors import AssetNotFoundError
from facegcn_tf.morphable.model import BFM_LAYOUT, CoeffLayout
from facegcn_tf.networks import rnet, rnet_pb
from facegcn_tf.training.runtime import dtype_policy

SIZE = 64


@pytest.fixture(scope="module")
def bfm_rnet():
  keras.utils.set_random_seed(0)
  return rnet.build_rnet(BFM_LAYOUT, input_size=SIZE)


def _images(batch, seed=0):
  return np.random.RandomState(seed).uniform(0, 255, (batch, SIZE, SIZE, 3)).astype(np.float32)


def test_outputs_have_the_layout_and_start_at_zero(bfm_rnet):
  coeffs, pooled = bfm_rnet(_images(3), training=False)
  assert coeffs.shape == (3, 257) and pooled.shape == (3, rnet.POOLED_DIM)
  assert coeffs.dtype == tf.float32 and pooled.dtype == tf.float32
  # Zero-initialised heads: exactly the mean face, whatever the image...
  np.testing.assert_array_equal(coeffs.numpy(), 0.0)
  # ... while the backbone does see the images.
  pooled = pooled.numpy()
  assert np.all(np.isfinite(pooled)) and np.abs(pooled).max() > 0
  assert np.abs(pooled[0] - pooled[1]).max() > 1e-4


def test_heads_are_concatenated_in_deep3dface_order(bfm_rnet):
  names = ["id", "exp", "tex", "angles", "gamma", "trans_xy", "trans_z"]
  old = {n: bfm_rnet.get_layer(f"head_{n}").get_weights() for n in names}
  try:
    for value, name in enumerate(names, start=1):
      kernel, bias = old[name]
      bfm_rnet.get_layer(f"head_{name}").set_weights([kernel, np.full_like(bias, value)])
    coeffs = bfm_rnet(_images(1), training=False)[0].numpy()[0]
  finally:
    for name in names:
      bfm_rnet.get_layer(f"head_{name}").set_weights(old[name])
  parts = BFM_LAYOUT.split(coeffs)
  for value, part in enumerate(["id", "exp", "tex", "angles", "gamma"], start=1):
    np.testing.assert_array_equal(parts[part], value)
  np.testing.assert_array_equal(parts["trans"], [6, 6, 7])
  assert {p: len(v) for p, v in parts.items()} == {
      "id": 80, "exp": 64, "tex": 80, "angles": 3, "gamma": 27, "trans": 3}


def test_other_layouts():
  layout = CoeffLayout(5, 0, 3)          # a model without expressions
  model = rnet.build_rnet(layout, input_size=32)
  coeffs, _ = model(np.zeros((2, 32, 32, 3), np.float32))
  assert coeffs.shape == (2, layout.total) == (2, 5 + 3 + 33)
  assert "head_exp" not in [layer.name for layer in model.layers]


def test_input_is_rgb_0_255_converted_like_keras_caffe_preprocessing():
  rgb = np.random.RandomState(1).uniform(0, 255, (2, 5, 7, 3)).astype(np.float32)
  ours = rnet.RgbToCaffe()(rgb).numpy()
  reference = keras.applications.resnet50.preprocess_input(rgb.copy())
  np.testing.assert_allclose(ours, reference, atol=1e-4)
  np.testing.assert_allclose(ours[..., 0], rgb[..., 2] - 103.939, atol=1e-4)  # BGR order


def test_bad_arguments_are_rejected(tmp_path):
  with pytest.raises(ValueError, match="input_size"):
    rnet.build_rnet(BFM_LAYOUT, input_size=16)
  with pytest.raises(ValueError, match="internet"):
    rnet.build_rnet(BFM_LAYOUT, input_size=SIZE, backbone_weights="imagenet")
  with pytest.raises(AssetNotFoundError, match="resnet50_notop.h5"):
    rnet.build_rnet(BFM_LAYOUT, input_size=SIZE, backbone_weights=tmp_path / "resnet50_notop.h5")
  with pytest.raises(ValueError, match="CoeffLayout"):
    rnet.build_rnet(257, input_size=SIZE)


def test_mixed_precision_policy_keeps_outputs_float32():
  with dtype_policy(True):
    model = rnet.build_rnet(CoeffLayout(4, 2, 3), input_size=32)
  assert keras.config.dtype_policy().name == "float32"     # restored afterwards
  backbone = model.get_layer("resnet50")
  assert backbone.get_layer("conv1_conv").compute_dtype == "float16"
  coeffs, pooled = model(np.ones((1, 32, 32, 3), np.float32) * 100)
  assert coeffs.dtype == tf.float32 and pooled.dtype == tf.float32
  assert model.get_layer("head_id").kernel.dtype == "float32"


def test_load_rnet_round_trip(bfm_rnet, tmp_path):
  head = bfm_rnet.get_layer("head_gamma")
  kernel, bias = head.get_weights()
  rng = np.random.RandomState(3)
  head.set_weights([rng.normal(0, 1e-3, kernel.shape), rng.normal(0, 1, bias.shape)])
  try:
    path = tmp_path / "rnet.weights.h5"
    bfm_rnet.save_weights(str(path))
    loaded = rnet.load_rnet(path, BFM_LAYOUT, input_size=SIZE)
    x = _images(2, seed=5)
    np.testing.assert_array_equal(loaded(x, training=False)[0].numpy(),
                                  bfm_rnet(x, training=False)[0].numpy())
    with pytest.raises(ValueError, match="do not fit"):
      rnet.load_rnet(path, CoeffLayout(3, 3, 3), input_size=SIZE)
    # The loader reads the input size from rnet.json beside the weights and resizes to it.
    (tmp_path / loaders.RNET_CONFIG_FILE).write_text(json.dumps({"input_size": SIZE}))
    assert loaders.rnet_input_size(path) == SIZE
    predict = loaders.load_rnet_predictor(path, BFM_LAYOUT)
    big = tf.image.resize(x, [2 * SIZE, 2 * SIZE])
    np.testing.assert_allclose(
        predict(big).numpy(),
        bfm_rnet(tf.image.resize(big, [SIZE, SIZE]), training=False)[0].numpy(), atol=1e-5)
  finally:
    head.set_weights([kernel, bias])
  with pytest.raises(AssetNotFoundError, match="rnet.weights.h5") as err:
    rnet.load_rnet(tmp_path / "missing.weights.h5", BFM_LAYOUT, input_size=SIZE)
  assert "scripts/" not in str(err.value)
  assert loaders.rnet_input_size(tmp_path / "elsewhere" / "rnet.weights.h5") == 224


# --- Deep3DFace's frozen graph, on a synthetic stand-in with the same tensor names ---

_MIX = np.random.RandomState(7).normal(size=(3, 257)).astype(np.float32)


def _write_fake_rnet(path, with_pool=True):
  """input_imgs [B,224,224,3] -> coeff = channel means @ MIX; pool5 = mean of channel 0 * k."""
  graph = tf.Graph()
  with graph.as_default():
    x = tf.compat.v1.placeholder(tf.float32, [None, 224, 224, 3], name="input_imgs")
    means = tf.reduce_mean(x, axis=[1, 2])                                   # [B, 3]
    tf.matmul(means, tf.constant(_MIX), name="coeff")
    if with_pool:
      with tf.compat.v1.name_scope("resnet_v1_50/"):
        first = tf.reduce_mean(x[..., :1], axis=[1, 2], keepdims=True)      # [B, 1, 1, 1]
        tf.multiply(first, tf.reshape(tf.range(2048, dtype=tf.float32), [1, 1, 1, 2048]),
                    name="pool5")
  path.write_bytes(graph.as_graph_def().SerializeToString())
  return path


def test_frozen_rnet_feeds_bgr_and_returns_both_outputs(tmp_path):
  net = rnet_pb.FrozenRNet(_write_fake_rnet(tmp_path / "FaceReconModel.pb"))
  assert net.layout == BFM_LAYOUT and net.coeff_dim == 257 and net.feature_dim == 2048
  rgb = np.zeros((2, 224, 224, 3), np.float32)
  rgb[0, ..., 0], rgb[0, ..., 1], rgb[0, ..., 2] = 10.0, 20.0, 30.0
  rgb[1, :112] = 200.0                               # top half white, bottom black
  coeffs, pooled = net(rgb)
  assert coeffs.shape == (2, 257) and pooled.shape == (2, 2048)
  bgr_means = np.array([[30.0, 20.0, 10.0], [100.0, 100.0, 100.0]], np.float32)
  np.testing.assert_allclose(coeffs.numpy(), bgr_means @ _MIX, rtol=1e-5, atol=1e-3)
  np.testing.assert_allclose(pooled.numpy()[0], 30.0 * np.arange(2048), rtol=1e-6)


def test_frozen_rnet_resizes_other_sizes_and_runs_in_tf_function(tmp_path):
  net = rnet_pb.FrozenRNet(_write_fake_rnet(tmp_path / "FaceReconModel.pb"))
  small = np.zeros((1, 112, 112, 3), np.float32)
  small[..., 2] = 90.0                              # blue
  coeffs = tf.function(lambda x: net(x)[0])(tf.constant(small)).numpy()
  np.testing.assert_allclose(coeffs[0], np.array([90.0, 0.0, 0.0]) @ _MIX, rtol=1e-5, atol=1e-3)
  with pytest.raises(ValueError, match=r"\[B, H, W, 3\]"):
    net(np.zeros((1, 224, 224), np.float32))


def test_frozen_rnet_given_a_missing_file_says_so(tmp_path):
  with pytest.raises(AssetNotFoundError, match="FaceReconModel.pb' not found"):
    rnet_pb.FrozenRNet(tmp_path / "FaceReconModel.pb")


def test_missing_rnet_graph_says_what_and_where_it_goes(tmp_path, monkeypatch):
  with pytest.raises(AssetNotFoundError) as err:
    loaders.load_frozen_rnet(tmp_path / "FaceReconModel.pb")
  message = str(err.value)
  for needle in ("FaceReconModel.pb", "Deep3DFaceReconstruction", "assets/rnet/FaceReconModel.pb"):
    assert needle in message
  assert "scripts/" not in message and " --" not in message
  monkeypatch.setenv("FACEGCN_ASSETS", str(tmp_path))
  with pytest.raises(AssetNotFoundError, match="rnet/FaceReconModel.pb"):
    loaders.locate_rnet_pb(tmp_path)


def test_frozen_rnet_found_on_the_asset_path(tmp_path, monkeypatch):
  (tmp_path / "rnet").mkdir()
  _write_fake_rnet(tmp_path / "rnet" / "FaceReconModel.pb")
  monkeypatch.setenv("FACEGCN_ASSETS", str(tmp_path))
  assert loaders.locate_rnet_pb() == (tmp_path / "rnet" / "FaceReconModel.pb").resolve()
  assert loaders.load_frozen_rnet().path == (tmp_path / "rnet" / "FaceReconModel.pb").resolve()


def test_rnet_predictor_from_a_frozen_graph(tmp_path):
  path = _write_fake_rnet(tmp_path / "FaceReconModel.pb")
  rgb = np.zeros((1, 224, 224, 3), np.float32)
  rgb[..., 0] = 60.0                                 # red
  for source in (path, tmp_path):                   # the file, or the folder holding it
    coeffs = loaders.load_rnet_predictor(source, BFM_LAYOUT)(rgb).numpy()
    np.testing.assert_allclose(coeffs[0], np.array([0.0, 0.0, 60.0]) @ _MIX, rtol=1e-5, atol=1e-3)
  with pytest.raises(ValueError, match="BFM R-Net"):
    loaders.load_rnet_predictor(path, CoeffLayout(3, 3, 3))


def test_frozen_rnet_rejects_wrong_graphs(tmp_path):
  garbage = tmp_path / "garbage.pb"
  garbage.write_bytes(b"\xff\x00 not a graph")
  with pytest.raises(ValueError, match="GraphDef"):
    rnet_pb.FrozenRNet(garbage)
  with pytest.raises(ValueError, match="resnet_v1_50/pool5:0"):
    rnet_pb.FrozenRNet(_write_fake_rnet(tmp_path / "no_pool.pb", with_pool=False))
