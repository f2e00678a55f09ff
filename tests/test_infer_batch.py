"""Batch runs that survive interruption, a second run and odd folder entries (infer.py, CLI).

Each test runs scripts/infer.py in a subprocess with a short schedule.
"""

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import cv2
import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
SHORT = ["--progress=false", "--fit_steps=0.05", "--refine_steps=2", "--texture_size=128",
         "--batch_size=1"]


def infer_cmd(*args):
  return [sys.executable, str(ROOT / "scripts" / "infer.py"), *SHORT, *args]


def run_infer(*args, prefix=()):
  return subprocess.run([*prefix, *infer_cmd(*args)], capture_output=True, text=True,
                        timeout=900, cwd=ROOT)


def no_temp_files(folder: pathlib.Path):
  return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")] == []


@pytest.fixture(scope="module")
def photos(tmp_path_factory, astronaut, grace_hopper):
  folder = tmp_path_factory.mktemp("photos")
  cv2.imwrite(str(folder / "a_astronaut.png"), astronaut[..., ::-1])
  cv2.imwrite(str(folder / "b_hopper.jpg"), grace_hopper[..., ::-1])
  return folder


def test_odd_entries_and_a_live_claim_are_reported_as_skipped(photos, tmp_path):
  folder = tmp_path / "in"
  folder.mkdir()
  shutil.copy(photos / "a_astronaut.png", folder / "astronaut.png")
  (folder / "x.jpg").mkdir()                                  # a folder named like a photo
  os.symlink(folder / "loop.png", folder / "loop.png")        # a symlink loop
  os.symlink(folder / "gone.jpg", folder / "broken.jpg")      # a broken link
  out = tmp_path / "out"
  out.mkdir()
  # Another live run holds the astronaut: its claim names a live process on this host.
  sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
  try:
    import socket
    (out / ".astronaut.claim").write_text(json.dumps(
        {"host": socket.gethostname(), "pid": sleeper.pid, "time": time.time(), "token": "x"}))
    done = run_infer(f"--input={folder}", f"--output_dir={out}")
  finally:
    sleeper.kill()
    sleeper.wait()
  assert done.returncode == 0, done.stdout + done.stderr[-3000:]
  rows = {line.split()[0]: line for line in done.stdout.splitlines() if line.strip()}
  assert "a folder named like a photo" in rows[str(folder / "x.jpg")]
  assert "symlink loop" in rows[str(folder / "loop.png")]
  assert "broken symlink" in rows[str(folder / "broken.jpg")]
  assert "another run" in rows["astronaut"] and f"pid {sleeper.pid}" in rows["astronaut"]
  assert "0 done, 4 skipped, 0 failed" in done.stdout
  assert not (out / "astronaut.json").exists()
  assert (out / ".astronaut.claim").exists()          # someone else's claim is left alone


def test_sigterm_keeps_finished_faces_and_a_rerun_takes_over_a_dead_claim(photos, tmp_path):
  out = tmp_path / "out"
  proc = subprocess.Popen(infer_cmd(f"--input={photos}", f"--output_dir={out}"),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
  deadline = time.time() + 600
  while not (out / "a_astronaut.json").exists():
    assert proc.poll() is None, proc.communicate()
    assert time.time() < deadline, "the first face never finished"
    time.sleep(0.2)
  proc.send_signal(signal.SIGTERM)
  stdout, stderr = proc.communicate(timeout=300)
  assert proc.returncode == 143, stdout + stderr[-3000:]
  assert "stopped: SIGTERM received" in stdout
  assert "a_astronaut" in stdout and "b_hopper" in stdout
  hopper_row = [line for line in stdout.splitlines() if line.startswith("b_hopper")]
  assert hopper_row and "interrupted" in hopper_row[0], stdout
  assert not (out / "b_hopper.json").exists()
  assert no_temp_files(out)
  assert not list(out.glob(".*.claim"))              # the run released its claims
  first = (out / "a_astronaut.json").read_bytes()
  # A run killed with -9 leaves its claim behind; the next run takes it over.
  (out / ".b_hopper.claim").write_text(json.dumps(
      {"host": __import__("socket").gethostname(), "pid": 2 ** 22 + 7, "time": time.time(),
       "token": "dead"}))
  again = run_infer(f"--input={photos}", f"--output_dir={out}")
  assert again.returncode == 0, again.stdout + again.stderr[-3000:]
  assert "1 done, 1 skipped, 0 failed" in again.stdout
  assert (out / "b_hopper.json").exists() and (out / "a_astronaut.json").read_bytes() == first
  assert not list(out.glob(".*.claim")) and no_temp_files(out)


def _unshare_available():
  probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True)
  return probe.returncode == 0


