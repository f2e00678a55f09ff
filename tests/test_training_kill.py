"""Training survives a hard kill (SIGKILL) in the middle of a checkpoint write.

`scripts/train.py --flagfile=configs/smoke.cfg` (GCN stage, shortened: 64 px, 6 eager
steps, a checkpoint every 2) runs in a subprocess on two tiny synthetic records. With the
runtime's test hook (`FACEGCN_TEST_PAUSE_IN_CHECKPOINT_WRITE=4`) it writes step 4's
checkpoint files and then blocks before the ``checkpoint`` pointer moves; the test kills
it there with SIGKILL, resumes with the same command, and compares with an uninterrupted
run: the same final checkpoint tensors and the same logged losses, bit for bit. A second
group of tests damages the newest checkpoint on disk (in process, on the runtime tests'
tiny model) and checks that resuming falls back to the previous complete one.
"""

import glob
import logging
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from facegcn_tf.fitting.fitter import FitConfig
from facegcn_tf.morphable.ict import load_ict
from facegcn_tf.render.renderer import FaceRenderer
from facegcn_tf.training import coarse_fits
from facegcn_tf.training import runtime as rt
from facegcn_tf.training import synthetic_records

sys.path.insert(0, os.path.dirname(__file__))
from test_rnet_runtime import _Run  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = 6
KILL_AT = 4  # checkpoints at 2, 4, 6: killed while writing the one at 4


@pytest.fixture(scope="module")
def pattern(tmp_path_factory):
  """Two striped faces in one shard, with their (briefly) fitted coarse coefficients cached."""
  face_model = load_ict(subdivide=False)
  written = synthetic_records.write_records(str(tmp_path_factory.mktemp("records")), face_model,
                                            count=2, shard_size=2)
  coarse_fits.fit_records(written["pattern"], FaceRenderer(face_model), batch_size=2,
                          fit_config=FitConfig(landmark_steps=30, photo_steps=10, refine_steps=0))
  return written["pattern"]


def _command(pattern, out_dir):
  return [sys.executable, os.path.join(REPO, "scripts", "train.py"),
          "--flagfile=configs/smoke.cfg", f"--data={pattern}", f"--output_dir={out_dir}",
          "--image_size=64", f"--steps={STEPS}", "--checkpoint_every=2", "--max_to_keep=3",
          "--set=decoder_widths=8,8,8,8", "--set=refiner_widths=8,8", "--run_eagerly",
          "--summary_every=1", "--image_summary_every=0", "--progress=false", "--seed=5"]


def _env(pause_at=None):
  env = dict(os.environ, TF_DETERMINISTIC_OPS="1", TF_CPP_MIN_LOG_LEVEL="2")
  env.pop(rt.PAUSE_IN_CHECKPOINT_WRITE_ENV, None)
  if pause_at is not None:
    env[rt.PAUSE_IN_CHECKPOINT_WRITE_ENV] = str(pause_at)
  return env


