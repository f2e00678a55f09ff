"""Multi-worker training on the CPU: two processes joined by TF_CONFIG into one
`MultiWorkerMirroredStrategy` (one replica each) train the GCN exactly like one process
mirrored over two logical CPUs (two replicas), the same global batch split the same way. Only
the chief writes into the shared run folder. And ``train.py --multi_worker`` end to end."""

import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np

from test_training_distributed import make_records

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.dirname(os.path.abspath(__file__))

_TRAIN = textwrap.dedent("""
    import os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    sys.path.insert(0, {repo!r}); sys.path.insert(0, {tests!r})
    from facegcn_tf.training import runtime as rt
    if {multi_worker!r}:
      strategy = rt.make_strategy(multi_worker=True)     # before anything runs on TF
    else:
      import tensorflow as tf
      cpu = tf.config.list_physical_devices("CPU")[0]
      tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
      strategy = rt.make_strategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    import numpy as np
    import test_training_distributed as t
    trainer = t.gcn_trainer_for({out!r}, {pattern!r}, strategy, batch_size=4, steps={steps})
    result = trainer.train()
    np.savez({weights!r}, loss=result.last_scalars["loss"],
             **{{f"w{{i}}": w.numpy() for i, w in enumerate(trainer.generator.weights)}})
    print("chief" if trainer.runtime.is_chief else "other", result.first_step, result.last_step,
          result.checkpoint,
          trainer.runtime.save_dir)
""")


def _free_ports(count):
  sockets = [socket.socket() for _ in range(count)]
  for s in sockets:
    s.bind(("localhost", 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


def _train_script(out, pattern, weights, multi_worker, steps=2):
  return _TRAIN.format(repo=REPO, tests=TESTS, out=str(out), pattern=pattern,
                       weights=str(weights), multi_worker=multi_worker, steps=steps)


def _run_workers(run, pattern, weights, steps):
  """Two workers (a new cluster on free ports) on one run; their stdout lines (split)."""
  cluster = [f"localhost:{port}" for port in _free_ports(2)]
  workers = []
  for index in range(2):
    env = dict(os.environ, TF_CONFIG=json.dumps(
        {"cluster": {"worker": cluster}, "task": {"type": "worker", "index": index}}))
    code = _train_script(run, pattern, weights[index], multi_worker=True, steps=steps)
    workers.append(subprocess.Popen([sys.executable, "-c", code], env=env, cwd=REPO,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
  outputs = [w.communicate(timeout=1200) for w in workers]
  for worker, (_, err) in zip(workers, outputs):
    assert worker.returncode == 0, err[-4000:]
  return [out.split() for out, _ in outputs]


def test_two_workers_train_like_two_devices(tmp_path):
  pattern = make_records(str(tmp_path / "records"))
  run = tmp_path / "run"          # the shared run folder
  weights = [tmp_path / "worker0.npz", tmp_path / "worker1.npz"]
  chief_line, other_line = _run_workers(run, pattern, weights, steps=2)
  assert chief_line[:3] == ["chief", "0", "2"] and other_line[:3] == ["other", "0", "2"]
  # Both report the chief's checkpoint; only the chief wrote the run folder.
  assert chief_line[3] == other_line[3] == str(run / "checkpoints" / "ckpt-2")
  assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
      "checkpoint", "ckpt-2.data-00000-of-00001", "ckpt-2.index"]
  assert chief_line[4] == str(run / "checkpoints")
  private = other_line[4]      # the other worker's copies: elsewhere, and gone
  assert not private.startswith(str(run)) and not os.path.exists(private)

  mirrored = subprocess.run(
      [sys.executable, "-c", _train_script(tmp_path / "mirrored", pattern,
                                           tmp_path / "mirrored.npz", multi_worker=False)],
      capture_output=True, text=True, timeout=1200, cwd=REPO)
  assert mirrored.returncode == 0, mirrored.stderr[-4000:]
  assert sorted(p.name for p in run.iterdir()) == sorted(
      p.name for p in (tmp_path / "mirrored").iterdir())   # checkpoints + exported generator
  chief, other, two_devices = (np.load(path) for path in weights + [tmp_path / "mirrored.npz"])
  assert len(chief.files) == len(two_devices.files) > 10
  for key in chief.files:
    np.testing.assert_allclose(other[key], chief[key], rtol=1e-6, atol=1e-7, err_msg=key)
    np.testing.assert_allclose(chief[key], two_devices[key], rtol=1e-4, atol=1e-6, err_msg=key)
  # A longer run resumes on both workers from the chief's checkpoint.
  more = [tmp_path / "resumed0.npz", tmp_path / "resumed1.npz"]
  chief_line, other_line = _run_workers(run, pattern, more, steps=3)
  assert chief_line[:3] == ["chief", "2", "3"] and other_line[:3] == ["other", "2", "3"]
  resumed = [np.load(path) for path in more]
  for key in chief.files:
    np.testing.assert_allclose(resumed[1][key], resumed[0][key], rtol=1e-6, atol=1e-7)
  assert any(not np.array_equal(resumed[0][key], chief[key]) for key in chief.files)


def test_train_script_multi_worker_needs_tf_config(tmp_path):
  env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
  proc = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "train.py"),
                         "--stage=gcn", "--data=x-*.tfrecord", f"--output_dir={tmp_path}",
                         "--steps=1", "--multi_worker"],
                        capture_output=True, text=True, timeout=300, cwd=REPO, env=env)
  assert proc.returncode == 2
  assert proc.stderr.strip().startswith(
      "train.py: usage error: --multi_worker: multi-worker training needs TF_CONFIG"), proc.stderr
  assert len(proc.stderr.strip().splitlines()) == 1


def test_train_script_runs_as_a_one_worker_cluster(tmp_path):
  pattern = make_records(str(tmp_path / "records"))
  port, = _free_ports(1)
  env = dict(os.environ, TF_CONFIG=json.dumps(
      {"cluster": {"worker": [f"localhost:{port}"]}, "task": {"type": "worker", "index": 0}}))
  proc = subprocess.run(
      [sys.executable, os.path.join(REPO, "scripts", "train.py"), "--stage=gcn",
       f"--data={pattern}", f"--output_dir={tmp_path / 'run'}", "--face_model=ict_coarse",
       "--batch_size=2", "--steps=1", "--image_size=64", "--set=decoder_widths=8,8,8,8",
       "--set=refiner_widths=8,8", "--set=order=2", "--run_eagerly", "--progress=false",
       "--multi_worker"], capture_output=True, text=True, timeout=900, cwd=REPO, env=env)
  assert proc.returncode == 0, proc.stderr[-4000:]
  assert "gcn: started at step 0, now at step 1" in proc.stdout, proc.stdout
  assert (tmp_path / "run" / "checkpoints" / "ckpt-1.index").is_file()
