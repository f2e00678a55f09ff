"""The shared training runtime on a tiny regression model: loop, checkpoints and exact
resume, NaN guard, summaries, mixed precision, replica splitting, config overrides."""

import dataclasses
import glob
import os
import subprocess
import sys
import textwrap
from typing import Optional

import keras
import numpy as np
import pytest
import tensorflow as tf

from facegcn_tf.training import runtime as rt

TRUE_W = np.array([[1.0], [-2.0], [0.5]], np.float32)


def _dataset(nan_at_batch: Optional[int] = None, seed: int = 0):
  rng = np.random.RandomState(seed)
  x = rng.normal(size=(64, 3)).astype(np.float32)
  y = x @ TRUE_W + 0.3
  ds = tf.data.Dataset.from_tensor_slices({"x": x, "y": y}).shuffle(64, seed=seed).repeat()
  ds = ds.batch(8, drop_remainder=True)
  if nan_at_batch is not None:
    def poison(i, batch):
      bad = tf.fill(tf.shape(batch["x"]), np.float32(np.nan))
      return {"x": tf.where(i == nan_at_batch, bad, batch["x"]), "y": batch["y"]}
    ds = ds.enumerate().map(poison)
  return ds


class _Run:
  """A linear model trained by the runtime."""

  def __init__(self, out_dir, dataset=None, strategy=None, optimizer=None, **config):
    config.setdefault("progress", False)
    self.runtime = rt.TrainingRuntime(rt.RuntimeConfig(output_dir=str(out_dir), **config),
                                      strategy)
    with self.runtime.scope():
      with self.runtime.policy_scope():
        self.model = keras.Sequential([keras.Input((3,)),
                                       keras.layers.Dense(1, kernel_initializer="zeros")])
      self.optimizer = self.runtime.wrap_optimizer(optimizer or keras.optimizers.Adam(0.1))
      self.optimizer.build(self.model.trainable_variables)
    self.iterator = iter(dataset if dataset is not None else _dataset())
    self.runtime.track(model=self.model, optimizer=self.optimizer, data=self.iterator)
    self.step_fn = self.runtime.distributed_step(self.replica_step)

  def replica_step(self, batch):
    def loss_fn():
      pred = tf.cast(self.model(batch["x"], training=True), tf.float32)
      return tf.reduce_mean(tf.square(pred - batch["y"])), pred
    loss, pred, finite = self.runtime.minimize(self.optimizer, loss_fn,
                                               self.model.trainable_variables)
    image = tf.tile(tf.reshape(tf.sigmoid(pred[:1]), [1, 1, 1, 1]), [1, 4, 4, 3])
    return {"loss": loss, "finite": finite, "mae": tf.reduce_mean(tf.abs(pred - batch["y"])),
            "images/pred": image}

  def run(self, total_steps, **kwargs):
    return self.runtime.run(self.step_fn, self.iterator, total_steps, **kwargs)

  def weights(self):
    return [w.numpy().copy() for w in self.model.weights]


def _scalar_events(log_dir, tag):
  """{step: value} of one scalar tag from the TensorBoard event files."""
  out = {}
  for path in sorted(glob.glob(os.path.join(log_dir, "events.out.tfevents.*"))):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        if value.tag == tag:
          out[event.step] = float(tf.make_ndarray(value.tensor))
  return out


def _image_tags(log_dir):
  tags = set()
  for path in glob.glob(os.path.join(log_dir, "events.out.tfevents.*")):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        if value.metadata.plugin_data.plugin_name == "images":
          tags.add(value.tag)
  return tags


def _files(folder):
  """{name: (size, mtime)} of a folder's files: any rewrite or new file changes it."""
  stats = {p: os.stat(os.path.join(folder, p)) for p in sorted(os.listdir(folder))}
  return {p: (st.st_size, st.st_mtime_ns) for p, st in stats.items()}


