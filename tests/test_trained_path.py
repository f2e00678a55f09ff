"""The trained path end to end: train.py --stage=gcn (tiny) -> infer.py --gcn_checkpoint.

A generator is smoke-trained on synthetic ICT-coarse records (their true coefficients as
the coarse cache); infer.py then runs it feed-forward on a real photo, with an untrained
R-Net (zero-initialised heads: coefficients exactly 0) as the coarse stage so no fitting
runs. The test recomputes the generator's forward pass independently and compares it with
what infer.py wrote.
"""

import json
import pathlib
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
import tensorflow as tf
import trimesh

from facegcn_tf.morphable.ict import load_ict
from facegcn_tf.refinement import generator_spec
from facegcn_tf.training import coarse_fits
from facegcn_tf.training import synthetic_records

ROOT = pathlib.Path(__file__).resolve().parent.parent
TINY = ["--flagfile=configs/smoke.cfg", "--steps=2", "--batch_size=2", "--image_size=64",
        "--set=decoder_widths=8,8,8,8", "--set=refiner_widths=8,8", "--set=order=2",
        "--set=gan=false", "--checkpoint_every=0", "--summary_every=0",
        "--image_summary_every=0", "--progress=false", "--run_eagerly=true"]


def _run(script, *args, timeout=900):
  return subprocess.run([sys.executable, str(ROOT / "scripts" / script), *args],
                        capture_output=True, text=True, timeout=timeout, cwd=ROOT)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """A tiny generator trained by train.py on 2 synthetic faces; returns its folder."""
  model = load_ict(subdivide=False)
  data = tmp_path_factory.mktemp("records")
  written = synthetic_records.write_records(str(data), model, count=2, shard_size=2)
  cache = data / f"coarse_{model.name}"
  cache.mkdir()
  coarse_fits.write_cache_file(str(cache / "faces-00000.npz"), model.name, model.layout,
                               written["names"], list(written["faces"]["coeffs"]))
  out = tmp_path_factory.mktemp("gcn")
  proc = _run("train.py", *TINY, f"--data={written['pattern']}", f"--output_dir={out}")
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "gcn: started at step 0, now at step 2" in proc.stdout
  return out


@pytest.fixture(scope="module")
def zero_rnet(tmp_path_factory):
  """An untrained R-Net for ICT (heads zero-initialised: every coefficient is 0)."""
  from facegcn_tf.networks.rnet import build_rnet
  folder = tmp_path_factory.mktemp("rnet")
  weights = folder / "rnet.weights.h5"
  build_rnet(load_ict(subdivide=False).layout, input_size=64).save_weights(str(weights))
  (folder / "rnet.json").write_text(json.dumps({"input_size": 64}))
  return weights


@pytest.fixture(scope="module")
def photos(tmp_path_factory, astronaut):
  folder = tmp_path_factory.mktemp("photos")
  cv2.imwrite(str(folder / "a.png"), astronaut[..., ::-1])
  return folder


def _expected_fine(checkpoint, rnet, photo_rgb):
  """The generator's forward output on the photo, computed here from the parts."""
  from facegcn_tf.assets import loaders
  from facegcn_tf.data.preprocess import FacePreprocessor
  from facegcn_tf.refinement import inputs as ri
  from facegcn_tf.render.renderer import FaceRenderer
  model = load_ict(subdivide=False)
  renderer = FaceRenderer(model)
  face = FacePreprocessor(model.template5).prepare_image(photo_rgb, "a.png")
  crops = face.aligned.image[None].astype(np.float32)
  coeffs = loaders.load_rnet_predictor(rnet, model.layout)(tf.constant(crops))
  encoder = loaders.load_identity_encoder("dlib", template5=model.template5)
  inputs = ri.build_inputs(renderer, crops, coeffs, face.masks.face[None].astype(np.float32),
                           encoder=encoder)
  generator, _ = generator_spec.load_generator(str(checkpoint), model)
  fine = ri.to_unit(generator(ri.generator_inputs(inputs), training=False)).numpy()[0]
  geometry = renderer.geometry(coeffs)
  visibility = renderer.visibility(geometry, renderer.rasterize(geometry)).numpy()[0]
  return model, fine, renderer.albedo(coeffs).numpy()[0], visibility


