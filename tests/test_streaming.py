"""Streaming writes and the progress line (issue #13), on a masked face (issue #11.3).

infer.py runs in a subprocess with batch_size 1 on three photos: a synthetic masked face
(found through the dense-landmark fallback), a photo without a face, and the astronaut.
The run's own progress lines (stderr, not a terminal: one line per face and stage) tell
the test where the run is, so no sleep decides anything: when the astronaut enters its
fit, the masked face's files must be complete on disk while the run goes on; then SIGTERM
stops the run, which must keep that face and report the astronaut as interrupted.
"""

import json
import math
import pathlib
import signal
import subprocess
import sys

import cv2

from facegcn_tf.export import writer

ROOT = pathlib.Path(__file__).resolve().parent.parent
FORMATS = ("png", "json")


def test_first_face_written_while_the_run_goes_on_and_kept_after_sigterm(
    tmp_path, masked_grace_hopper, astronaut):
  import skimage.data  # pylint: disable=import-outside-toplevel
  photos = tmp_path / "in"
  photos.mkdir()
  cv2.imwrite(str(photos / "a_masked.png"), masked_grace_hopper.image[..., ::-1])
  cv2.imwrite(str(photos / "b_coffee.png"), skimage.data.coffee()[..., ::-1])
  cv2.imwrite(str(photos / "c_astronaut.png"), astronaut[..., ::-1])
  out = tmp_path / "out"
  proc = subprocess.Popen(
      [sys.executable, str(ROOT / "scripts" / "infer.py"), f"--input={photos}",
       f"--output_dir={out}", "--fit_steps=0.05", "--refine_steps=2", "--batch_size=1",
       f"--formats={','.join(FORMATS)}", "--progress=true"],
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
  progress, seen_while_running = [], None
  try:
    for line in proc.stderr:
      if line.startswith("progress: "):
        progress.append(line.strip())
      if "c_astronaut: fit" in line:
        seen_while_running = (writer.outputs_complete(out, "a_masked", FORMATS),
                              (out / "c_astronaut.json").exists(), proc.poll())
        proc.send_signal(signal.SIGTERM)
        break
    stdout, stderr = proc.communicate(timeout=600)
  finally:
    if proc.poll() is None:
      proc.kill()
  assert seen_while_running is not None, "\n".join(progress) + stdout + stderr[-3000:]
  first_complete, last_written, exit_code = seen_while_running
  assert first_complete and not last_written and exit_code is None
  assert proc.returncode == 143, stdout + stderr[-3000:]

  # The progress lines: the masked face through every stage, in order, then the others.
  stages = [line.split(" | ")[1] for line in progress]
  assert stages[:5] == [f"a_masked: {s}" for s in
                        ("prepare", "fit", "refine", "assemble", "export")], progress
  assert stages[5:] == ["b_coffee: prepare", "c_astronaut: prepare", "c_astronaut: fit"]
  assert progress[0].startswith("progress: 0/3 photos settled") and progress[0].endswith("ETA ?")
  assert progress[-1].startswith("progress: 2/3 photos settled")
  assert "1 done, 1 failed" in progress[-1] and "ETA ?" not in progress[-1]

  # The summary: the masked face done, the coffee failed with its one line, the astronaut
  # interrupted; the masked face's files intact, nothing of the astronaut's.
  rows = {line.split()[0]: line for line in stdout.splitlines() if line.strip()}
  assert " ok " in rows["a_masked"]
  assert "FAILED" in rows[str(photos / "b_coffee.png")]
  assert "no face found with confidence >= 0.9" in rows[str(photos / "b_coffee.png")]
  assert "interrupted" in rows["c_astronaut"]
  assert writer.outputs_complete(out, "a_masked", FORMATS)
  assert not list(out.glob("c_astronaut*"))

  # The masked face's report: how it was found, and the #11 figures.
  report = json.loads((out / "a_masked.json").read_text())
  assert report["source"]["detected_by"] == "mtcnn+landmarks"
  assert report["source"]["landmark_confidence"] >= 0.9
  assert 0.5 <= report["source"]["detection_confidence"] <= 1.0
  figures = report["losses"]
  for key in ("spill", "psnr_overlay_224_db", "ssim_overlay_224", "psnr_overlay_full_db",
              "ssim_overlay_full", "identity_distance_fine"):
    assert isinstance(figures[key], float) and math.isfinite(figures[key]), key
  assert 0.0 <= figures["spill"] <= 1.0
  assert "occluded_fraction" in figures  # null until the fitter estimates occlusion
