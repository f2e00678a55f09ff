"""Training the occluder network resumes from its last checkpoint (`scripts/train_occluders.py`).

The script runs in a subprocess on a few synthetic pairs (coarse ICT faces, 6 steps of 4, a
checkpoint every 2). With the runtime's test hook it blocks inside step 4's checkpoint write
and is killed there with SIGKILL; the same command then resumes from step 2 and ends with
the weights file of an uninterrupted run, bit for bit. A run folder started with other
settings is refused with a one-line error.
"""

import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from test_training_kill import (REPO, _env, _pointer, _tensors,  # noqa: E402
                                kill_in_checkpoint_write)

STEPS, KILL_AT = 6, 4


def _command(out_dir, *extra):
  return [sys.executable, os.path.join(REPO, "scripts", "train_occluders.py"),
          "--flagfile=configs/occluders.cfg", "--face_model=ict_coarse", "--samples=24",
          f"--steps={STEPS}", "--batch_size=4", "--checkpoint_every=2", "--progress=false",
          "--seed=7", f"--output_dir={out_dir}", f"--output={out_dir}/occluder_net.npz",
          *extra]


def _train(out_dir, *extra):
  return subprocess.run(_command(out_dir, *extra), cwd=REPO, env=_env(), capture_output=True,
                        text=True, timeout=600)


def test_a_killed_occluder_run_resumes_to_the_same_weights(tmp_path):
  straight, killed = tmp_path / "straight", tmp_path / "killed"
  done = _train(straight)
  assert done.returncode == 0, done.stderr[-3000:]
  assert f"started at step 0, now at step {STEPS}" in done.stdout

  checkpoints = killed / "checkpoints"
  kill_in_checkpoint_write(_command(killed), _env(pause_at=KILL_AT), checkpoints, KILL_AT,
                           tmp_path / "killed.log")
  assert _pointer(checkpoints) == "ckpt-2"
  assert not (killed / "occluder_net.npz").exists()
  resumed = _train(killed)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert f"resumed at step 2, now at step {STEPS}" in resumed.stdout

  final_a = _tensors(straight / "checkpoints" / f"ckpt-{STEPS}")
  final_b = _tensors(checkpoints / f"ckpt-{STEPS}")
  assert sorted(final_a) == sorted(final_b) and len(final_a) > 20   # net + Adam slots
  for name in final_a:
    np.testing.assert_array_equal(final_a[name], final_b[name], err_msg=name)
  start = _tensors(checkpoints / "ckpt-2")
  assert any(not np.array_equal(start[n], final_a[n]) for n in final_a if "model" in n)
  with np.load(straight / "occluder_net.npz") as a, np.load(killed / "occluder_net.npz") as b:
    assert sorted(a.files) == sorted(b.files)
    for name in a.files:
      np.testing.assert_array_equal(a[name], b[name], err_msg=name)

  # Another run's settings in the same folder: refused, nothing overwritten.
  before = (killed / "occluder_net.npz").read_bytes()
  other = _train(killed, "--samples=30")
  assert other.returncode != 0
  message = other.stderr.strip().splitlines()[-1]
  assert message.startswith("train_occluders.py: error:") and "samples" in message, message
  assert (killed / "occluder_net.npz").read_bytes() == before