def test_training_checkpoints_summaries_and_exact_resume(tmp_path):
  run = _Run(tmp_path, checkpoint_every=10, summary_every=5, image_summary_every=10)
  assert run.runtime.restore() is None                     # fresh start
  result = run.run(20, steps_per_epoch=4)
  assert (result.first_step, result.last_step) == (0, 20)
  assert result.checkpoint.endswith("ckpt-20")
  assert sorted(os.path.basename(p) for p in glob.glob(str(tmp_path / "checkpoints" / "*.index"))) \
      == ["ckpt-10.index", "ckpt-20.index"]
  assert run.runtime.epoch.numpy() == pytest.approx(5.0)

  losses = _scalar_events(tmp_path / "tensorboard", "loss")
  assert sorted(losses) == [5, 10, 15, 20]
  assert losses[20] < 0.25 * losses[5]
  assert _scalar_events(tmp_path / "tensorboard", "epoch")[20] == pytest.approx(5.0)
  assert "pred" in _image_tags(tmp_path / "tensorboard")

  # A new process would rebuild everything and restore: same weights, optimizer
  # slots, step, epoch, and the data iterator continues where it stopped.
  again = _Run(tmp_path)
  assert again.runtime.restore().endswith("ckpt-20")
  assert int(again.runtime.step.numpy()) == 20
  for a, b in zip(run.weights(), again.weights()):
    np.testing.assert_array_equal(a, b)
  for a, b in zip(run.optimizer.variables, again.optimizer.variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  resumed = again.run(25)
  continued = run.run(25)
  assert resumed.first_step == 20 and resumed.last_step == continued.last_step == 25
  for a, b in zip(run.weights(), again.weights()):
    np.testing.assert_array_equal(a, b)


def test_nan_loss_stops_before_saving_and_keeps_the_last_good_checkpoint(tmp_path):
  run = _Run(tmp_path, dataset=_dataset(nan_at_batch=7), checkpoint_every=5)
  with pytest.raises(rt.NonFiniteLossError, match=r"step 7 .*loss=nan.*ckpt-5"):
    run.run(20)
  assert int(run.runtime.step.numpy()) == 7
  saved = _files(tmp_path / "checkpoints")
  assert sorted(p for p in saved if p.endswith(".index")) == ["ckpt-5.index"]
  weights_before = run.weights()
  # The update of the bad step was skipped: the weights in memory are still finite ...
  assert all(np.all(np.isfinite(w)) for w in weights_before)
  # ... and nothing was written.
  assert _files(tmp_path / "checkpoints") == saved
  fresh = _Run(tmp_path, dataset=_dataset(nan_at_batch=7))
  assert fresh.runtime.restore().endswith("ckpt-5")
  for a, b in zip(fresh.weights(), weights_before):
    assert not np.array_equal(a, b)     # ckpt-5 is older than the in-memory step-7 state
  assert all(np.all(np.isfinite(w)) for w in fresh.weights())


def test_nan_gradient_with_a_finite_loss_is_caught(tmp_path):
  runtime = rt.TrainingRuntime(rt.RuntimeConfig(output_dir=str(tmp_path), progress=False))
  v = tf.Variable([0.0, 0.0])
  opt = keras.optimizers.SGD(0.1)
  opt.build([v])
  runtime.track(v=v)

  def replica_step(_):
    loss, _, finite = runtime.minimize(opt, lambda: (tf.norm(v), None), [v])  # d|v|/dv = nan at 0
    return {"loss": loss, "finite": finite}

  with pytest.raises(rt.NonFiniteLossError, match="step 0 .*gradients"):
    runtime.run(runtime.distributed_step(replica_step), iter(range(5)), 5)
  np.testing.assert_array_equal(v.numpy(), [0.0, 0.0])
  assert runtime.latest_checkpoint is None


def test_check_numerics_inside_the_step_is_reported_as_non_finite(tmp_path):
  runtime = rt.TrainingRuntime(rt.RuntimeConfig(output_dir=str(tmp_path), progress=False))
  runtime.track()

  def replica_step(x):
    checked = tf.debugging.check_numerics(x, "vertices contain NaN")
    return {"loss": tf.reduce_sum(checked), "finite": tf.constant(True)}

  batches = iter([tf.constant([1.0]), tf.constant([np.nan])])
  with pytest.raises(rt.NonFiniteLossError, match="step 1 .*vertices contain NaN.*none"):
    runtime.run(runtime.distributed_step(replica_step), batches, 2)
  assert int(runtime.step.numpy()) == 1


def test_mixed_precision_uses_loss_scaling_and_still_guards(tmp_path):
  run = _Run(tmp_path / "a", mixed_precision=True, checkpoint_every=0)
  assert run.runtime.mixed_precision
  assert isinstance(run.optimizer, keras.optimizers.LossScaleOptimizer)
  assert run.model.layers[-1].compute_dtype == "float16"
  assert keras.config.dtype_policy().name == "float32"
  result = run.run(20)
  assert np.isfinite(result.last_scalars["loss"]) and result.last_scalars["loss"] < 0.5
  bad = _Run(tmp_path / "b", dataset=_dataset(nan_at_batch=2), mixed_precision=True)
  with pytest.raises(rt.NonFiniteLossError, match="step 2"):
    bad.run(10)
  assert not rt.resolve_mixed_precision(None)       # no GPU here: off by default


def test_restoring_a_checkpoint_of_another_model_is_a_clear_error(tmp_path):
  _Run(tmp_path, checkpoint_every=0).run(2)
  runtime = rt.TrainingRuntime(rt.RuntimeConfig(output_dir=str(tmp_path), progress=False))
  other = keras.Sequential([keras.Input((5,)), keras.layers.Dense(2)])
  runtime.track(model=other)
  with pytest.raises(rt.CheckpointMismatchError, match="does not fit this run"):
    runtime.restore()


def test_data_running_out_is_reported(tmp_path):
  run = _Run(tmp_path, dataset=_dataset().take(3))
  with pytest.raises(rt.FaceGCNError, match="ran out at step 3 of 10"):
    run.run(10)


def test_distribute_batch_and_strategy_defaults():
  strategy = rt.make_strategy()
  assert strategy.num_replicas_in_sync == 1               # CPU only here
  batch = {"x": tf.ones([4, 2])}
  assert rt.distribute_batch(strategy, batch) is batch


def test_two_replicas_split_the_batch_and_match_one_device(tmp_path):
  """MirroredStrategy over two logical CPUs (a fresh process: devices are fixed at start)."""
  script = textwrap.dedent(f"""
      import os, sys
      os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
      sys.path.insert(0, {os.getcwd()!r}); sys.path.insert(0, {os.path.dirname(__file__)!r})
      import tensorflow as tf
      cpu = tf.config.list_physical_devices("CPU")[0]
      tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
      import keras, numpy as np
      import test_rnet_runtime as t
      from facegcn_tf.training import runtime as rt
      mirrored = rt.make_strategy(["/cpu:0", "/cpu:1"])
      assert mirrored.num_replicas_in_sync == 2
      sgd = lambda: keras.optimizers.SGD(0.1)
      two = t._Run({str(tmp_path / 'two')!r}, strategy=mirrored, optimizer=sgd(), checkpoint_every=0)
      one = t._Run({str(tmp_path / 'one')!r}, optimizer=sgd(), checkpoint_every=0)
      r2, r1 = two.run(3), one.run(3)
      for a, b in zip(two.weights(), one.weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
      assert abs(r2.last_scalars["loss"] - r1.last_scalars["loss"]) < 1e-4
      bad = t._Run({str(tmp_path / 'bad')!r}, dataset=t._dataset(nan_at_batch=1), strategy=mirrored)
      try:
        bad.run(5)
      except rt.NonFiniteLossError as e:
        print("guard:", e)
      try:
        rt.distribute_batch(mirrored, {{"x": tf.ones([3, 1])}})
      except ValueError as e:
        print("split:", e)
      print("OK")
  """)
  proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                        timeout=300, cwd=os.getcwd())
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "guard: non-finite loss or gradient at step 1" in proc.stdout
  assert "split: batch size [3] must be one multiple of the 2 replicas" in proc.stdout
  assert proc.stdout.strip().endswith("OK")


