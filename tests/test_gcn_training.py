"""GCN texture training, coarse-fit cache and per-image refinement on synthetic ICT faces.

Tiny TFRecords (`synthetic_records`: the data pipeline's writer) hold faces of
the coarse ICT model (9,409 vertices) rendered with a striped, high-frequency
albedo over flat backgrounds; `coarse_fits.fit_records` fits them with a
short schedule. The trainer runs `configs/smoke.cfg`'s settings (112 px,
light widths, GAN with one critic step).
"""

import dataclasses
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.framework import config as tf_config

from facegcn_tf.fitting.fitter import FitConfig
from facegcn_tf.morphable.ict import load_ict
from facegcn_tf.render.camera import Camera
from facegcn_tf.render.renderer import FaceRenderer
from facegcn_tf.training import coarse_fits
from facegcn_tf.training import gcn_trainer
from facegcn_tf.refinement import generator_spec
from facegcn_tf.refinement import per_image
from facegcn_tf.refinement import inputs as ri
from facegcn_tf.training import runtime as rt
from facegcn_tf.training import synthetic_records

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_FACES = 4
TINY_FIT = FitConfig(landmark_steps=30, photo_steps=10, refine_steps=0)


@pytest.fixture(scope="module")
def face_model():
  return load_ict(subdivide=False)


@pytest.fixture(scope="module")
def written(tmp_path_factory, face_model):
  """NUM_FACES striped faces in two shards (see `synthetic_records`)."""
  return synthetic_records.write_records(str(tmp_path_factory.mktemp("records")), face_model,
                                         count=NUM_FACES, shard_size=2)


@pytest.fixture(scope="module")
def synthetic(written):
  return written["faces"]


@pytest.fixture(scope="module")
def records(written, face_model):
  """The shards' glob and their (briefly) fitted coarse coefficients."""
  pattern = written["pattern"]
  summary = coarse_fits.fit_records(pattern, FaceRenderer(face_model), batch_size=2,
                                    fit_config=TINY_FIT)
  return pattern, summary


# ---- coarse-fit cache -----------------------------------------------------------------------


def test_fit_records_fits_every_record_once_and_resumes(records, face_model):
  pattern, summary = records
  assert summary.fitted == NUM_FACES and summary.already_done == 0 and summary.shards == 2
  table = coarse_fits.load_coarse_coeffs(summary.cache_dir, face_model.layout, face_model.name)
  assert sorted(table) == [f"face{i}.png" for i in range(NUM_FACES)]
  assert all(v.shape == (face_model.layout.total,) and np.all(np.isfinite(v))
             for v in table.values())
  # A second run finds everything done and rewrites nothing.
  files = sorted(os.listdir(summary.cache_dir))
  stamps = [os.stat(os.path.join(summary.cache_dir, f)).st_mtime_ns for f in files]
  again = coarse_fits.fit_records(pattern, FaceRenderer(face_model), batch_size=2,
                                  fit_config=TINY_FIT)
  assert again.fitted == 0 and again.already_done == NUM_FACES
  assert [os.stat(os.path.join(summary.cache_dir, f)).st_mtime_ns for f in files] == stamps


def test_fit_records_resumes_a_partial_shard(records, face_model, tmp_path):
  pattern, summary = records
  cache = tmp_path / "cache"
  cache.mkdir()
  # Keep only the first record of shard 0: the rerun must fit exactly the other three.
  first = coarse_fits.read_cache_file(os.path.join(summary.cache_dir, "faces-00000.npz"))
  np.savez(cache / "faces-00000.npz", **{k: (v[:1] if k in (
      "paths", "coeffs", "photo_loss", "landmark_loss") else v) for k, v in first.items()})
  result = coarse_fits.fit_records(pattern, FaceRenderer(face_model), cache_dir=str(cache),
                                   batch_size=2, fit_config=TINY_FIT)
  assert result.fitted == NUM_FACES - 1 and result.already_done == 1
  table = coarse_fits.load_coarse_coeffs(str(cache), face_model.layout)
  assert len(table) == NUM_FACES


