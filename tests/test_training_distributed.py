"""The GCN and R-Net trainers under MirroredStrategy (two logical CPUs) and mixed bfloat16.

Logical devices are fixed when TF initialises, so the two-replica runs happen in a fresh
process. Each replica gets half of the global batch; the global batch is two copies of a
two-example batch, so every per-replica statistic (the R-Net's BatchNorm, the ratio-style
losses Σ M d / Σ M) equals the single-device one and the losses must agree to float
precision; a replica fed the wrong half would change them.
"""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from facegcn_tf.morphable.ict import load_ict
from facegcn_tf.training import coarse_fits
from facegcn_tf.training import gcn_trainer
from facegcn_tf.training import runtime as rt
from facegcn_tf.training import synthetic_records

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_records(folder):
  """Two synthetic ICT-coarse faces and their true coefficients as the coarse cache."""
  model = load_ict(subdivide=False)
  written = synthetic_records.write_records(folder, model, count=2, shard_size=2)
  cache = os.path.join(folder, f"coarse_{model.name}")
  os.makedirs(cache)
  coarse_fits.write_cache_file(os.path.join(cache, "faces-00000.npz"), model.name, model.layout,
                               written["names"], list(written["faces"]["coeffs"]))
  return written["pattern"]


def gcn_trainer_for(out_dir, pattern, strategy=None, **changes):
  """A tiny GCN trainer (GAN on, one critic step, traced steps)."""
  keras.utils.set_random_seed(0)
  runtime = rt.RuntimeConfig(output_dir=str(out_dir), checkpoint_every=0, summary_every=0,
                             image_summary_every=0, progress=False, seed=5,
                             mixed_precision=changes.pop("mixed_precision", False),
                             mixed_policy=changes.pop("mixed_policy", None))
  settings = dict(runtime=runtime, data=pattern, batch_size=2, steps=2, learning_rate=1e-3,
                  face_model="ict_coarse", image_size=64, decoder_widths="8,8,8,8",
                  refiner_widths="8,8", order=2, ramp_epochs=1.0, critic_steps=1,
                  shuffle_buffer=2)
  settings.update(changes)
  return gcn_trainer.GCNTrainer(gcn_trainer.GCNTrainConfig(**settings),
                                face_model=load_ict(subdivide=False), strategy=strategy)