@pytest.mark.skipif(shutil.which("unshare") is None or not _unshare_available(),
                    reason="needs unshare -rm (a private mount namespace) for a tmpfs")
@pytest.mark.parametrize("mount_options,expected", [
    ("ro", "Read-only file system"),
    ("size=256k", "No space left on device"),
])
def test_an_unwritable_output_folder_gives_one_line_and_nothing_half_written(
    photos, tmp_path, mount_options, expected):
  out = tmp_path / "out"
  out.mkdir()
  inner = " ".join(f"'{a}'" for a in infer_cmd(f"--input={photos}", f"--output_dir={out}"))
  script = (f"mount -t tmpfs -o {mount_options} none '{out}' && {inner}; rc=$?; "
            f"ls -a '{out}'; exit $rc")
  done = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True,
                        timeout=900, cwd=ROOT)
  assert done.returncode == 74, done.stdout + done.stderr[-3000:]
  stopped = [line for line in done.stdout.splitlines() if line.startswith("stopped:")]
  assert len(stopped) == 1 and expected in stopped[0], done.stdout
  assert "Traceback" not in done.stderr
  listing = done.stdout.split(stopped[0])[1].split()
  assert not [name for name in listing if name.endswith(".tmp") or name.endswith(".json")]


def test_scan_reports_photo_named_entries_only(tmp_path, astronaut):
  from facegcn_tf.pipeline import scan_inputs
  cv2.imwrite(str(tmp_path / "b.png"), astronaut[..., ::-1])
  (tmp_path / "sub").mkdir()
  cv2.imwrite(str(tmp_path / "sub" / "a.png"), astronaut[..., ::-1])
  (tmp_path / "x.jpg").mkdir()
  (tmp_path / "notes.txt").write_text("not a photo")
  (tmp_path / ".hidden.png").write_bytes(b"")
  folder = scan_inputs(str(tmp_path))
  assert folder.paths == [tmp_path / "b.png", tmp_path / "sub" / "a.png"]
  assert folder.odd == [(str(tmp_path / "x.jpg"), "a folder named like a photo, not a photo")]
  # A glob takes every file it matches; of the rest, only photo-named entries are odd.
  matched = scan_inputs(str(tmp_path / "*"))
  assert matched.paths == [tmp_path / "b.png", tmp_path / "notes.txt"]
  assert matched.odd == folder.odd
  with pytest.raises(ValueError, match="no input images"):
    scan_inputs(str(tmp_path / "nothing" / "*.png"))


def test_a_photo_given_twice_is_reconstructed_once(tmp_path, astronaut):
  import cv2
  from facegcn_tf import pipeline
  from facegcn_tf.fitting.fitter import FitConfig
  photo = tmp_path / "a.png"
  cv2.imwrite(str(photo), astronaut[..., ::-1])
  reconstructor = pipeline.Reconstructor.from_settings(
      fit_config=FitConfig().scaled(0.05), refine_steps=0, formats=("json",))
  summary = pipeline.run([photo, photo, tmp_path / "." / "a.png"], tmp_path / "out",
                         reconstructor, progress=False)
  assert [name for name, _ in summary.done] == ["a"] and not summary.failed