def test_fit_data_script_skips_what_is_cached_and_names_missing_data(records, tmp_path):
  pattern, summary = records
  script = os.path.join(REPO, "scripts", "fit_data.py")
  proc = subprocess.run([sys.executable, script, f"--data={pattern}", "--face_model=ict_coarse",
                         "--identity=none", "--progress=false"],
                        cwd=REPO, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert f"fitted 0 records, {NUM_FACES} already done, 2 shards" in proc.stdout
  assert summary.cache_dir in proc.stdout
  proc = subprocess.run([sys.executable, script, f"--data={tmp_path}/none-*.tfrecord"],
                        cwd=REPO, capture_output=True, text=True, timeout=300)
  assert proc.returncode != 0
  assert proc.stderr.strip().splitlines()[-1] == (
      f"fit_data.py: error: no TFRecord files match --data='{tmp_path}/none-*.tfrecord' "
      "(make them with scripts/prepare_data.py)")


def test_cache_errors_are_one_line(records, face_model, tmp_path):
  pattern, summary = records
  with pytest.raises(Exception, match="fit_data.py") as err:
    coarse_fits.load_coarse_coeffs(str(tmp_path), face_model.layout, face_model.name, pattern)
  assert "\n" not in str(err.value)
  table = coarse_fits.load_coarse_coeffs(summary.cache_dir, face_model.layout)
  table.pop("face2.png")
  with pytest.raises(Exception, match="1 of 4 records have no coarse coefficients"):
    coarse_fits.check_coverage(table, pattern, summary.cache_dir)
  with pytest.raises(ValueError, match="fitted with face model 'ict_coarse', not 'bfm'"):
    coarse_fits.load_coarse_coeffs(summary.cache_dir, face_model.layout, "bfm")


# ---- training -------------------------------------------------------------------------------


def _scalars(event_dir):
  """{tag: [(step, value)]} from the TensorBoard event files under `event_dir`."""
  out = {}
  for root, _, files in os.walk(event_dir):
    for name in files:
      if "tfevents" not in name:
        continue
      for event in tf.compat.v1.train.summary_iterator(os.path.join(root, name)):
        for value in event.summary.value:
          array = tf.make_ndarray(value.tensor)
          if array.ndim == 0:
            out.setdefault(value.tag, []).append((event.step, float(array)))
  return {k: [v for _, v in sorted(vals)] for k, vals in out.items()}


def test_smoke_config_trains_and_the_losses_fall(records, tmp_path, face_model, synthetic, encoder):
  pattern, _ = records
  out = tmp_path / "smoke"
  proc = subprocess.run(
      [sys.executable, os.path.join(REPO, "scripts", "train.py"), "--flagfile=configs/smoke.cfg",
       f"--data={pattern}", f"--output_dir={out}", "--progress=false"],
      cwd=REPO, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "gcn: started at step 0, now at step 24" in proc.stdout
  scalars = _scalars(out / "tensorboard")
  pixel, vertex = scalars["loss/pixel"], scalars["loss/vertex_albedo"]
  assert len(pixel) == 24
  # Two alternating-ish batches: compare the first and last 4 steps.
  assert np.mean(pixel[-4:]) < 0.85 * np.mean(pixel[:4]), pixel
  assert np.mean(vertex[-4:]) < 0.7 * np.mean(vertex[:4]), vertex
  # The σ ramp (2 epochs of 2 steps), the critic from the second step on, the lr.
  np.testing.assert_allclose(scalars["sigma/sigma1"][:5], [0, 0.25, 0.5, 0.75, 1.0], atol=1e-6)
  assert len(scalars["critic/loss"]) == 23
  assert all(np.isfinite(scalars["critic/gradient_penalty"]))
  np.testing.assert_allclose(scalars["lr/generator"][0], 1e-3, rtol=1e-6)
  # Exported generator + checkpoints.
  assert (out / generator_spec.WEIGHTS_FILE).is_file() and (out / generator_spec.SPEC_FILE).is_file()
  assert sorted(p.name for p in (out / "checkpoints").glob("ckpt-*.index")) == [
      "ckpt-12.index", "ckpt-24.index"]
  # The exported generator loads (for its face model only) and runs feed-forward.
  generator, spec = generator_spec.load_generator(str(out), face_model)
  assert spec.refiner_widths == "8,16" and spec.order == 6 and spec.face_model == "ict_coarse"
  with pytest.raises(ValueError, match="trained on face model 'ict_coarse'"):
    generator_spec.load_generator(str(out), dataclasses.replace(face_model, name="bfm"))
  renderer = FaceRenderer(face_model, Camera().resized(112))
  images = tf.image.resize(synthetic["images"][:1], [112, 112], method="area").numpy()
  mask = np.ones([1, 112, 112], np.float32)
  result = per_image.refine(renderer, images, synthetic["coeffs"][:1], mask, encoder,
                            per_image.PerImageConfig(steps=0), checkpoint=str(out))
  inputs = ri.build_inputs(renderer, images, synthetic["coeffs"][:1], mask, encoder=encoder)
  expected = ri.to_unit(generator(ri.generator_inputs(inputs))).numpy()
  np.testing.assert_allclose(result.fine_albedo, expected, atol=1e-6)


def _trainer(out_dir, pattern, face_model, steps):
  # Eager steps: no tracing (tens of seconds per trainer here); the traced path runs in
  # the smoke test. Resume exactness is about what the checkpoint holds either way.
  keras.utils.set_random_seed(0)
  runtime = rt.RuntimeConfig(output_dir=str(out_dir), checkpoint_every=0, summary_every=0,
                             image_summary_every=0, progress=False, seed=5, run_eagerly=True)
  config = gcn_trainer.GCNTrainConfig(
      runtime=runtime, data=pattern, batch_size=2, steps=steps, learning_rate=1e-3,
      face_model="ict_coarse", image_size=64, decoder_widths="8,8,8,8", refiner_widths="8,8",
      ramp_epochs=1.0, critic_steps=1, shuffle_buffer=4)
  return gcn_trainer.GCNTrainer(config, face_model=face_model)


def _weights(trainer):
  models = [trainer.generator, trainer.critic]
  opts = [trainer.generator_optimizer, trainer.critic_optimizer]
  return ([v.numpy() for m in models for v in m.weights]
          + [v.numpy() for o in opts for v in o.variables])


def test_checkpoint_resume_is_bit_identical(records, face_model, tmp_path):
  pattern, _ = records
  tf.config.experimental.enable_op_determinism()
  try:
    straight = _trainer(tmp_path / "straight", pattern, face_model, 4)
    straight.train()
    first = _trainer(tmp_path / "resumed", pattern, face_model, 2)
    first.train()
    del first  # "killed" after its checkpoint at step 2
    second = _trainer(tmp_path / "resumed", pattern, face_model, 4)
    result = second.train()
  finally:
    tf_config.disable_op_determinism()  # not exported under tf.config
  assert result.first_step == 2 and result.last_step == 4
  a, b = _weights(straight), _weights(second)
  assert len(a) == len(b) and len(a) > 10
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x, y)
  # The run really moved: weights differ from a fresh start.
  fresh = _weights(_trainer(tmp_path / "fresh", pattern, face_model, 4))
  assert any(not np.array_equal(x, y) for x, y in zip(a, fresh))


def test_paper_config_without_bfm_fails_with_one_line(tmp_path):
  from facegcn_tf.errors import AssetNotFoundError
  from facegcn_tf.morphable import bfm
  try:
    bfm.find_bfm()
    pytest.skip("a BFM file is installed here")
  except AssetNotFoundError:
    pass
  env = dict(os.environ)
  proc = subprocess.run(
      [sys.executable, os.path.join(REPO, "scripts", "train.py"), "--flagfile=configs/paper.cfg",
       f"--data={tmp_path}/none-*.tfrecord", f"--output_dir={tmp_path}/run"],
      cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
  assert proc.returncode != 0
  lines = [l for l in proc.stderr.strip().splitlines() if l.startswith("train.py: error:")]
  assert len(lines) == 1, proc.stderr[-2000:]
  assert "BFM" in lines[0] and f"{tmp_path}/none-*.tfrecord" in lines[0]


def _flags(name):
  with open(os.path.join(REPO, "configs", name), encoding="utf-8") as f:
    lines = [l.strip() for l in f if l.strip() and not l.startswith("#")]
  return dict(l.split("=", 1) if l.count("=") == 1 else l.rsplit("=", 1) for l in lines)


def test_smoke_config_differs_from_the_paper_only_in_size_and_speed():
  paper, smoke = _flags("paper.cfg"), _flags("smoke.cfg")
  differs = {k for k in set(paper) | set(smoke) if paper.get(k) != smoke.get(k)}
  assert differs == {
      "--face_model", "--output_dir", "--batch_size", "--epochs", "--steps", "--learning_rate",
      "--image_size", "--set=decoder_widths", "--set=refiner_widths", "--set=ramp_epochs",
      "--set=critic_steps", "--set=shuffle_buffer", "--checkpoint_every", "--max_to_keep",
      "--summary_every", "--image_summary_every"}
  assert paper["--face_model"] == "bfm" and paper["--set=loss_variant"] == "paper"


# ---- per-image refinement -------------------------------------------------------------------


@pytest.fixture(scope="module")
def encoder(face_model):
  from facegcn_tf.assets import loaders
  return loaders.load_identity_encoder("dlib", template5=face_model.template5)


def test_per_image_refinement_recovers_a_striped_texture(synthetic, face_model, encoder):
  size = 112
  renderer = FaceRenderer(face_model, Camera().resized(size))
  images = tf.image.resize(synthetic["images"][:1], [size, size], method="area").numpy()
  mask = tf.image.resize(synthetic["mask"][:1, ..., None], [size, size], method="area")
  mask = (mask.numpy()[..., 0] > 0.99).astype(np.float32)
  coeffs = synthetic["coeffs"][:1]  # true geometry and light; coarse albedo = the plain mean
  refiner = per_image.PerImageRefiner(renderer, encoder, per_image.PerImageConfig(steps=60))
  result = refiner(images, coeffs, mask)
  psnr_coarse, psnr_fine = result.figures["psnr_coarse"][0], result.figures["psnr_fine"][0]
  assert psnr_fine > psnr_coarse + 4.0, (psnr_coarse, psnr_fine)
  # The stripes are in the recovered albedo: closer to the truth than the coarse albedo
  # on the vertices the photo shows.
  truth = synthetic["albedo"]
  inputs = ri.build_inputs(renderer, images, coeffs, mask)
  seen = inputs.sampled.numpy()[0, :, 3] > 0
  fine_err = np.abs(result.fine_albedo[0] - truth)[seen].mean()
  coarse_err = np.abs(result.coarse_albedo[0] - truth)[seen].mean()
  # (0.6 before the face-region renderer; the region's border vertices now see fewer
  # pixels, measured 0.601.)
  assert fine_err < 0.65 * coarse_err, (fine_err, coarse_err)
  assert result.fine_albedo.min() >= 0 and result.fine_albedo.max() <= 1
  assert result.history["pixel"].shape == (60, 1)
  assert result.history["pixel"][-5:].mean() < 0.5 * result.history["pixel"][:5].mean()
  # A second call starts from the same initial state: the same result, bit for bit.
  again = refiner(images, coeffs, mask)
  np.testing.assert_array_equal(again.fine_albedo, result.fine_albedo)


def test_refiner_contract_and_reuse_of_the_coarse_raster(synthetic, face_model, encoder):
  size = 64
  renderer = FaceRenderer(face_model, Camera().resized(size))
  images = tf.image.resize(synthetic["images"][:2], [size, size], method="area").numpy()
  mask = tf.image.resize(synthetic["mask"][:2, ..., None], [size, size]).numpy()[..., 0]
  coeffs = synthetic["coeffs"][:2]
  refiner = per_image.PerImageRefiner(renderer, encoder, per_image.PerImageConfig(steps=3))
  result = refiner(images, coeffs, mask)
  fine = result.fine_albedo
  assert fine.shape == (2, face_model.mean_shape.shape[0], 3) and fine.dtype == np.float32
  assert 0.0 <= fine.min() and fine.max() <= 1.0
  assert result.render.shape == (2, size, size, 3) and result.lit_colors.shape == fine.shape
  for key in ("psnr_coarse", "psnr_fine", "identity_coarse", "identity_fine", "loss_pixel"):
    assert result.figures[key].shape == (2,) and np.all(np.isfinite(result.figures[key])), key
  # Given the coarse stage's geometry, raster and visibility (and the photos' features), the
  # refiner reuses them: the same result, bit for bit, call after call.
  geometry = renderer.geometry(tf.constant(coeffs))
  raster = renderer.rasterize(geometry)
  visibility = renderer.visibility(geometry, raster)
  for _ in range(2):
    again = refiner(images, coeffs, mask, features=encoder(images), geometry=geometry,
                    raster=raster, visibility=visibility)
    np.testing.assert_array_equal(again.fine_albedo, fine)
    np.testing.assert_array_equal(again.render, result.render)
  with pytest.raises(ValueError, match="coeffs must be"):
    refiner(images, coeffs[:, :10], mask)


def test_refinement_inputs_reject_bad_input(synthetic, face_model):
  renderer = FaceRenderer(face_model, Camera().resized(64))
  images = tf.image.resize(synthetic["images"][:1], [64, 64]).numpy()
  mask = np.ones([1, 64, 64], np.float32)
  coeffs = synthetic["coeffs"][:1]
  inputs = ri.build_inputs(renderer, images, coeffs, mask)
  assert inputs.sampled.shape == (1, face_model.mean_shape.shape[0], 4)
  vis = inputs.sampled.numpy()[0, :, 3]
  assert set(np.unique(vis)) <= {0.0, 1.0} and 0 < vis.mean() < 1
  np.testing.assert_array_equal(inputs.sampled.numpy()[0, vis == 0, :3], 0.0)
  with pytest.raises(ValueError, match=r"\[0, 1\] floats"):
    ri.build_inputs(renderer, images / 255.0, coeffs, mask)
  with pytest.raises(ValueError, match="NaN"):
    ri.build_inputs(renderer, images, coeffs * np.nan, mask)
  with pytest.raises(ValueError, match="images must be"):
    ri.build_inputs(renderer, images[:, :32], coeffs, mask)
  with pytest.raises(ValueError, match="batch sizes"):
    ri.build_inputs(renderer, np.concatenate([images, images]), coeffs, np.concatenate([mask, mask]))


def test_generator_hyper_parameters_are_declared_once_and_old_specs_load(tmp_path):
  names = {f.name: f.default for f in dataclasses.fields(generator_spec.GeneratorHParams)}
  assert {"refiner", "decoder", "activation", "order", "decoder_widths", "refiner_widths",
          "factors"} <= set(names)
  runtime = rt.RuntimeConfig(output_dir=str(tmp_path))
  train = gcn_trainer.GCNTrainConfig(runtime=runtime, data="x-*.tfrecord", steps=1)
  for config in (train, per_image.PerImageConfig(steps=3),
                 generator_spec.GeneratorSpec(face_model="ict", feature_dim=8)):
    assert isinstance(config, generator_spec.GeneratorHParams)
    expected = dict(names, order=2) if isinstance(config, per_image.PerImageConfig) else names
    assert {n: getattr(config, n) for n in names} == expected
  # Validation lives in GeneratorHParams and applies to every config.
  for make in (lambda **kw: gcn_trainer.GCNTrainConfig(runtime=runtime, data="x", steps=1, **kw),
               per_image.PerImageConfig):
    with pytest.raises(ValueError, match="order must be a positive int"):
      make(order=0)
    with pytest.raises(ValueError, match="factors"):
      make(factors="4,0")
  # --set keeps the flat names; the spec carries every hyper-parameter.
  train = rt.override_config(train, ["order=3", "factors=4,4", "refiner_widths=8,16"])
  spec = train.generator_spec(feature_dim=5)
  assert (spec.order, spec.factor_tuple(), spec.refiner_widths, spec.identity) == (
      3, (4, 4), "8,16", "dlib")
  assert per_image.PerImageConfig(order=4).spec("ict", 5).hparams() == \
      generator_spec.GeneratorHParams(order=4)
  # A spec saved before GeneratorHParams existed (factors a JSON list) loads unchanged.
  old = {"face_model": "ict_coarse", "feature_dim": 128, "identity": "dlib",
         "factors": [4, 4, 4, 4], "refiner": "residual", "decoder": "residual",
         "activation": "relu", "order": 6, "decoder_widths": "", "refiner_widths": "8,16",
         "use_decoder": True, "use_refiner": True, "fc_weight_decay": 0.0,
         "format": generator_spec.SPEC_FORMAT}
  loaded = generator_spec.GeneratorSpec.from_json(old)
  assert loaded.factor_tuple() == (4, 4, 4, 4) and loaded.refiner_widths == "8,16"
  assert loaded.to_json() == old