_SCRIPT = textwrap.dedent("""
    import os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    sys.path.insert(0, {repo!r}); sys.path.insert(0, {tests!r})
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras, numpy as np
    import test_training_distributed as t
    from facegcn_tf.training import runtime as rt
    from facegcn_tf.training import rnet_trainer as rtr
    from facegcn_tf.morphable.ict import load_ict
    from facegcn_tf.render.camera import Camera
    from facegcn_tf.render.random_faces import FacePrior, random_coefficients
    from facegcn_tf.render.renderer import FaceRenderer
    mirrored = rt.make_strategy(["/cpu:0", "/cpu:1"])
    assert mirrored.num_replicas_in_sync == 2
    out = {out!r}

    def twice(batch):
      return {{k: tf.concat([v, v], axis=0) for k, v in batch.items()}}

    # ---- GCN: generator update (all loss terms on: epoch 0.5 of a 1-epoch ramp) + critic.
    pattern = t.make_records(os.path.join(out, "records"))
    results = {{}}
    for name, strategy in (("two", mirrored), ("one", None)):
      trainer = t.gcn_trainer_for(os.path.join(out, "gcn_" + name), pattern, strategy,
                                  batch_size=4)
      trainer.runtime.epoch.assign(0.5)
      first = trainer.prepare_batch(next(trainer.iterator))
      batch = {{k: v[:2] for k, v in first.items()}}      # the same 2 faces, twice
      batch = twice(batch)
      assert trainer.critic_active()
      outputs = trainer.step(rt.distribute_batch(trainer.runtime.strategy, batch))
      results[name] = ({{k: float(v) for k, v in outputs.items()
                        if k.startswith(("loss", "critic")) and np.ndim(v) == 0}},
                       [w.numpy() for w in trainer.generator.weights])
    (two, w2), (one, w1) = results["two"], results["one"]
    for key in ("loss", "loss/pixel", "loss/identity", "loss/adversarial",
                "loss/vertex_albedo", "loss/vertex_sampled"):
      np.testing.assert_allclose(two[key], one[key], rtol=2e-5, atol=1e-6, err_msg=key)
    for a, b in zip(w2, w1):
      np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    assert all(np.isfinite(v) for v in two.values()) and "critic/gradient_penalty" in two
    print("gcn loss", one["loss"], two["loss"])

    # ---- R-Net: one step: its loss (before the update) and the updated network's output.
    model = load_ict(subdivide=False)
    renderer = FaceRenderer(model, Camera().resized(64))
    coeffs = random_coefficients(model.layout, 2, 1, FacePrior(max_yaw=20.0))
    rendered = renderer.render(tf.constant(coeffs), background=0.45)
    faces = {{"image": tf.clip_by_value(rendered.image, 0, 1) * 255.0, "mask": rendered.mask,
             "landmarks": renderer.landmarks(rendered.geometry)}}
    faces = twice(faces)
    rnet = {{}}
    for name, strategy in (("two", mirrored), ("one", None)):
      keras.utils.set_random_seed(0)
      runtime = rt.RuntimeConfig(output_dir=os.path.join(out, "rnet_" + name),
                                 checkpoint_every=0, summary_every=0, image_summary_every=0,
                                 progress=False)
      config = rtr.RNetTrainConfig(runtime=runtime, data="unused", batch_size=4, steps=1,
                                   learning_rate=2e-5, image_size=64, identity="none",
                                   face_model="ict_coarse")
      trainer = rtr.RNetTrainer(config, dataset=tf.data.Dataset.from_tensors(faces).repeat(),
                                face_model=model, strategy=strategy)
      result = trainer.train()
      rnet[name] = (result.last_scalars["loss"], trainer.model(faces["image"][:2])[0].numpy())
    np.testing.assert_allclose(rnet["two"][0], rnet["one"][0], rtol=2e-5)
    np.testing.assert_allclose(rnet["two"][1], rnet["one"][1], rtol=1e-3, atol=1e-4)
    print("rnet loss", rnet["one"][0], rnet["two"][0])
    print("OK")
""")


def test_gcn_and_rnet_trainers_on_two_replicas_match_one_device(tmp_path):
  script = _SCRIPT.format(repo=REPO, tests=os.path.dirname(os.path.abspath(__file__)),
                          out=str(tmp_path))
  proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                        timeout=1200, cwd=REPO)
  assert proc.returncode == 0, proc.stderr[-4000:]
  assert proc.stdout.strip().endswith("OK"), proc.stdout[-2000:]


def test_mixed_bfloat16_gcn_step_with_wgan_gp_is_finite(tmp_path):
  pattern = make_records(str(tmp_path / "records"))
  trainer = gcn_trainer_for(tmp_path / "run", pattern, mixed_precision=True,
                            mixed_policy="mixed_bfloat16")
  assert trainer.runtime.mixed_policy == "mixed_bfloat16"
  assert trainer.generator.dtype_policy.name == "mixed_bfloat16"
  assert trainer.critic.dtype_policy.name == "mixed_bfloat16"
  assert not rt.is_loss_scale_optimizer(trainer.generator_optimizer)  # bfloat16: no scaling
  before = [w.numpy() for w in trainer.critic.weights]
  result = trainer.train()   # step 0: generator only; step 1 (epoch 1): critic with GP too
  assert result.last_step == 2
  scalars = result.last_scalars
  for key in ("loss", "loss/pixel", "loss/adversarial", "critic/loss",
              "critic/gradient_penalty", "critic/wasserstein"):
    assert np.isfinite(scalars[key]), (key, scalars)
  assert scalars["critic/gradient_penalty"] > 0
  assert all(w.dtype == tf.float32 for w in trainer.generator.trainable_variables)
  after = [w.numpy() for w in trainer.critic.weights]
  assert any(not np.array_equal(a, b) for a, b in zip(before, after))  # the critic trained
  assert all(np.all(np.isfinite(w)) for w in after)


def test_mixed_policy_is_validated():
  with pytest.raises(ValueError, match="mixed_policy"):
    rt.RuntimeConfig(output_dir="x", mixed_policy="float8")
  assert rt.resolve_mixed_policy(None) == "mixed_float16"
  assert rt.resolve_mixed_policy("mixed_float16") == "mixed_float16"