def _train(pattern, out_dir):
  proc = subprocess.run(_command(pattern, out_dir), cwd=REPO, env=_env(), capture_output=True,
                        text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc.stdout


def _pointer(checkpoint_dir):
  """The checkpoint the ``checkpoint`` pointer file names (None: no pointer)."""
  state = tf.train.get_checkpoint_state(str(checkpoint_dir))
  return None if state is None else os.path.basename(state.model_checkpoint_path)


def _tensors(prefix):
  """{name: array} of every tensor of a checkpoint but the data iterator's (a variant)."""
  reader = tf.train.load_checkpoint(str(prefix))
  return {name: reader.get_tensor(name) for name, dtype in reader.get_variable_to_dtype_map().items()
          if dtype != tf.variant and name != "_CHECKPOINTABLE_OBJECT_GRAPH"}


def _scalars(event_file):
  """{(tag, step): value} of one TensorBoard event file's scalars."""
  out = {}
  for event in tf.compat.v1.train.summary_iterator(event_file):
    for value in event.summary.value:
      array = tf.make_ndarray(value.tensor)
      if array.ndim == 0:
        out[(value.tag, event.step)] = array.item()
  return out


def _event_files(out_dir):
  return sorted(glob.glob(os.path.join(out_dir, "tensorboard", "events.out.tfevents.*")),
                key=os.path.getmtime)


def kill_in_checkpoint_write(command, env, checkpoints, step, log_path):
  """Runs `command` (with the runtime's pause hook set to `step` in `env`) until it blocks
  inside step `step`'s checkpoint write, then kills it with SIGKILL."""
  log = open(log_path, "w")
  proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
  marker = checkpoints / f"ckpt-{step}{rt.PAUSE_MARKER_SUFFIX}"
  try:
    deadline = time.monotonic() + 300
    while not marker.exists():
      assert proc.poll() is None, log_path.read_text()[-3000:]
      assert time.monotonic() < deadline, "the run never reached the checkpoint write"
      time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
  finally:
    if proc.poll() is None:
      proc.kill()
      proc.wait()
    log.close()


def test_a_kill_during_a_checkpoint_write_keeps_the_previous_one_and_resume_is_exact(
    pattern, tmp_path):
  straight, killed = tmp_path / "straight", tmp_path / "killed"
  assert f"started at step 0, now at step {STEPS}" in _train(pattern, straight)

  checkpoints = killed / "checkpoints"
  kill_in_checkpoint_write(_command(pattern, killed), _env(pause_at=KILL_AT), checkpoints,
                           KILL_AT, tmp_path / "killed.log")
  # Step 4's files are complete, the pointer still names step 2.
  assert rt.checkpoint_problem(str(checkpoints / f"ckpt-{KILL_AT}")) is None

  # (a) The previous checkpoint is still the latest and loads.
  assert _pointer(checkpoints) == "ckpt-2"
  assert rt.checkpoint_problem(str(checkpoints / "ckpt-2")) is None
  # (b) Re-running the same command resumes from it and finishes.
  assert f"resumed at step 2, now at step {STEPS}" in _train(pattern, killed)
  assert _pointer(checkpoints) == f"ckpt-{STEPS}"

  # (c) Bit-identical to the uninterrupted run: every tensor of the final checkpoint
  # (weights, optimizer slots, step, epoch, random generator) ...
  final_a = _tensors(straight / "checkpoints" / f"ckpt-{STEPS}")
  final_b = _tensors(checkpoints / f"ckpt-{STEPS}")
  assert sorted(final_a) == sorted(final_b) and len(final_a) > 20
  for name in final_a:
    np.testing.assert_array_equal(final_a[name], final_b[name], err_msg=name)
  # ... and did train: the weights moved since the checkpoint the resume started from.
  start = _tensors(checkpoints / "ckpt-2")
  assert any(not np.array_equal(start[n], final_a[n]) for n in final_a if "generator" in n)
  # ... and every scalar the resumed process logged (losses, metrics, lr) for steps 3..6.
  logged = _event_files(straight)
  assert len(logged) == 1
  expected = _scalars(logged[0])
  resumed = _scalars(_event_files(killed)[-1])
  assert {step for _, step in resumed} == set(range(3, STEPS + 1))
  assert "loss" in {tag for tag, _ in resumed}
  assert resumed == {key: value for key, value in expected.items() if key[1] >= 3}


# ---- damaged checkpoints on disk (in process) -------------------------------------------------


def _truncate_data(prefix):
  data = glob.glob(prefix + ".data-*")[0]
  with open(data, "r+b") as f:
    f.truncate(os.path.getsize(data) // 2)


def _flip_last_byte(prefix):
  data = glob.glob(prefix + ".data-*")[0]
  with open(data, "r+b") as f:
    f.seek(-1, os.SEEK_END)
    byte = f.read(1)
    f.seek(-1, os.SEEK_END)
    f.write(bytes([byte[0] ^ 0xFF]))


def _remove_index(prefix):
  os.remove(prefix + ".index")


@pytest.mark.parametrize("damage", [_truncate_data, _flip_last_byte, _remove_index])
def test_resume_skips_a_damaged_newest_checkpoint_with_one_warning(tmp_path, caplog, damage):
  run = _Run(tmp_path, checkpoint_every=5)
  run.run(10)
  newest = str(tmp_path / "checkpoints" / "ckpt-10")
  assert rt.checkpoint_problem(newest) is None
  damage(newest)
  assert rt.checkpoint_problem(newest) is not None

  again = _Run(tmp_path)
  with caplog.at_level(logging.WARNING):
    restored = again.runtime.restore()
  assert restored.endswith("ckpt-5") and int(again.runtime.step.numpy()) == 5
  warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
  assert len(warnings) == 1 and "\n" not in warnings[0].getMessage()
  assert "ckpt-10" in warnings[0].getMessage() and "ckpt-5" in warnings[0].getMessage()
  assert again.runtime.latest_checkpoint.endswith("ckpt-5")

  # Continuing rewrites step 10 complete and lands where the first run was.
  result = again.run(10)
  assert result.first_step == 5 and result.checkpoint.endswith("ckpt-10")
  assert rt.checkpoint_problem(newest) is None
  for a, b in zip(run.weights(), again.weights()):
    np.testing.assert_array_equal(a, b)


def test_damaged_checkpoints_without_a_complete_one_are_a_clear_error(tmp_path):
  run = _Run(tmp_path, checkpoint_every=5)
  run.run(10)
  for step in (5, 10):
    _truncate_data(str(tmp_path / "checkpoints" / f"ckpt-{step}"))
  with pytest.raises(rt.IncompleteCheckpointError, match="no complete checkpoint.*ckpt-10.*ckpt-5"):
    _Run(tmp_path).runtime.restore()
  with pytest.raises(rt.IncompleteCheckpointError, match="ckpt-5' is incomplete or damaged"):
    _Run(tmp_path).runtime.restore(str(tmp_path / "checkpoints" / "ckpt-5"))
