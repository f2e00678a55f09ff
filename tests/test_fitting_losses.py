"""Deep3DFace's losses (fitting.losses) against hand computations on tiny inputs."""

import numpy as np
import pytest
import tensorflow as tf

from facegcn_tf.fitting import losses


def test_landmark_weights_are_20_on_nose_and_inner_mouth():
  w = losses.landmark_weights()
  assert w.shape == (68,)
  assert set(np.flatnonzero(w == 20.0)) == {28, 29, 30, 60, 61, 62, 63, 64, 65, 66, 67}
  assert np.all(w[w != 20.0] == 1.0) and (w == 1.0).sum() == 57


def test_landmark_loss_by_hand():
  target = np.random.default_rng(0).uniform(0, 224, [2, 68, 2]).astype(np.float32)
  predicted = target.copy()
  predicted[0, 29] += [3.0, 4.0]   # weight 20, squared distance 25
  predicted[0, 5] += [1.0, 0.0]    # weight 1, squared distance 1
  predicted[1, 64] += [0.0, -2.0]  # weight 20, squared distance 4
  loss = losses.landmark_loss(predicted, target).numpy()
  np.testing.assert_allclose(loss, [(20 * 25 + 1) / 68, 20 * 4 / 68], rtol=1e-5)
  # Same offsets measured on a 112-px grid are twice as long in 224-px units.
  half = losses.landmark_loss(predicted, target, image_size=112).numpy()
  np.testing.assert_allclose(half, 4 * loss, rtol=1e-5)
  custom = losses.landmark_loss(predicted, target, weights=np.ones(68)).numpy()
  np.testing.assert_allclose(custom, [26 / 68, 4 / 68], rtol=1e-5)


def test_landmark_loss_rejects_wrong_shapes():
  with pytest.raises(ValueError, match="68, 2"):
    losses.landmark_loss(np.zeros([1, 5, 2]), np.zeros([1, 5, 2]))
  with pytest.raises(ValueError, match="positive"):
    losses.landmark_loss(np.zeros([1, 68, 2]), np.zeros([1, 68, 2]), image_size=0)


def test_photometric_loss_by_hand():
  images = np.zeros([2, 2, 2, 3], np.float32)
  rendered = np.zeros([2, 2, 2, 3], np.float32)
  rendered[0, 0, 0] = [30.0, 40.0, 0.0]     # distance 50
  rendered[0, 0, 1] = [0.0, 0.0, 255.0]     # distance 255
  rendered[0, 1, 1] = [255.0, 255.0, 255.0]  # outside the mask: ignored
  mask = np.zeros([2, 2, 2], np.float32)
  mask[0, 0, :] = 1.0
  mask[0, 1, 0] = 1.0                        # a masked pixel that agrees
  rendered[1] = 10.0                         # image 1: empty mask
  loss = losses.photometric_loss(images, rendered, mask).numpy()
  np.testing.assert_allclose(loss, [(50 + 255) / 255 / 3, 0.0], atol=1e-5)
  # Soft weights: the mean is weighted.
  mask[0, 0, 1] = 0.5
  soft = losses.photometric_loss(images, rendered, mask).numpy()
  np.testing.assert_allclose(soft[0], (50 + 0.5 * 255) / 255 / 2.5, atol=1e-5)


def test_photometric_loss_gradient_reaches_the_render_not_the_mask():
  images = tf.zeros([1, 2, 2, 3])
  rendered = tf.Variable(tf.fill([1, 2, 2, 3], 10.0))
  mask = tf.Variable(tf.ones([1, 2, 2]))
  with tf.GradientTape() as tape:
    loss = losses.photometric_loss(images, rendered, mask)
  g_render, g_mask = tape.gradient(loss, [rendered, mask])
  assert np.all(np.isfinite(g_render.numpy())) and np.all(g_render.numpy() > 0)
  assert g_mask is None


def test_identity_loss_by_hand():
  a = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [3.0, 4.0]], np.float32)
  b = np.array([[2.0, 0.0], [0.0, 5.0], [-1.0, 0.0], [4.0, 3.0]], np.float32)
  np.testing.assert_allclose(losses.identity_loss(a, b).numpy(), [0.0, 1.0, 2.0, 1 - 24 / 25],
                             atol=1e-6)


def test_regularization_loss_by_hand():
  loss = losses.regularization_loss([[1.0, 2.0]], [[3.0]], [[0.0, 10.0]], w_id=1.0, w_exp=0.5,
                                    w_tex=0.01).numpy()
  np.testing.assert_allclose(loss, [5.0 + 0.5 * 9.0 + 0.01 * 100.0], rtol=1e-6)


def test_reflectance_loss_is_albedo_variance_on_skin():
  albedo = np.zeros([2, 3, 3], np.float32)
  albedo[0, 0] = [0.2, 0.2, 0.2]
  albedo[0, 1] = [0.4, 0.2, 0.2]
  albedo[0, 2] = [9.0, 9.0, 9.0]   # not skin: ignored
  albedo[1] = 0.5                  # uniform: 0
  skin = np.array([True, True, False])
  # mean (0.3, 0.2, 0.2); deviations ±0.1 in red only: (0.01 + 0.01) / 2 skin vertices.
  np.testing.assert_allclose(losses.reflectance_loss(albedo, skin).numpy(), [0.01, 0.0],
                             atol=1e-7)
  with pytest.raises(ValueError, match="entries"):
    losses.reflectance_loss(albedo, np.ones(4, bool))


def test_gamma_loss_is_zero_for_grey_light_only():
  grey = np.tile(np.linspace(-1, 1, 9), 3)[None].astype(np.float32)
  coloured = grey.copy()
  coloured[0, 0] += 0.3   # red DC term: deviations (0.2, -0.1, -0.1) from the mean
  loss = losses.gamma_loss(np.concatenate([grey, coloured])).numpy()
  np.testing.assert_allclose(loss, [0.0, (0.04 + 0.01 + 0.01) / 27], atol=1e-7)


def test_total_loss_weighs_terms_and_rejects_unknown_names():
  weights = losses.LossWeights()
  assert (weights.photo, weights.landmark, weights.identity, weights.reg, weights.reflectance,
          weights.gamma) == (1.92, 1.6e-3, 0.2, 3e-4, 5.0, 10.0)
  assert (weights.reg_id, weights.reg_exp, weights.reg_tex) == (1.0, 0.8, 1.7e-2)
  terms = {"photo": tf.constant([1.0, 2.0]), "landmark": tf.constant([100.0, 0.0]),
           "gamma": tf.constant([0.1, 0.0])}
  np.testing.assert_allclose(losses.total_loss(terms, weights).numpy(),
                             [1.92 + 0.16 + 1.0, 3.84], rtol=1e-6)
  with pytest.raises(ValueError, match="unknown loss terms"):
    losses.total_loss({"photometric": tf.constant([1.0])}, weights)
  with pytest.raises(ValueError, match="LossWeights.reg"):
    losses.LossWeights(reg=-1.0)
