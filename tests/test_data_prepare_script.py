"""scripts/prepare_data.py end to end: a folder with one corrupt photo, then a resumed run."""

import os
import pathlib
import subprocess
import sys

import cv2

REPO = pathlib.Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "prepare_data.py"


def _run(*args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                        env=env, timeout=300, cwd=str(REPO))


def test_corrupt_photo_is_reported_and_rerun_resumes(tmp_path, astronaut, grace_hopper):
  photos = tmp_path / "photos"
  photos.mkdir()
  cv2.imwrite(str(photos / "a_astronaut.png"), astronaut[..., ::-1])
  cv2.imwrite(str(photos / "c_grace_hopper.jpg"), grace_hopper[..., ::-1])
  (photos / "b_corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + os.urandom(3000))
  out = tmp_path / "data"
  args = ["--input_dir", str(photos), "--output_dir", str(out), "--shard_size", "1",
          "--identity", "none", "--face_model", "ict_coarse"]

  first = _run(*args)
  assert first.returncode == 0, first.stderr[-2000:]
  assert "2 faces in 3 shards" in first.stdout and "1 failed" in first.stdout
  failure_lines = [l for l in first.stdout.splitlines() if l.strip().startswith("b_corrupt.jpg:")]
  assert len(failure_lines) == 1 and "cannot load image" in failure_lines[0]
  names = sorted(os.listdir(out))
  assert names == [f"faces-0000{i}.{ext}" for i in range(3) for ext in ("json", "tfrecord")]
  stamps = {n: os.stat(out / n).st_mtime_ns for n in names}

  second = _run(*args)
  assert second.returncode == 0, second.stderr[-2000:]
  assert "0 written, 3 already complete and skipped" in second.stdout
  assert "b_corrupt.jpg:" in second.stdout  # Failures stay reported from the manifests.
  assert {n: os.stat(out / n).st_mtime_ns for n in sorted(os.listdir(out))} == stamps


def test_missing_input_dir_is_a_clear_error(tmp_path):
  result = _run("--input_dir", str(tmp_path / "nope"), "--output_dir", str(tmp_path / "out"),
                "--identity", "none")
  assert result.returncode != 0
  assert "does not exist" in result.stderr