@dataclasses.dataclass(frozen=True)
class _Inner:
  rate: float = 1.0
  name: str = "a"


@dataclasses.dataclass(frozen=True)
class _Outer:
  inner: _Inner = _Inner()
  steps: Optional[int] = None
  flag: bool = False


def test_override_config():
  cfg = rt.override_config(_Outer(), ["inner.rate=2.5", "steps=7", "flag=true", "inner.name=b c"])
  assert cfg == _Outer(_Inner(2.5, "b c"), 7, True)
  assert rt.override_config(cfg, ["steps=none"]).steps is None
  with pytest.raises(ValueError, match="unknown setting 'rat' of _Inner; known: name, rate"):
    rt.override_config(cfg, ["inner.rat=1"])
  with pytest.raises(ValueError, match="expected a value of type float"):
    rt.override_config(cfg, ["inner.rate=fast"])
  with pytest.raises(ValueError, match="expected a value of type bool"):
    rt.override_config(cfg, ["flag=maybe"])
  with pytest.raises(ValueError, match="path=value"):
    rt.override_config(cfg, ["steps"])
  with pytest.raises(ValueError, match="not inside a settings group"):
    rt.override_config(cfg, ["steps.x=1"])


def test_steps_for_and_config_validation(tmp_path):
  assert rt.steps_for(None, 30, 10.0) == 30
  assert rt.steps_for(2.5, None, 10.0) == 25
  with pytest.raises(ValueError, match="exactly one"):
    rt.steps_for(1.0, 5, 10.0)
  with pytest.raises(ValueError, match="checkpoint_every"):
    rt.RuntimeConfig(output_dir=str(tmp_path), checkpoint_every=-1)
  assert rt.RuntimeConfig(output_dir="x").resolved_checkpoint_dir == os.path.join("x", "checkpoints")
