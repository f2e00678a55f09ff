"""facegcn_tf.metrics: the one home of the quality figures."""

import numpy as np
import pytest
import tensorflow as tf

from facegcn_tf import metrics


def test_masked_psnr_known_value_batched_and_in_tf_function():
  image = np.zeros([2, 4, 4, 3], np.float32)
  rendered = np.zeros_like(image)
  rendered[0] += 25.5          # error 25.5 everywhere: PSNR = 20 log10(255 / 25.5) = 20 dB
  rendered[1, :2] += 255.0     # error only in the top half
  mask = np.ones([2, 4, 4], np.float32)
  mask[1, :2] = 0.0            # ... which the mask leaves out
  psnr = metrics.masked_psnr(image, rendered, mask).numpy()
  assert psnr[0] == pytest.approx(20.0, abs=1e-4)
  assert psnr[1] > 100.0
  traced = tf.function(metrics.masked_psnr)(image, rendered, mask).numpy()
  np.testing.assert_allclose(traced, psnr, rtol=1e-6)


def test_masked_psnr_is_range_invariant_clips_and_is_nan_when_empty():
  rng = np.random.default_rng(0)
  photo = rng.uniform(0, 1, [8, 8, 3]).astype(np.float32)
  render = np.clip(photo + rng.normal(0, 0.1, photo.shape), -0.5, 1.5).astype(np.float32)
  mask = (rng.uniform(size=[8, 8]) > 0.3).astype(np.float32)
  unit = float(metrics.masked_psnr(photo, render, mask, peak=1.0))
  bytes_ = float(metrics.masked_psnr(255 * photo, 255 * render, mask))
  signed = float(metrics.masked_psnr(2 * photo - 1, 2 * render - 1, mask, peak=2.0,
                                     value_range=(-1.0, 1.0)))
  assert unit == pytest.approx(bytes_, abs=1e-3) == pytest.approx(signed, abs=1e-3)
  clipped = float(metrics.masked_psnr(photo, np.clip(render, 0, 1), mask, peak=1.0))
  assert unit == pytest.approx(clipped, abs=1e-4)   # the render is clipped to the range
  assert np.isnan(float(metrics.masked_psnr(photo, render, np.zeros([8, 8]), peak=1.0)))


def test_masked_ssim_is_one_for_the_photo_and_lower_for_noise():
  rng = np.random.default_rng(1)
  photo = rng.uniform(0, 1, [32, 32, 3])
  mask = np.ones([32, 32])
  assert metrics.masked_ssim(photo, photo, mask) == pytest.approx(1.0, abs=1e-6)
  noisy = np.clip(photo + rng.normal(0, 0.2, photo.shape), 0, 1)
  assert metrics.masked_ssim(photo, noisy, mask) < 0.9
  assert np.isnan(metrics.masked_ssim(photo, noisy, np.zeros([32, 32])))


def test_landmark_nme_normalises_by_the_outer_eye_corners():
  rng = np.random.default_rng(2)
  target = rng.uniform(0, 100, [68, 2])
  left, right = metrics.OUTER_EYE_CORNERS
  target[left], target[right] = [30.0, 50.0], [70.0, 50.0]   # 40 px apart
  predicted = target + np.array([4.0, 0.0])                  # every point 4 px off
  assert metrics.landmark_nme(predicted, target) == pytest.approx(0.1)
  # Scale-free: the same error at twice the size is the same NME.
  assert metrics.landmark_nme(2 * predicted, 2 * target) == pytest.approx(0.1)
  with pytest.raises(ValueError, match="68, 2"):
    metrics.landmark_nme(predicted[:5], target[:5])


def test_identity_distance_is_l2_with_a_finite_gradient_at_zero():
  a = tf.constant([[3.0, 4.0], [1.0, 1.0]])
  b = tf.constant([[0.0, 0.0], [1.0, 1.0]])
  np.testing.assert_allclose(metrics.identity_distance(a, b).numpy(), [5.0, 0.0], atol=1e-5)
  with tf.GradientTape() as tape:
    tape.watch(a)
    d = tf.reduce_sum(metrics.identity_distance(a, b))
  assert np.all(np.isfinite(tape.gradient(d, a).numpy()))