def test_infer_runs_the_trained_generator_feed_forward(trained, zero_rnet, photos, tmp_path,
                                                       astronaut):
  from facegcn_tf.export import invisible_fill
  out = tmp_path / "out"
  # No --face_model: the checkpoint's spec says ict_coarse. No --refine_steps: feed-forward.
  proc = _run("infer.py", f"--input={photos}", f"--output_dir={out}", "--progress=false",
              f"--gcn_checkpoint={trained}", f"--rnet_checkpoint={zero_rnet}",
              "--formats=ply,json", "--albedo_source=gcn")
  assert proc.returncode == 0, proc.stderr[-3000:]
  report = json.loads((out / "a.json").read_text())
  assert report["model"] == "ict_coarse"
  assert report["extra"]["refinement"] == {"mode": "feed_forward", "steps": 0,
                                           "checkpoint": str(trained), "albedo": "gcn"}
  assert report["flags"]["refine_steps"] == 0 and report["flags"]["face_model"] == "ict_coarse"
  model, fine, coarse, visibility = _expected_fine(trained, zero_rnet, astronaut)
  # The written albedo is the forward output, unseen vertices filled as for every run.
  expected = invisible_fill.fill_invisible(fine, visibility, model.symmetry_pairs, coarse,
                                           model.triangles)
  written = trimesh.load(out / "a.ply", process=False).visual.vertex_colors[:, :3]
  diff = np.abs(written.astype(np.int32) - np.round(np.clip(expected, 0, 1) * 255).astype(np.int32))
  assert diff.max() <= 1, diff.max()
  # ...and not the coarse albedo (the generator changed it).
  seen = visibility > 0.5
  assert np.abs(fine[seen] - coarse[seen]).mean() > 0.01


def test_library_feed_forward_is_exactly_the_generator_and_fine_tuning_is_opt_in(
    trained, zero_rnet, photos, astronaut):
  from facegcn_tf import pipeline
  from facegcn_tf.pipeline.factory import build_components
  from facegcn_tf.pipeline.refine import method
  from facegcn_tf.refinement import feed_forward
  _, fine, _, _ = _expected_fine(trained, zero_rnet, astronaut)
  settings = pipeline.Settings(face_model="ict_coarse", rnet_checkpoint=str(zero_rnet),
                               gcn_checkpoint=str(trained), refine_steps=0, formats=("json",),
                               albedo_source="gcn")
  rec = pipeline.Reconstructor(settings)
  assert isinstance(rec.components.refiner, feed_forward.FeedForwardRefiner)
  photo = rec.prepare(photos / "a.png")
  result = rec.reconstruct_faces([photo], [0], ["a"])[0]
  np.testing.assert_allclose(result.fine_albedo, fine, atol=1e-6)
  assert result.extra["refinement"]["mode"] == "feed_forward"
  # Fine-tuning only on request, at the documented low learning rate.
  tuned = build_components(pipeline.Settings(
      face_model="ict_coarse", rnet_checkpoint=str(zero_rnet), gcn_checkpoint=str(trained),
      refine_steps=3))
  assert method(tuned.refiner) == {
      "mode": "per_image", "steps": 3, "learning_rate": feed_forward.FINE_TUNE_LEARNING_RATE,
      "checkpoint": str(trained), "albedo": "photo"}
  assert feed_forward.FINE_TUNE_LEARNING_RATE == 1e-4


def _edit_spec(src, dst, **changes):
  shutil.copytree(src, dst)
  path = pathlib.Path(dst) / generator_spec.SPEC_FILE
  spec = json.loads(path.read_text())
  spec.update(changes)
  path.write_text(json.dumps(spec))
  return dst


