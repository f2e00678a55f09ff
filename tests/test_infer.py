"""scripts/infer.py end to end, through its command line (reduced iterations)."""

import json
import pathlib
import subprocess
import sys

import cv2
import numpy as np
import pytest
import skimage.data
import trimesh

ROOT = pathlib.Path(__file__).resolve().parent.parent
EXPECTED = [".obj", ".mtl", "_texture.png", ".ply", ".glb", "_coarse_texture.png",
            "_lit_texture.png", "_overlay.png", "_strip.png", ".json"]


def run_infer(*args):
  cmd = [sys.executable, str(ROOT / "scripts" / "infer.py"), "--progress=false",
         "--fit_steps=0.15", "--refine_steps=15", "--texture_size=256", "--batch_size=2", *args]
  return subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=ROOT)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, astronaut):
  inputs = tmp_path_factory.mktemp("photos")
  cv2.imwrite(str(inputs / "astronaut.jpg"), astronaut[..., ::-1])
  (inputs / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)  # truncated PNG
  cv2.imwrite(str(inputs / "coffee.png"), skimage.data.coffee()[..., ::-1])   # no face
  before = {p.name: p.read_bytes() for p in inputs.iterdir()}
  out = tmp_path_factory.mktemp("out")
  result = run_infer(f"--input={inputs}", f"--output_dir={out}")
  return inputs, out, result, before


def test_one_success_two_reported_failures_exit_zero(first_run):
  inputs, out, result, before = first_run
  assert result.returncode == 0, result.stderr[-3000:]
  assert "1 done, 0 skipped, 2 failed" in result.stdout
  failed = [line for line in result.stdout.splitlines() if "FAILED" in line]
  assert any("broken.png" in line for line in failed)
  assert any("coffee.png" in line and "no face" in line for line in failed)
  # Inputs are never modified.
  assert {p.name: p.read_bytes() for p in inputs.iterdir()} == before


def test_every_promised_file_is_written_and_reloads(first_run):
  _, out, _, _ = first_run
  for suffix in EXPECTED:
    path = out / f"astronaut{suffix}"
    assert path.is_file() and path.stat().st_size > 0, suffix
  assert not list(out.glob("broken*")) and not list(out.glob("coffee*"))
  assert not [p for p in out.iterdir() if p.name.startswith(".") or "tmp" in p.name]
  report = json.loads((out / "astronaut.json").read_text())
  from facegcn_tf.morphable import load_model
  model = load_model(report["model"])
  assert len(report["coefficients"]["id"]) == model.layout.n_id
  assert report["losses"]["landmark_nme"] < 0.1
  # The fine stage ran (GCN per-image refinement) and is measured beside the coarse one.
  assert report["losses"]["refine_psnr_fine"] > 0 and "psnr_fine_db" in report["losses"]
  ply = trimesh.load(out / "astronaut.ply", process=False)
  assert len(ply.vertices) == model.num_vertices and len(ply.faces) == model.num_triangles
  glb = trimesh.load(out / "astronaut.glb", force="mesh", process=False)
  assert len(glb.faces) == model.num_triangles
  obj = trimesh.load(out / "astronaut.obj", force="mesh", process=False)
  assert len(obj.faces) == model.num_triangles
  # The UV texture holds face colours where the face was visible: skin-like, not empty.
  texture = cv2.imread(str(out / "astronaut_texture.png"))[..., ::-1].astype(np.float32)
  assert texture.shape == (256, 256, 3)
  assert texture.std() > 5 and 60 < texture.mean() < 230
  overlay = cv2.imread(str(out / "astronaut_overlay.png"))
  assert overlay.shape == (512, 512, 3)  # pasted back at the photo's full resolution


def test_evaluate_tabulates_the_outputs(first_run, tmp_path):
  inputs, out, _, _ = first_run
  csv_path = tmp_path / "eval.csv"
  result = subprocess.run(
      [sys.executable, str(ROOT / "scripts" / "evaluate.py"), f"--photos={inputs}",
       f"--outputs={out}", f"--csv={csv_path}"], capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  import csv
  rows = {r["name"]: r for r in csv.DictReader(csv_path.open())}
  assert rows["astronaut"]["status"] == "ok"
  assert rows["broken"]["status"] == rows["coffee"]["status"] == "no output"
  assert 10 < float(rows["astronaut"]["psnr_coarse_db"]) < 45
  assert 0 < float(rows["astronaut"]["ssim_fine"]) <= 1
  assert 0 < float(rows["astronaut"]["identity_distance_coarse"]) < 1.5
  assert "| astronaut |" in result.stdout and "| mean |" in result.stdout


def test_second_run_skips_finished_faces(first_run):
  inputs, out, _, _ = first_run
  stamp = (out / "astronaut.json").stat().st_mtime_ns
  (inputs / "broken.png").unlink()
  (inputs / "coffee.png").unlink()
  result = run_infer(f"--input={inputs}", f"--output_dir={out}")
  assert result.returncode == 0, result.stderr[-3000:]
  assert "0 done, 1 skipped, 0 failed" in result.stdout
  assert (out / "astronaut.json").stat().st_mtime_ns == stamp


def test_everything_failing_gives_a_nonzero_exit(tmp_path):
  (tmp_path / "a.jpg").write_bytes(b"not an image")
  result = run_infer(f"--input={tmp_path}", f"--output_dir={tmp_path / 'out'}")
  assert result.returncode != 0
  assert "0 done, 0 skipped, 1 failed" in result.stdout


def test_bad_flags_give_a_one_line_usage_error(tmp_path):
  result = run_infer(f"--input={tmp_path / 'nothing_here'}")
  assert result.returncode != 0 and "no input images found" in result.stderr
  result = run_infer("--formats=obj,fbx")
  assert result.returncode != 0 and "unknown export format" in result.stderr


def test_rnet_checkpoint_gives_feed_forward_coefficients(tmp_path, astronaut):
  from facegcn_tf.morphable import load_model
  from facegcn_tf.networks.rnet import build_rnet
  layout = load_model("ict").layout
  weights = tmp_path / "rnet.weights.h5"
  build_rnet(layout, input_size=64).save_weights(str(weights))
  (tmp_path / "rnet.json").write_text(json.dumps({"input_size": 64}))
  photos = tmp_path / "in"
  photos.mkdir()
  cv2.imwrite(str(photos / "a.png"), astronaut[..., ::-1])
  result = run_infer(f"--input={photos}", f"--output_dir={tmp_path / 'out'}",
                     f"--rnet_checkpoint={weights}", "--formats=json", "--refine_steps=0")
  assert result.returncode == 0, result.stderr[-3000:]
  report = json.loads((tmp_path / "out" / "a.json").read_text())
  # An untrained R-Net's heads are zero-initialised: every coefficient is exactly 0, which
  # fitting would never produce; and no fitting figures are reported.
  assert all(v == 0.0 for part in report["coefficients"].values() for v in part)
  assert not any(k.startswith("fit_") for k in report["losses"])
  result = run_infer(f"--input={photos}", "--rnet_checkpoint=/nonexistent/rnet.weights.h5")
  assert result.returncode != 0 and "train them with scripts/train.py" in result.stderr
