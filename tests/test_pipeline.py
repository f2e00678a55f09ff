"""The pipeline's stages: the public API, results handed forward (one rasterization per view),
and the one-way imports between the library's packages."""

import ast
import collections
import os
import pathlib
import subprocess
import sys

import cv2
import numpy as np
import pytest
import trimesh

from facegcn_tf.fitting.fitter import FitConfig

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "facegcn_tf"


def _imports(path: pathlib.Path):
  """The facegcn_tf modules a source file imports (absolute names)."""
  tree = ast.parse(path.read_text(), filename=str(path))
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      for alias in node.names:
        yield alias.name
    elif isinstance(node, ast.ImportFrom) and node.module:
      yield node.module
      for alias in node.names:
        yield f"{node.module}.{alias.name}"


@pytest.mark.parametrize("folder,forbidden", [
    ("pipeline", ("facegcn_tf.training",)),
    ("refinement", ("facegcn_tf.training", "facegcn_tf.pipeline", "facegcn_tf.export")),
    # export writes a FaceResult: it never poses or renders a face itself.
    ("export", ("facegcn_tf.training", "facegcn_tf.pipeline", "facegcn_tf.refinement",
                "facegcn_tf.fitting", "facegcn_tf.render.renderer")),
    ("fitting", ("facegcn_tf.training", "facegcn_tf.pipeline", "facegcn_tf.refinement",
                 "facegcn_tf.export")),
    ("training", ("facegcn_tf.pipeline", "facegcn_tf.export")),
])
def test_imports_run_one_way(folder, forbidden):
  bad = []
  for path in sorted((PACKAGE / folder).rglob("*.py")):
    for name in _imports(path):
      if name.startswith(forbidden):
        bad.append(f"{path.relative_to(ROOT)} imports {name}")
  assert not bad, "\n".join(bad)


def test_nothing_imports_the_scale_out_stage():
  """facegcn_tf/scale (the Beam pipelines) is the top stage: no other folder imports it."""
  bad = [f"{p.relative_to(ROOT)} imports {n}" for p in sorted(PACKAGE.rglob("*.py"))
         if "scale" not in p.relative_to(PACKAGE).parts[:1]
         for n in _imports(p) if n.startswith("facegcn_tf.scale")]
  assert not bad, "\n".join(bad)


def test_no_script_is_imported_by_the_library():
  bad = [f"{p.relative_to(ROOT)} imports {n}" for p in sorted(PACKAGE.rglob("*.py"))
         for n in _imports(p) if n.startswith(("scripts", "benchmarks"))]
  assert not bad, "\n".join(bad)


def test_the_package_imports_from_outside_the_checkout(tmp_path):
  env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
  env["TF_CPP_MIN_LOG_LEVEL"] = "3"
  done = subprocess.run([sys.executable, "-c", "import facegcn_tf.pipeline as p; "
                         "print(p.Reconstructor.__module__)"],
                        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
  assert done.returncode == 0, done.stderr[-2000:]
  assert done.stdout.strip() == "facegcn_tf.pipeline.reconstructor"


@pytest.fixture(scope="module")
def reconstructor():
  from facegcn_tf import pipeline
  return pipeline.Reconstructor.from_settings(
      fit_config=FitConfig().scaled(0.05), refine_steps=3, texture_size=128)


def test_one_photo_through_the_public_api_rasterizes_each_view_once(
    reconstructor, astronaut, tmp_path, monkeypatch):
  """Reconstructor.reconstruct(path).save(dir); counts the rasterizer calls it makes."""
  from facegcn_tf.export import uv_texture
  from facegcn_tf.render import renderer as renderer_lib

  photo = tmp_path / "astronaut.png"
  cv2.imwrite(str(photo), astronaut[..., ::-1])
  calls = collections.Counter()

  def counting(module):
    original = module.rasterize

    def rasterize(clip, triangles, size, *args, **kwargs):
      calls[(int(triangles.shape[-2]), tuple(int(s) for s in size))] += 1
      return original(clip, triangles, size, *args, **kwargs)
    monkeypatch.setattr(module, "rasterize", rasterize)

  counting(renderer_lib)
  counting(uv_texture)
  result = reconstructor.reconstruct(photo)
  model = reconstructor.model
  size = reconstructor.components.renderer.image_size
  # The fitted face on the texture mesh is rasterized once, by the coarse stage; the
  # refinement, the panels and the figures reuse that raster.
  rendered = int(reconstructor.components.renderer.triangles.shape[0])   # the face region
  assert rendered < model.num_triangles
  assert calls[(rendered, (size, size))] == 1, calls
  assert calls[(model.num_triangles, (size, size))] == 0, calls
  before_save = sum(calls.values())
  written = result.save(tmp_path / "out", texture_size=128)
  # Saving adds exactly two rasterizations: the face's UV layout, shared by every face
  # texture, and the whole head's atlas (format "head").
  assert sum(calls.values()) == before_save + 2, calls
  names = sorted(pathlib.Path(p).name for p in written)
  assert names == sorted(["astronaut.obj", "astronaut.mtl", "astronaut_texture.png",
                          "astronaut.ply", "astronaut.glb", "astronaut_coarse_texture.png",
                          "astronaut_lit_texture.png", "astronaut_overlay.png",
                          "astronaut_strip.png", "astronaut.json", "astronaut_head.glb",
                          "astronaut_head.obj", "astronaut_head.mtl", "astronaut_head.ply",
                          "astronaut_head_neutral.obj", "astronaut_head_neutral.mtl",
                          "astronaut_head_texture.png"])
  mesh = trimesh.load(tmp_path / "out" / "astronaut.ply", process=False)
  assert mesh.vertices.shape == (model.num_vertices, 3)
  # The stage results are what was handed forward, not recomputed copies.
  for key in ("psnr_coarse_db", "psnr_fine_db", "ssim_fine", "identity_distance_fine",
              "landmark_nme", "refine_psnr_fine", "fit_total"):
    assert np.isfinite(result.figures[key]), key
  # The fine albedo is the photo's where it shows the face: it must explain the photo
  # better than the coarse 3DMM albedo.
  assert result.figures["psnr_fine_db"] > result.figures["psnr_coarse_db"] + 1.0
  assert result.renders.fine.shape == (size, size, 3)
  assert result.face.source_path == str(photo)


def test_a_bad_photo_fails_with_a_one_line_reason(reconstructor, tmp_path):
  from facegcn_tf import pipeline
  (tmp_path / "in").mkdir()
  (tmp_path / "in" / "empty.jpg").write_bytes(b"")
  summary = pipeline.run(pipeline.resolve_inputs(str(tmp_path / "in")), tmp_path / "out",
                         reconstructor, progress=False)
  assert summary.all_failed and len(summary.failed) == 1
  assert "\n" not in summary.failed[0][1]
