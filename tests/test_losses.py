"""Losses (facegcn_tf.refinement.losses) and schedules (facegcn_tf.training.schedule)."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from facegcn_tf.refinement import losses
from facegcn_tf.training import schedule


class LinearCritic(keras.Model):
  """D(x) = Σ w·x per sample; records the inputs it sees (eager only)."""

  def __init__(self, w):
    super().__init__()
    self.w = tf.constant(w, tf.float32)
    self.seen = []

  def call(self, x, training=None):
    self.seen.append(x)
    return tf.reduce_sum(x * self.w, axis=[1, 2, 3])


def _images(batch=3, size=4, seed=0):
  rng = np.random.default_rng(seed)
  return tf.constant(rng.uniform(-1, 1, (batch, size, size, 3)).astype(np.float32))


# ---- pixel / identity / vertex ----------------------------------------------------------------


def test_masked_pixel_loss_by_hand():
  image = np.zeros((1, 2, 2, 3), np.float32)
  render = np.zeros((1, 2, 2, 3), np.float32)
  render[0, 0, 0] = [3, 4, 0]      # distance 5, mean abs 7/3
  render[0, 0, 1] = [1, 0, 0]      # distance 1, mean abs 1/3
  render[0, 1, 1] = [100, 0, 0]    # outside the mask
  mask = np.array([[[1, 1], [1, 0]]], np.float32)  # 3 pixels, one with zero error
  assert float(losses.masked_pixel_loss(image, render, mask)) == pytest.approx((5 + 1 + 0) / 3)
  assert float(losses.masked_pixel_loss(image, render, mask[..., None], norm="l1")) == \
      pytest.approx((7 / 3 + 1 / 3) / 3)
  assert float(losses.masked_pixel_loss(image, render, np.zeros_like(mask))) == 0.0
  with pytest.raises(ValueError, match="mask"):
    losses.masked_pixel_loss(image, render, np.ones((1, 3, 3), np.float32))
  with pytest.raises(ValueError, match="norm"):
    losses.masked_pixel_loss(image, render, mask, norm="l3")


def test_masked_pixel_loss_gradient_is_finite_at_zero_error():
  image = tf.Variable(tf.zeros([1, 4, 4, 3]))
  with tf.GradientTape() as tape:
    loss = losses.masked_pixel_loss(image, tf.zeros([1, 4, 4, 3]), tf.ones([1, 4, 4]))
  grad = tape.gradient(loss, image).numpy()
  assert np.isfinite(grad).all()


def test_identity_loss_is_one_minus_cosine():
  a = np.array([[1.0, 0.0], [2.0, 2.0], [0.0, 3.0]], np.float32)
  b = np.array([[5.0, 0.0], [-1.0, -1.0], [1.0, 0.0]], np.float32)
  # cosines 1, -1, 0 -> distances 0, 2, 1
  assert float(losses.identity_loss(a, b)) == pytest.approx(1.0)
  with pytest.raises(ValueError, match="same shape"):
    losses.identity_loss(a, b[:, :1])


def test_vertex_loss_l2_l1_and_weights():
  a = np.zeros((1, 3, 3), np.float32)
  b = np.array([[[3, 4, 0], [0, 0, 0], [1, 2, 2]]], np.float32)  # norms 5, 0, 3
  assert float(losses.vertex_loss(a, b)) == pytest.approx(8 / 3)
  assert float(losses.vertex_loss(a, b, norm="l1")) == pytest.approx((7 / 3 + 0 + 5 / 3) / 3)
  w = np.array([[1, 1, 0]], np.float32)
  assert float(losses.vertex_loss(a, b, weights=w)) == pytest.approx(5 / 2)
  assert float(losses.vertex_loss(a, b, weights=w[0])) == pytest.approx(5 / 2)
  assert float(losses.vertex_loss(a, b, weights=w[..., None], norm="l1")) == \
      pytest.approx(7 / 3 / 2)
  assert float(losses.vertex_loss(a, b, weights=np.zeros((1, 3)))) == 0.0
  with pytest.raises(ValueError, match="weights"):
    losses.vertex_loss(a, b, weights=np.ones((1, 4)))


# ---- WGAN-GP ----------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [0.05, 1.0, 3.0])
def test_gradient_penalty_of_a_linear_critic(scale):
  rng = np.random.default_rng(1)
  w = rng.normal(size=(4, 4, 3)).astype(np.float32)
  w *= scale / np.linalg.norm(w)
  critic = LinearCritic(w)
  real, fake = _images(seed=1), _images(seed=2)
  for eps in (tf.constant([[[[0.1]]], [[[0.5]]], [[[0.9]]]]), 0.3):
    gp = losses.gradient_penalty(critic, real, fake, eps)
    assert float(gp) == pytest.approx((scale - 1.0) ** 2, rel=1e-5, abs=1e-6)


def test_critic_loss_value_and_sign():
  rng = np.random.default_rng(2)
  w = rng.normal(size=(4, 4, 3)).astype(np.float32)
  critic = LinearCritic(w)
  real, fake = _images(seed=3), _images(seed=4)
  d_real = np.mean(np.sum(real.numpy() * w, axis=(1, 2, 3)))
  d_fake = np.mean(np.sum(fake.numpy() * w, axis=(1, 2, 3)))
  gp = (np.linalg.norm(w) - 1.0) ** 2
  loss, terms = losses.critic_loss(critic, real, fake, gp_weight=10.0, return_terms=True)
  assert float(loss) == pytest.approx(d_fake - d_real + 10 * gp, rel=1e-5)
  assert float(terms["wasserstein"]) == pytest.approx(d_fake - d_real, rel=1e-5, abs=1e-5)
  # a critic that scores real images higher than fake ones has the lower loss
  swapped = losses.critic_loss(critic, fake, real, gp_weight=0.0)
  assert (float(loss) - 10 * gp < float(swapped)) == (d_real > d_fake)
  assert float(losses.generator_adversarial_loss(critic, fake)) == pytest.approx(-d_fake,
                                                                                  rel=1e-5)


def test_interpolates_use_one_epsilon_per_sample_or_per_batch():
  real, fake = tf.ones([4, 4, 4, 3]), tf.zeros([4, 4, 4, 3])
  for per_sample in (True, False):
    critic = LinearCritic(np.ones((4, 4, 3), np.float32))
    losses.critic_loss(critic, real, fake, per_sample=per_sample)
    x_hat = critic.seen[-1].numpy()  # real, fake, then the interpolates
    eps = x_hat.reshape(4, -1)
    assert np.all(eps == eps[:, :1])       # one ε per image
    assert np.all((eps >= 0) & (eps <= 1))
    assert (len(np.unique(eps[:, 0])) == 4) == per_sample


def test_critic_loss_trains_the_critic_not_the_generator():
  critic = keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(1)])
  real = _images(batch=2)
  fake = tf.Variable(_images(batch=2, seed=5))
  critic(real)
  with tf.GradientTape() as tape:
    loss = losses.critic_loss(critic, real, fake)
  grads = tape.gradient(loss, critic.trainable_variables + [fake])
  assert all(g is not None for g in grads[:-1]) and grads[-1] is None
  with tf.GradientTape() as tape:
    loss = losses.generator_adversarial_loss(critic, fake)
  assert tape.gradient(loss, fake) is not None


def test_critic_loss_second_order_gradients_reach_weights_through_the_penalty():
  critic = keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(1, use_bias=False)])
  real, fake = _images(batch=2), _images(batch=2, seed=7)
  critic(real)
  kernel = critic.trainable_variables[0]
  with tf.GradientTape() as tape:
    gp = losses.gradient_penalty(critic, real, fake, 0.5)
  grad = tape.gradient(gp, kernel).numpy()
  norm = np.linalg.norm(kernel.numpy())
  np.testing.assert_allclose(grad, 2 * (norm - 1) * kernel.numpy() / norm, rtol=1e-4, atol=1e-6)


# ---- official-code variants -------------------------------------------------------------------


def test_projection_loss_by_hand():
  lit_fine = np.array([[[1, 1, 1], [0, 0, 0]]], np.float32)
  sampled = np.array([[[0, 1, 1], [9, 9, 9]]], np.float32)
  vis = np.array([[1, 0]], np.float32)
  lit_coarse = np.array([[[5, 5, 5], [0.5, 0.5, 0.5]]], np.float32)
  # visible: |1-0| over 6 elements; invisible: 3 * 0.5 over 6 elements
  expected = 1 / 6 + 0.3 * 1.5 / 6
  assert float(losses.projection_loss(lit_fine, sampled, vis, lit_coarse)) == \
      pytest.approx(expected)
  assert float(losses.projection_loss(lit_fine, sampled, vis[..., None], lit_coarse,
                                      invisible_weight=0.0)) == pytest.approx(1 / 6)


def test_symmetry_loss():
  rng = np.random.default_rng(3)
  pairs = np.array([[0, 3], [1, 4], [2, 5]])
  half = rng.uniform(-1, 1, (2, 3, 3)).astype(np.float32)
  symmetric = np.concatenate([half, half, rng.uniform(-1, 1, (2, 2, 3))], 1).astype(np.float32)
  assert float(losses.symmetry_loss(symmetric, pairs)) == 0.0
  broken = symmetric.copy()
  broken[0, 4] += [3, 4, 0]  # one of 6 pair distances becomes 5
  assert float(losses.symmetry_loss(broken, pairs)) == pytest.approx(5 / 6)
  with pytest.raises(ValueError, match="pairs"):
    losses.symmetry_loss(symmetric, np.array([[0, 9]]))


def test_skin_variance_loss():
  albedo = np.zeros((2, 5, 3), np.float32)
  albedo[:, 3:] = np.random.default_rng(4).uniform(-1, 1, (2, 2, 3))  # non-skin varies
  albedo[0, :3] = 0.25
  albedo[1, :3] = -0.5       # constant per image: zero variance even though images differ
  mask = np.array([True, True, True, False, False])
  assert float(losses.skin_variance_loss(albedo, mask)) == pytest.approx(0.0, abs=1e-7)
  albedo[1, :3, 0] = [0.0, 1.0, 2.0]  # variance 2/3 in one of 2x3 (image, channel) cells
  assert float(losses.skin_variance_loss(albedo, np.arange(3))) == pytest.approx(2 / 3 / 6)
  with pytest.raises(ValueError, match="no vertices"):
    losses.skin_variance_loss(albedo, np.zeros(5, bool))


# ---- total generator loss ---------------------------------------------------------------------


@pytest.fixture
def batch():
  rng = np.random.default_rng(6)
  b, v = 2, 7
  vis = (rng.random((b, v, 1)) > 0.4).astype(np.float32)
  mask = (rng.random((b, 8, 8)) > 0.5).astype(np.float32)
  return dict(
      coarse_albedo=rng.uniform(-1, 1, (b, v, 3)).astype(np.float32),
      fine_albedo=rng.uniform(-1, 1, (b, v, 3)).astype(np.float32),
      lit_fine=rng.uniform(-1, 1, (b, v, 3)).astype(np.float32),
      sampled=np.concatenate([rng.uniform(-1, 1, (b, v, 3)) * vis, vis], -1).astype(np.float32),
      image=rng.uniform(-1, 1, (b, 8, 8, 3)).astype(np.float32),
      rendering=rng.uniform(-1, 1, (b, 8, 8, 3)).astype(np.float32),
      pixel_mask=mask,
      real_features=rng.normal(size=(b, 16)).astype(np.float32),
      fake_features=rng.normal(size=(b, 16)).astype(np.float32),
      fake_scores=rng.normal(size=(b,)).astype(np.float32),
      lit_coarse=rng.uniform(-1, 1, (b, v, 3)).astype(np.float32),
      symmetry_pairs=np.array([[0, 1], [2, 3]]),
      skin_mask=np.array([1, 1, 1, 0, 0, 1, 0], bool))


def test_total_loss_paper_formula(batch):
  s1, s4 = 0.3, 0.7
  terms = losses.total_generator_loss(sigma1=s1, sigma4=s4, **batch)
  pix = losses.masked_pixel_loss(batch["image"], batch["rendering"], batch["pixel_mask"])
  ident = losses.identity_loss(batch["real_features"], batch["fake_features"])
  adv = -np.mean(batch["fake_scores"])
  v1 = losses.vertex_loss(batch["fine_albedo"], batch["coarse_albedo"])
  v2 = losses.vertex_loss(batch["lit_fine"], batch["sampled"][..., :3],
                          weights=batch["sampled"][..., 3])
  expected = s1 * (pix + 0.2 * ident + 1e-3 * adv) + s4 * (v1 + v2)
  assert float(terms["total"]) == pytest.approx(float(expected), rel=1e-6)
  assert float(terms["vertex_sampled"]) == pytest.approx(float(v2))
  assert "projection" not in terms and "symmetry" not in terms
  at_start = losses.total_generator_loss(sigma1=0.0, sigma4=1.0, **batch)
  assert float(at_start["total"]) == pytest.approx(float(v1 + v2), rel=1e-6)


def test_total_loss_official_variant(batch):
  s1, s4 = 0.4, 0.6
  cfg = dataclasses.replace(losses.OFFICIAL_LOSS, adversarial=True)  # code's --gan
  terms = losses.total_generator_loss(sigma1=s1, sigma4=s4, config=cfg, regularization=0.5,
                                      **batch)
  proj = losses.projection_loss(batch["lit_fine"], batch["sampled"][..., :3],
                                batch["sampled"][..., 3], batch["lit_coarse"])
  ident = losses.identity_loss(batch["real_features"], batch["fake_features"])
  sym = losses.symmetry_loss(batch["fine_albedo"], batch["symmetry_pairs"])
  var = losses.skin_variance_loss(batch["fine_albedo"], batch["skin_mask"])
  refine = np.mean(np.abs(batch["fine_albedo"] - batch["coarse_albedo"]))
  adv = -np.mean(batch["fake_scores"])
  expected = (s4 * refine + s1 * (proj + 0.2 * ident + 0.5 * sym + 0.01 * var)
              + 1e-3 * adv + 0.5)
  assert float(terms["total"]) == pytest.approx(float(expected), rel=1e-6)
  assert "pixel" in terms and "vertex_sampled" not in terms  # L_pix only logged


def test_total_loss_needs_the_inputs_of_its_terms(batch):
  partial = {k: v for k, v in batch.items() if k != "fake_scores"}
  with pytest.raises(ValueError, match="fake_scores"):
    losses.total_generator_loss(sigma1=1.0, sigma4=0.0, **partial)
  partial = {k: v for k, v in batch.items() if k != "lit_coarse"}
  with pytest.raises(ValueError, match="lit_coarse"):
    losses.total_generator_loss(sigma1=1.0, sigma4=0.0, config=losses.OFFICIAL_LOSS, **partial)
  with pytest.raises(ValueError, match="photometric"):
    losses.GeneratorLossConfig(photometric="perceptual")


def test_total_loss_gradient_reaches_the_fine_albedo(batch):
  fine = tf.Variable(batch.pop("fine_albedo"))
  with tf.GradientTape() as tape:
    terms = losses.total_generator_loss(sigma1=0.5, sigma4=0.5, fine_albedo=fine, **batch)
  grad = tape.gradient(terms["total"], fine).numpy()
  assert np.isfinite(grad).all() and np.any(grad != 0)


# ---- schedules --------------------------------------------------------------------------------

EPOCHS = [0.0, 0.5, 2.5, 5.0, 10.0]


@pytest.mark.parametrize("variant,sigma1,sigma4", [
    ("paper", [0.0, 0.1, 0.5, 1.0, 1.0], [1.0, 0.9, 0.5, 0.0, 0.0]),
    ("official", [0.0, 0.1, 0.5, 1.0, 1.0], [1.0, 0.9, 0.5, 0.2, 0.2]),
])
def test_sigma_schedule_values(variant, sigma1, sigma4):
  for epoch, s1, s4 in zip(EPOCHS, sigma1, sigma4):
    got = schedule.sigma_schedule(epoch, variant)
    assert isinstance(got[0], float)
    assert got == pytest.approx((s1, s4))
    tensor = schedule.sigma_schedule(tf.constant(epoch), variant)
    assert tensor[0].dtype == tf.float32
    assert [float(t) for t in tensor] == pytest.approx([s1, s4])
  traced = tf.function(lambda e: schedule.sigma_schedule(e, variant))
  assert [float(t) for t in traced(tf.constant(2.5))] == pytest.approx(
      [sigma1[2], sigma4[2]])


def test_sigma_schedule_ramp_length_and_errors():
  assert schedule.sigma_schedule(5.0, "paper", ramp_epochs=20) == pytest.approx((0.25, 0.75))
  with pytest.raises(ValueError, match="variant"):
    schedule.sigma_schedule(1.0, "linear")
  with pytest.raises(ValueError, match="epoch"):
    schedule.sigma_schedule(-1.0)
  with pytest.raises(ValueError, match="ramp_epochs"):
    schedule.sigma_schedule(1.0, ramp_epochs=0)


def test_learning_rate_schedule_is_a_staircase_per_epoch():
  lr = schedule.learning_rate_schedule(steps_per_epoch=100)
  assert isinstance(lr, keras.optimizers.schedules.LearningRateSchedule)
  for step, expected in [(0, 1e-4), (99, 1e-4), (100, 0.98e-4), (250, 1e-4 * 0.98**2),
                         (1000, 1e-4 * 0.98**10)]:
    assert float(lr(step)) == pytest.approx(expected, rel=1e-6)
  with pytest.raises(ValueError, match="steps_per_epoch"):
    schedule.learning_rate_schedule(0)
