"""GCN decoder / refiners / combine net / texture generator and the image critic.

Most tests run on a 5-level hierarchy of an icosphere (2562 -> 641 -> 161 ->
41 -> 11 vertices, built in ~0.2 s); one builds the generator on the
subdivided ICT face (37,280 vertices) and runs a batch.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
import trimesh

from facegcn_tf.graph import hierarchy as hierarchy_lib
from facegcn_tf.networks import combine_net
from facegcn_tf.networks import critic as critic_lib
from facegcn_tf.networks import gcn_blocks
from facegcn_tf.networks import gcn_decoder
from facegcn_tf.networks import gcn_refiner
from facegcn_tf.networks import texture_generator

FEATURES = 24


@pytest.fixture(scope="module")
def sphere():
  mesh = trimesh.creation.icosphere(subdivisions=4)
  return hierarchy_lib.build_hierarchy(np.asarray(mesh.vertices), np.asarray(mesh.faces),
                                       use_cache=False)


def _inputs(num_vertices, batch=2, seed=0):
  rng = np.random.default_rng(seed)
  vis = (rng.random((batch, num_vertices, 1)) > 0.3).astype(np.float32)
  rgb = rng.uniform(-1, 1, (batch, num_vertices, 3)).astype(np.float32) * vis
  return (tf.constant(rng.normal(size=(batch, FEATURES)).astype(np.float32)),
          tf.constant(rng.uniform(-1, 1, (batch, num_vertices, 3)).astype(np.float32)),
          tf.constant(np.concatenate([rgb, vis], -1)))


def _assert_all_gradients(model, loss_fn):
  with tf.GradientTape() as tape:
    loss = loss_fn()
  grads = tape.gradient(loss, model.trainable_variables)
  assert model.trainable_variables
  for var, grad in zip(model.trainable_variables, grads):
    assert grad is not None, f"no gradient reaches {var.path}"
    assert np.all(np.isfinite(grad.numpy())), var.path
    assert np.any(grad.numpy() != 0), f"zero gradient for {var.path}"


# ---- ChebResBlock ---------------------------------------------------------------------------


@pytest.mark.parametrize("fin,units", [(8, 8), (5, 8)])
def test_res_block_is_act_of_skip_when_second_conv_is_zero(sphere, fin, units):
  lap = sphere.laplacians[1]
  block = gcn_blocks.ChebResBlock(units, lap, order=6, activation="elu")
  x = tf.random.normal([2, lap.shape[0], fin])
  block(x)
  assert (block.shortcut is None) == (fin == units)
  block.conv2.kernel.assign(tf.zeros_like(block.conv2.kernel))
  block.conv2.bias.assign(tf.zeros_like(block.conv2.bias))
  skip = x if fin == units else x @ block.shortcut.kernel  # K=1: a per-vertex linear map
  np.testing.assert_allclose(block(x).numpy(), tf.nn.elu(skip).numpy(), atol=1e-5)
  if block.shortcut is not None:
    assert block.shortcut.kernel.shape == (fin, units)


def test_res_block_activation_choice(sphere):
  lap = sphere.laplacians[2]
  x = tf.random.normal([3, lap.shape[0], 4])
  relu = gcn_blocks.ChebResBlock(6, lap, activation="relu")(x).numpy()
  elu = gcn_blocks.ChebResBlock(6, lap, activation="elu")(x).numpy()
  assert relu.shape == elu.shape == (3, lap.shape[0], 6)
  assert relu.min() == 0.0 and relu.max() > 0
  assert elu.min() < 0 and elu.min() > -1
  with pytest.raises(ValueError, match="activation"):
    gcn_blocks.ChebResBlock(6, lap, activation="tanh")


# ---- decoder / refiners / combine ------------------------------------------------------------


@pytest.mark.parametrize("block", ["residual", "plain"])
def test_decoder_shapes_and_levels(sphere, block):
  dec = gcn_decoder.GCNDecoder(sphere, block=block)
  out = dec(tf.random.normal([2, FEATURES]))
  assert out.shape == (2, sphere.num_vertices[0], 3)
  assert out.numpy().min() >= 0  # ends in ReLU
  assert dec.fc.units == sphere.num_vertices[-1] * 32
  # one graph layer per unpool step, each on the next finer level
  assert [u.num_out for u in dec.unpools] == list(sphere.num_vertices[-2::-1])
  assert [layer.num_vertices for layer in dec.graph_layers] == list(sphere.num_vertices[-2::-1])
  units = [layer.units for layer in dec.graph_layers]
  assert units == ([16, 16, 16, 3] if block == "residual" else [16, 16, 16, 16])


def test_decoder_rejects_bad_widths_and_features(sphere):
  with pytest.raises(ValueError, match="widths"):
    gcn_decoder.GCNDecoder(sphere, widths=(32, 16, 16))
  with pytest.raises(ValueError, match="block"):
    gcn_decoder.GCNDecoder(sphere, block="dense")
  dec = gcn_decoder.GCNDecoder(sphere)
  with pytest.raises(ValueError, match=r"\[B, D\]"):
    dec(tf.zeros([2, 3, FEATURES]))


def test_fc_weight_decay_is_the_official_l2_loss(sphere):
  dec = gcn_decoder.GCNDecoder(sphere, fc_weight_decay=5e-4)
  dec(tf.zeros([1, FEATURES]))
  expected = 5e-4 * (tf.nn.l2_loss(dec.fc.kernel) + tf.nn.l2_loss(dec.fc.bias))
  np.testing.assert_allclose(float(tf.add_n(dec.losses)), float(expected), rtol=1e-5)


def test_residual_refiner_structure(sphere):
  ref = gcn_refiner.ResidualRefiner(sphere, activation="elu")
  x = tf.random.normal([2, sphere.num_vertices[0], 7])
  out = ref(x)
  assert out.shape == (2, sphere.num_vertices[0], 3)
  assert [b.units for b in (ref.res_in, ref.res_mid1, ref.res_mid2, ref.res_out1,
                            ref.res_out2)] == [16, 32, 32, 16, 3]
  assert ref.res_mid1.num_vertices == sphere.num_vertices[1]
  assert ref.res_out1.num_vertices == sphere.num_vertices[0]


def test_unet_refiner_skips_and_bottleneck(sphere):
  ref = gcn_refiner.UNetRefiner(sphere, activation="elu", bottleneck=64)
  out = ref(tf.random.normal([2, sphere.num_vertices[0], 7]))
  assert out.shape == (2, sphere.num_vertices[0], 3)
  k = 6
  assert ref.conv_in.conv.kernel.shape == (7 * k, 16) and ref.conv_in.conv.bias is None
  assert [c.units for c in ref.enc] == [16, 32, 64, 128]
  assert ref.fc_down.kernel.shape == (sphere.num_vertices[-1] * 128, 64)
  # decoder steps at levels 3, 2, 1, 0: skips (encoder 64 and 32 ch) on the first two only
  assert [c.conv.kernel.shape[0] for c in ref.dec] == [(128 + 64) * k, (128 + 32) * k,
                                                       64 * k, 32 * k]
  assert [c.units for c in ref.dec] == [128, 64, 32, 16]


def test_make_refiner_by_name(sphere):
  assert isinstance(gcn_refiner.make_refiner("residual", sphere), gcn_refiner.ResidualRefiner)
  assert isinstance(gcn_refiner.make_refiner("unet", sphere), gcn_refiner.UNetRefiner)
  with pytest.raises(ValueError, match="refiner"):
    gcn_refiner.make_refiner("mlp", sphere)


def test_combine_net_is_tanh_of_one_chebconv(sphere):
  comb = combine_net.CombineNet(sphere.laplacians[0])
  n = sphere.num_vertices[0]
  a, b = tf.random.normal([2, n, 3]), tf.random.normal([2, n, 3])
  out = comb([a, b])
  assert out.dtype == tf.float32 and out.shape == (2, n, 3)
  assert comb.conv.kernel.shape == (6 * 6, 3) and comb.conv.bias is None
  np.testing.assert_allclose(out.numpy(), np.tanh(comb.conv(tf.concat([a, b], -1)).numpy()),
                             atol=1e-6)
  big = comb([100 * a, 100 * b]).numpy()
  assert big.min() >= -1 and big.max() <= 1 and np.abs(big).max() > 0.99


# ---- texture generator -------------------------------------------------------------------------


@pytest.mark.parametrize("refiner", ["residual", "unet"])
def test_generator_outputs_and_gradients(sphere, refiner):
  gen = texture_generator.TextureGenerator(sphere, FEATURES, refiner=refiner, activation="elu")
  inputs = _inputs(sphere.num_vertices[0])
  parts = gen.components(inputs)
  assert set(parts) == {"decoded", "refined", "fine"}
  for value in parts.values():
    assert value.shape == (2, sphere.num_vertices[0], 3) and value.dtype == tf.float32
  fine = parts["fine"].numpy()
  assert fine.min() >= -1 and fine.max() <= 1 and np.isfinite(fine).all()
  np.testing.assert_allclose(gen(inputs).numpy(), fine, atol=1e-6)
  _assert_all_gradients(gen, lambda: tf.reduce_sum(tf.square(gen(inputs) - 0.3)))


def test_generator_ablation_flags(sphere):
  inputs = _inputs(sphere.num_vertices[0])
  no_dec = texture_generator.TextureGenerator(sphere, FEATURES, use_decoder=False)
  parts = no_dec.components(inputs)
  assert no_dec.decoder is None and np.all(parts["decoded"].numpy() == 0)
  assert not any("decoder" in v.path for v in no_dec.trainable_variables)
  # the output no longer depends on the features
  other = (tf.random.normal([2, FEATURES]),) + inputs[1:]
  np.testing.assert_allclose(no_dec(other).numpy(), parts["fine"].numpy(), atol=1e-6)
  no_ref = texture_generator.TextureGenerator(sphere, FEATURES, use_refiner=False)
  parts = no_ref.components(inputs)
  assert no_ref.refiner is None and np.all(parts["refined"].numpy() == 0)
  with pytest.raises(ValueError, match="decoder, the refiner"):
    texture_generator.TextureGenerator(sphere, FEATURES, use_decoder=False, use_refiner=False)


def test_generator_rejects_bad_inputs(sphere):
  gen = texture_generator.TextureGenerator(sphere, FEATURES)
  f, c, s = _inputs(sphere.num_vertices[0])
  with pytest.raises(ValueError, match="features"):
    gen((tf.zeros([2, FEATURES + 1]), c, s))
  with pytest.raises(ValueError, match="sampled"):
    gen((f, c, s[..., :3]))
  with pytest.raises(ValueError, match="coarse_albedo"):
    gen((f, c[:, :10], s))
  with pytest.raises(ValueError, match="refiner"):
    texture_generator.TextureGenerator(sphere, FEATURES, refiner="plain")


def test_generator_on_the_subdivided_ict_face():
  from facegcn_tf.morphable.ict import load_ict
  model = load_ict(subdivide=True)
  h = hierarchy_lib.build_hierarchy(model.mean_shape, model.triangles)
  assert h.num_vertices[0] == 37280 and h.num_levels == 5
  gen = texture_generator.TextureGenerator(h, FEATURES, refiner="residual")
  fine = gen(_inputs(h.num_vertices[0], batch=1)).numpy()
  assert fine.shape == (1, 37280, 3)
  assert np.isfinite(fine).all() and np.abs(fine).max() <= 1


# ---- critic --------------------------------------------------------------------------------------


@pytest.mark.parametrize("norm", ["batch", "layer", "none"])
def test_critic_scores_and_gradients(norm):
  critic = critic_lib.ImageCritic(norm=norm)
  images = tf.random.uniform([2, 224, 224, 3], -1, 1)
  scores = critic(images, training=True)
  assert scores.shape == (2,) and scores.dtype == tf.float32
  assert critic.score.kernel.shape == (7, 7, 512, 1)
  assert [c.kernel.shape[:2] for c in critic.convs] == [(1, 1)] + [(3, 3)] * 5
  _assert_all_gradients(critic, lambda: tf.reduce_sum(critic(images, training=True) ** 2))


def test_critic_other_sizes_and_bad_input():
  critic = critic_lib.ImageCritic(norm="none")
  assert critic(tf.zeros([3, 64, 96, 3])).shape == (3,)
  assert critic.score.kernel.shape[:2] == (2, 3)
  with pytest.raises(ValueError, match="built for"):
    critic(tf.zeros([3, 128, 128, 3]))
  with pytest.raises(ValueError, match=r"\[B, H, W, 3\]"):
    critic_lib.ImageCritic()(tf.zeros([1, 64, 64, 4]))
  with pytest.raises(ValueError, match=">= 32"):
    critic_lib.ImageCritic()(tf.zeros([1, 16, 64, 3]))
  with pytest.raises(ValueError, match="norm"):
    critic_lib.ImageCritic(norm="instance")


def test_batchnorm_critic_train_and_inference_modes_differ():
  critic = critic_lib.ImageCritic(norm="batch")
  images = tf.random.uniform([4, 64, 64, 3], -1, 1)
  train = critic(images, training=True).numpy()
  infer = critic(images, training=False).numpy()
  assert not np.allclose(train, infer)


# ---- mixed precision -----------------------------------------------------------------------------


def test_mixed_precision_forward(sphere):
  keras.mixed_precision.set_global_policy("mixed_float16")
  try:
    gen = texture_generator.TextureGenerator(sphere, FEATURES, refiner="unet",
                                             decoder="plain", activation="elu")
    critic = critic_lib.ImageCritic(norm="batch")
    fine = gen(_inputs(sphere.num_vertices[0]))
    scores = critic(tf.random.uniform([2, 64, 64, 3], -1, 1), training=True)
    assert gen.decoder.fc.compute_dtype == "float16"
    assert gen.decoder.fc.kernel.dtype == "float32"
  finally:
    keras.mixed_precision.set_global_policy("float32")
  assert fine.dtype == tf.float32 and scores.dtype == tf.float32
  assert np.isfinite(fine.numpy()).all() and np.abs(fine.numpy()).max() <= 1
  assert np.isfinite(scores.numpy()).all()
