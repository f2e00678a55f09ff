"""The scripts on Beam's portable runner, the way Flink and Spark run them: the job goes over
gRPC to a job service (Beam's Python one here, standing in for the Flink job server, a Maven
jar nothing here can fetch), which sends each stage to SDK workers in other processes, started
by an external worker pool (``--environment_type=EXTERNAL``, the README's recipe). So the
DoFns are pickled, the models load in processes that never saw the launcher's state, and the
counters come back over the job API. The records must equal the local path's."""

import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import pytest

from facegcn_tf.scale import options as beam_options

REPO = pathlib.Path(__file__).resolve().parent.parent


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen, seconds: float = 120):
  deadline = time.time() + seconds
  while time.time() < deadline:
    if process.poll() is not None:
      raise RuntimeError(f"the Beam service on port {port} exited ({process.returncode})")
    with socket.socket() as s:
      if s.connect_ex(("localhost", port)) == 0:
        return
    time.sleep(0.5)
  raise TimeoutError(f"nothing listens on port {port}")


@pytest.fixture(scope="module")
def portable(tmp_path_factory):
  """`--beam_options` for a job service and a worker pool running as separate processes."""
  logs = tmp_path_factory.mktemp("beam_services")
  env = dict(os.environ)
  # The pool starts each SDK worker as `python`: this interpreter's.
  env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
  job_port, pool_port = _free_port(), _free_port()
  services = []
  for module, flag, port in (
      ("apache_beam.runners.worker.worker_pool_main", "--service_port", pool_port),
      ("apache_beam.runners.portability.local_job_service_main", "--port", job_port)):
    # The service's log file stays open as long as the service runs.
    log = open(logs / f"{module.rsplit('.', 1)[-1]}.log", "w")  # pylint: disable=R1732
    services.append(subprocess.Popen([sys.executable, "-m", module, f"{flag}={port}"],
                                     cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True))
    _wait_for_port(port, services[-1])
  yield (f"--job_endpoint=localhost:{job_port} --environment_type=EXTERNAL "
         f"--environment_config=localhost:{pool_port}")
  for process in services:   # the services and the workers they started
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=60)


def _script(name, *args, timeout=900):
  result = subprocess.run([sys.executable, str(REPO / "scripts" / name), *args],
                          capture_output=True, text=True, timeout=timeout, cwd=REPO)
  assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
  return result.stdout


def test_prepare_fit_and_infer_on_the_portable_runner(portable, photos_and_a_corrupt_file,
                                                      tmp_path):
  photos = photos_and_a_corrupt_file
  runner = ["--runner=PortableRunner", f"--beam_options={portable}"]
  prepare = ["--face_model=ict_coarse", "--identity=none", "--shard_size=2",
             f"--input_dir={photos}"]
  out = _script("prepare_data.py", *prepare, f"--output_dir={tmp_path / 'records'}", *runner)
  assert "2 faces prepared in 2 shards" in out and "1 failed" in out, out
  _script("prepare_data.py", *prepare, f"--output_dir={tmp_path / 'plain'}")
  for name in ("faces-00000.tfrecord", "faces-00001.tfrecord"):
    assert ((tmp_path / "records" / name).read_bytes()
            == (tmp_path / "plain" / name).read_bytes()), name
  assert list(beam_options.read_failures(str(tmp_path / "records"))) == ["b_corrupt.jpg"]

  out = _script("fit_data.py", f"--data={tmp_path / 'records'}/faces-*.tfrecord",
                "--face_model=ict_coarse", "--identity=none", "--fit_steps=0.05", *runner)
  assert "fitted 2 records on PortableRunner, 0 already done, 0 failed, 2 shards" in out, out
  assert sorted(p.name for p in (tmp_path / "records" / "coarse_ict_coarse").glob("*.npz")) == [
      "faces-00000.npz", "faces-00001.npz"]

  faces = tmp_path / "faces"
  out = _script("infer.py", f"--input={photos}", f"--output_dir={faces}", "--preset=fast",
                "--face_model=ict_coarse", "--fit_steps=0.05", "--formats=obj,json",
                "--texture_size=128", "--progress=false", *runner)
  assert "2 done, 0 skipped, 1 failed on PortableRunner" in out, out
  assert (faces / "a_astronaut.json").is_file() and (faces / "c_grace_hopper.obj").is_file()
  assert (faces / "index.html").is_file()
