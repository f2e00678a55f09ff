"""The Keras port of dlib's ResNet-29 face descriptor.

``tests/data/identity_dlib_reference.npz`` holds two 150x150 face chips and
their descriptors computed by dlib itself (dlib-bin 20.0.1,
``face_recognition_model_v1(dlib_face_recognition_resnet_model_v1.dat)
.compute_face_descriptor(chip)``; chips from ``dlib.get_face_chip(img, shape,
150, 0.25)`` with the 5-point shape predictor of face_recognition_models 0.3.0
on skimage's astronaut and matplotlib's Grace Hopper, both public domain).
"""

import pathlib

import numpy as np
import pytest
import tensorflow as tf

from facegcn_tf import assets
from facegcn_tf.assets import identity_weights
from facegcn_tf.errors import AssetNotFoundError
from facegcn_tf.networks import identity_dlib

REFERENCE = pathlib.Path(__file__).parent / "data" / "identity_dlib_reference.npz"


def _converted(name):
  """The named arrays of a converted weight file (skips when setup has not written it)."""
  try:
    path = assets.find_asset(f"identity/{name}")
  except AssetNotFoundError:
    pytest.skip(f"identity/{name} absent: run `python scripts/prepare_assets.py --steps=identity`")
  return identity_weights.load_weights(path)


@pytest.fixture(scope="module")
def model():
  return identity_dlib.frozen_dlib_resnet(_converted(identity_weights.WEIGHTS_FILE))


@pytest.fixture(scope="module")
def reference():
  with np.load(REFERENCE) as z:
    return z["chips"].astype(np.float32), z["descriptors"]


def test_zero_pad_add_follows_dlib_add_prev():
  a = np.arange(1 * 4 * 4 * 2, dtype=np.float32).reshape(1, 4, 4, 2)
  b = np.arange(1 * 3 * 3 * 4, dtype=np.float32).reshape(1, 3, 3, 4) * 100
  out = identity_dlib.ZeroPadAdd()([tf.constant(a), tf.constant(b)]).numpy()
  expected = np.zeros((1, 4, 4, 4), np.float32)
  expected[:, :, :, :2] += a
  expected[:, :3, :3, :] += b
  np.testing.assert_array_equal(out, expected)


def test_channel_affine_scales_and_shifts_each_channel():
  layer = identity_dlib.ChannelAffine()
  layer.build((None, 2, 2, 3))
  layer.weights_.assign([1.0, 2.0, -1.0])
  layer.biases.assign([0.0, 1.0, 0.5])
  x = np.ones((1, 2, 2, 3), np.float32)
  np.testing.assert_allclose(layer(x).numpy()[0, 0, 0], [1.0, 3.0, -0.5])


def test_architecture_layer_and_parameter_counts():
  net = identity_dlib.build_dlib_resnet()
  kinds = [type(layer).__name__ for layer in net.layers]
  assert kinds.count("Conv2D") == 29
  assert kinds.count("ChannelAffine") == 29
  assert kinds.count("Dense") == 1
  assert net.count_params() == 5_614_592
  assert net.output_shape == (None, 128)
  # dlib's spatial sizes: 150 -> 72 -> 35 (stem) -> 17 -> 8 -> 4 -> 2 -> mean.
  sizes = [net.get_layer(f"{b}_add").output.shape[1]
           for b in ("conv32_3", "conv64_down", "conv128_down", "conv256_down", "conv256_down_out")]
  assert sizes == [35, 17, 8, 4, 2]


def test_reproduces_dlib_descriptors(model, reference):
  chips, expected = reference
  got = model(chips).numpy()
  np.testing.assert_allclose(got, expected, atol=1e-4)
  assert np.linalg.norm(got[0] - got[1]) > 0.6       # astronaut vs Grace Hopper


def test_tfjs_uint8_weights_stay_close_to_dlib(reference):
  net = identity_dlib.frozen_dlib_resnet(_converted(identity_weights.TFJS_WEIGHTS_FILE))
  chips, expected = reference
  dist = np.linalg.norm(net(chips).numpy() - expected, axis=-1)
  assert np.all(dist < 0.08), dist        # measured 0.036-0.039
  assert np.all(dist > 1e-4), dist        # it is not the same file


def test_model_is_frozen_but_differentiable(model, reference):
  chips, _ = reference
  assert not model.trainable_weights
  x = tf.Variable(chips[:1])
  with tf.GradientTape() as tape:
    y = tf.reduce_sum(model(x))
  g = tape.gradient(y, x).numpy()
  assert np.isfinite(g).all() and np.count_nonzero(g) > 0.5 * g.size


def test_weights_that_do_not_fit_are_refused():
  with pytest.raises(ValueError, match="do not fit"):
    identity_dlib.frozen_dlib_resnet({"fc": np.zeros((256, 128), np.float32)})
  net = identity_dlib.build_dlib_resnet()
  weights = {n: np.zeros(v.shape, np.float32) for v, n in identity_dlib._layer_assignments(net)}
  weights["fc"] = np.zeros((128, 256), np.float32)
  with pytest.raises(ValueError, match="fc: shape"):
    identity_dlib.set_weights(net, weights)