def test_mismatches_fail_before_the_first_photo_in_one_line(trained, photos, tmp_path):
  from facegcn_tf import pipeline
  from facegcn_tf.errors import AssetNotFoundError
  from facegcn_tf.pipeline.factory import build_components
  out = tmp_path / "out"
  proc = _run("infer.py", f"--input={photos}", f"--output_dir={out}", "--face_model=ict",
              f"--gcn_checkpoint={trained}", timeout=300)
  assert proc.returncode != 0 and not out.exists()
  assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1] == (
      f"infer.py: usage error: --face_model=ict, but the generator at '{trained}' was trained "
      "on 'ict_coarse' (see --helpshort)"), proc.stderr[-2000:]
  # A FaceNet-trained generator without FaceNet's graph: the loader's one-line message.
  facenet = _edit_spec(trained, tmp_path / "facenet", identity="facenet", feature_dim=1792)
  with pytest.raises(AssetNotFoundError, match="FaceNet") as err:
    build_components(pipeline.Settings(face_model="ict_coarse",
                                                gcn_checkpoint=str(facenet), refine_steps=0))
  assert "\n" not in str(err.value)
  proc = _run("infer.py", f"--input={photos}", f"--output_dir={out}",
              f"--gcn_checkpoint={facenet}", timeout=300)
  last = proc.stderr.strip().splitlines()[-1]
  assert proc.returncode == 2 and not out.exists(), proc.stderr[-2000:]
  assert last.startswith("infer.py: usage error:") and "FaceNet" in last, last
  # Features of another size than the encoder's.
  wide = _edit_spec(trained, tmp_path / "wide", feature_dim=64)
  with pytest.raises(ValueError, match="expects 64-d identity features, the 'dlib' encoder "
                                       "gives 128"):
    build_components(pipeline.Settings(face_model="ict_coarse",
                                                gcn_checkpoint=str(wide), refine_steps=0))
  # Weights that do not fit the spec (another order K).
  order = _edit_spec(trained, tmp_path / "order", order=3)
  with pytest.raises(ValueError, match="does not fit its spec"):
    build_components(pipeline.Settings(face_model="ict_coarse",
                                                gcn_checkpoint=str(order), refine_steps=0))


def test_a_facenet_trained_generator_gets_facenet_features(tmp_path, zero_rnet, photos):
  """A spec with identity=facenet: infer's pipeline loads the supplied FaceNet graph and feeds
  the generator its features (not the pipeline's dlib ones)."""
  import keras
  sys.path.insert(0, str(pathlib.Path(__file__).parent))
  from test_identity import _write_fake_facenet   # FaceNet's tensor names, tiny graph
  from facegcn_tf import pipeline
  from facegcn_tf.assets import loaders
  from facegcn_tf.refinement import inputs as ri
  graph = _write_fake_facenet(tmp_path / "facenet.pb")
  model = load_ict(subdivide=False)
  spec = generator_spec.GeneratorHParams(order=2, decoder_widths="8,8,8,8",
                                         refiner_widths="8,8").spec(model.name, 192, "facenet")
  keras.utils.set_random_seed(0)
  generator = generator_spec.build_generator(spec, generator_spec.build_hierarchy(model, spec))
  generator_spec.export_generator(generator, spec, str(tmp_path / "gcn"))
  rec = pipeline.Reconstructor(pipeline.Settings(
      face_model="ict_coarse", rnet_checkpoint=str(zero_rnet), gcn_checkpoint=str(tmp_path / "gcn"),
      refine_steps=0, identity_weights=str(graph), albedo_source="gcn"))
  refiner = rec.components.refiner
  assert refiner.encoder.kind == "facenet" and rec.components.identity.kind == "dlib"
  photo = rec.prepare(photos / "a.png")
  result = rec.reconstruct_faces([photo], [0], ["a"])[0]
  face = photo.faces[0]
  crops = face.aligned.image[None].astype(np.float32)
  encoder = loaders.load_identity_encoder("facenet", weights_path=graph)
  inputs = ri.build_inputs(rec.components.renderer, crops, np.zeros([1, model.layout.total],
                                                                    np.float32),
                           face.masks.face[None].astype(np.float32), encoder=encoder)
  expected = ri.to_unit(generator(ri.generator_inputs(inputs), training=False)).numpy()[0]
  np.testing.assert_allclose(result.fine_albedo, expected, atol=1e-6)
