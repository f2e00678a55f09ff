"""The Apache Beam pipelines (facegcn_tf.scale) on the in-process DirectRunner against the
single-process path: the same records, the same coarse fits, the infer outputs, the dead-letter
file, re-runs that skip finished items; and the fit started from an R-Net's regression."""

import json
import pathlib
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from facegcn_tf.assets import loaders
from facegcn_tf.data import dataset
from facegcn_tf.fitting import losses
from facegcn_tf.fitting.fitter import Fitter, FitConfig
from facegcn_tf.morphable import load_model
from facegcn_tf.networks.rnet import build_rnet
from facegcn_tf.render.renderer import FaceRenderer
from facegcn_tf.scale import fit as beam_fit
from facegcn_tf.scale import options as beam_options
from facegcn_tf.scale import prepare as beam_prepare
from facegcn_tf.training import coarse_fits
from facegcn_tf.training import preparation

REPO = pathlib.Path(__file__).resolve().parent.parent
SETTINGS = preparation.PrepareSettings(face_model="ict_coarse", identity="none")
FIT = coarse_fits.CoarseSettings(face_model="ict_coarse", identity="none", fit_steps=0.05)


def _direct():
  return beam_options.pipeline_options("DirectRunner")


@pytest.fixture(scope="module")
def photos(photos_and_a_corrupt_file):
  return photos_and_a_corrupt_file


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, photos):
  """(plain folder, Beam folder, Beam summary): the same photos prepared both ways."""
  plain = tmp_path_factory.mktemp("plain")
  preprocessor, feature_fn, config = SETTINGS.build()
  dataset.prepare_directory(str(photos), str(plain), preprocessor, shard_size=2,
                            feature_fn=feature_fn, config=config)
  beam = tmp_path_factory.mktemp("beam")
  summary = beam_prepare.prepare(str(photos), str(beam), SETTINGS, _direct(), shard_size=2)
  return plain, beam, summary


def test_beam_prepare_writes_the_plain_records_and_a_dead_letter(prepared):
  plain, beam, summary = prepared
  assert (summary.shards, summary.resumed, summary.done, summary.failed) == (2, 0, 2, 1)
  shards = sorted(p.name for p in plain.iterdir())
  assert shards == [f"faces-0000{i}.{e}" for i in range(2) for e in ("json", "tfrecord")]
  assert sorted(p.name for p in beam.iterdir()) == sorted(shards + ["failures.txt"])
  for name in shards:
    if name.endswith(".tfrecord"):    # the same serialised records, byte for byte
      assert (beam / name).read_bytes() == (plain / name).read_bytes(), name
    else:                             # the same manifests: inputs, done, failures, config
      assert json.loads((beam / name).read_text()) == json.loads((plain / name).read_text())
  records = [tf.train.Example.FromString(r.numpy())
             for r in tf.data.TFRecordDataset(str(beam / "faces-00000.tfrecord"))]
  assert [r.features.feature["source/path"].bytes_list.value[0] for r in records] == [
      b"a_astronaut.png"]
  failures = beam_options.read_failures(str(beam))
  assert list(failures) == ["b_corrupt.jpg"] and "cannot load image" in failures["b_corrupt.jpg"]
  # The coarse stage and the trainer accept the Beam-made set.
  prep = preparation.check_preparation(str(beam / "faces-*.tfrecord"),
                                       load_model("ict_coarse"))
  assert prep.shards_checked == 2


def test_beam_prepare_rerun_skips_finished_shards(prepared, photos):
  _, beam, _ = prepared
  stamps = {p.name: p.stat().st_mtime_ns for p in beam.glob("faces-*")}
  again = beam_prepare.prepare(str(photos), str(beam), SETTINGS, _direct(), shard_size=2)
  assert (again.resumed, again.done, again.failed) == (2, 0, 0)
  assert {p.name: p.stat().st_mtime_ns for p in beam.glob("faces-*")} == stamps
  (beam / "faces-00001.json").unlink()      # an unfinished shard is redone, only it
  third = beam_prepare.prepare(str(photos), str(beam), SETTINGS, _direct(), shard_size=2)
  assert (third.resumed, third.done, third.failed) == (1, 1, 0)
  assert (beam / "faces-00000.tfrecord").stat().st_mtime_ns == stamps["faces-00000.tfrecord"]
  assert (beam / "faces-00001.json").exists()


def test_beam_fit_gives_the_plain_coarse_fits_and_resumes(prepared, tmp_path):
  plain, beam, _ = prepared
  coarse_fn, model = FIT.build()
  expected = coarse_fits.cache_records(str(plain / "faces-*.tfrecord"), coarse_fn, model.name,
                                       model.layout, cache_dir=str(tmp_path / "plain"))
  assert expected.fitted == 2
  data = tmp_path / "data"        # the Beam-made shards and one with a record the fit refuses
  data.mkdir()
  for name in ("faces-00000.tfrecord", "faces-00001.tfrecord"):
    shutil.copy(beam / name, data / name)
  example = tf.train.Example.FromString(next(iter(
      tf.data.TFRecordDataset(str(beam / "faces-00000.tfrecord")))).numpy())
  example.features.feature["source/path"].bytes_list.value[0] = b"bad.png"
  example.features.feature["landmarks68"].float_list.value[0] = float("nan")
  with tf.io.TFRecordWriter(str(data / "faces-00002.tfrecord")) as writer:
    writer.write(example.SerializeToString())
  pattern = str(data / "faces-*.tfrecord")
  cache = tmp_path / "beam"
  summary = beam_fit.fit(pattern, FIT, model, _direct(), cache_dir=str(cache))
  assert (summary.fitted, summary.already_done, summary.failed) == (2, 0, 1)
  failures = beam_options.read_failures(str(cache))
  assert list(failures) == ["bad.png"] and "NaN" in failures["bad.png"], failures
  pattern = str(data / "faces-0000[01].tfrecord")
  assert not list((cache / coarse_fits.PARTS_DIR).glob("*.npz"))   # merged into the shards'
  want = coarse_fits.load_coarse_coeffs(str(tmp_path / "plain"), model.layout, model.name)
  got = coarse_fits.load_coarse_coeffs(str(cache), model.layout, model.name)
  assert sorted(got) == sorted(want) == ["a_astronaut.png", "c_grace_hopper.jpg"]
  for name, coeffs in want.items():
    np.testing.assert_allclose(got[name], coeffs, rtol=1e-4, atol=1e-5)
  assert np.all(np.isfinite(coarse_fits.read_cache_file(
      str(cache / "faces-00000.npz"))["photo_loss"]))
  assert coarse_fits.check_coverage(got, pattern, str(cache)) == 2
  # A re-run fits nothing; a lost shard file is fitted again, alone.
  again = beam_fit.fit(pattern, FIT, model, _direct(), cache_dir=str(cache))
  assert (again.fitted, again.already_done) == (0, 2)
  (cache / "faces-00001.npz").unlink()
  third = beam_fit.fit(pattern, FIT, model, _direct(), cache_dir=str(cache))
  assert (third.fitted, third.already_done) == (1, 1)


def test_beam_infer_writes_faces_dead_letters_and_skips_done_ones(photos, tmp_path):
  listing = tmp_path / "photos.txt"
  listing.write_text(f"# three photos and a missing one\n{photos}/a_astronaut.png\n"
                     f"{photos}/b_corrupt.jpg\n{photos}/missing.jpg\n")
  out = tmp_path / "out"
  args = [sys.executable, str(REPO / "scripts" / "infer.py"), f"--input={listing}",
          f"--output_dir={out}", "--runner=DirectRunner", "--preset=fast", "--fit_steps=0.05",
          "--formats=obj,json", "--texture_size=128", "--progress=false"]
  first = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=REPO)
  assert first.returncode == 0, first.stderr[-3000:]
  assert "1 done, 1 skipped, 1 failed on DirectRunner" in first.stdout
  report = json.loads((out / "a_astronaut.json").read_text())
  assert (out / "a_astronaut.obj").exists() and report["flags"]["fit_steps"] == 0.05
  failures = beam_options.read_failures(str(out))
  assert list(failures) == [f"{photos}/b_corrupt.jpg"]
  assert "cannot load image" in failures[f"{photos}/b_corrupt.jpg"]
  assert "listed, but not found" in first.stdout
  stamp = (out / "a_astronaut.json").stat().st_mtime_ns
  second = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=REPO)
  assert second.returncode == 0, second.stderr[-3000:]
  assert "0 done, 2 skipped, 1 failed" in second.stdout
  assert (out / "a_astronaut.json").stat().st_mtime_ns == stamp


@pytest.fixture(scope="module")
def rnet_weights(tmp_path_factory):
  """A small R-Net with random (not zero) heads, so its regression is not trivial."""
  keras.utils.set_random_seed(1)
  net = build_rnet(load_model("ict_coarse").layout, input_size=64)
  for layer in net.layers:
    if layer.name.startswith("head_"):
      for w in layer.weights:
        w.assign(np.random.default_rng(2).normal(0, 1e-3, w.shape).astype(np.float32))
  folder = tmp_path_factory.mktemp("rnet")
  net.save_weights(str(folder / "rnet.weights.h5"))
  (folder / "rnet.json").write_text(json.dumps({"input_size": 64}))
  return folder / "rnet.weights.h5"


def test_the_fit_starts_from_the_rnet_regression(prepared, rnet_weights):
  _, beam, _ = prepared
  model = load_model("ict_coarse")
  records = [r.numpy() for r in tf.data.TFRecordDataset(str(beam / "faces-00000.tfrecord"))]
  _, images, landmarks, masks = coarse_fits.parse_records(records)
  predictor = loaders.load_rnet_predictor(str(rnet_weights), model.layout)
  start = np.asarray(predictor(tf.constant(images)))
  fitter = Fitter(FaceRenderer(model), config=FitConfig().scaled(0.05))
  from_rnet = fitter(images, landmarks, masks, initial_coeffs=start)
  default = fitter(images, landmarks, masks)
  # Step 0 of the first stage is the loss of the regression itself.
  params = {k: tf.constant(v) for k, v in model.layout.split(start).items()}
  terms, _ = fitter.loss_terms(params, {"landmarks": tf.constant(landmarks)}, None)
  regression_loss = losses.total_loss(terms, fitter.weights).numpy()
  first = next(iter(from_rnet.history))
  np.testing.assert_allclose(from_rnet.history[first][0], regression_loss, rtol=1e-5)
  assert abs(default.history[first][0][0] - regression_loss[0]) > 1e-3 * abs(regression_loss[0])
  np.testing.assert_allclose(from_rnet.initial_pose[0], start[:, model.layout.slices()["angles"]])
  # fit_data.py --rnet_checkpoint --rnet_init: fitted (finite fit losses), not regressed.
  settings = coarse_fits.CoarseSettings(face_model="ict_coarse", identity="none",
                                        fit_steps=0.05, rnet_checkpoint=str(rnet_weights),
                                        rnet_init=True)
  coarse_fn, _ = settings.build()
  coeffs, photo, _ = coarse_fn(images, landmarks, masks)
  np.testing.assert_allclose(coeffs, from_rnet.coeffs.numpy(), rtol=1e-4, atol=1e-5)
  assert np.all(np.isfinite(photo))
  proc = subprocess.run(
      [sys.executable, str(REPO / "scripts" / "fit_data.py"),
       f"--data={beam}/faces-*.tfrecord", "--rnet_init", "--progress=false"],
      capture_output=True, text=True, timeout=300, cwd=REPO)
  assert proc.returncode != 0 and "--rnet_init needs --rnet_checkpoint" in proc.stderr


def test_beam_infer_names_a_missing_face_model_before_the_run(photos, tmp_path):
  """The workers would each fail to load it: the launcher says so once, in one line."""
  out = tmp_path / "out"
  proc = subprocess.run(
      [sys.executable, str(REPO / "scripts" / "infer.py"), f"--input={photos}",
       f"--output_dir={out}", "--runner=DirectRunner", "--face_model=bfm",
       f"--model_path={tmp_path / 'BFM_model_front.mat'}", "--progress=false"],
      capture_output=True, text=True, timeout=300, cwd=REPO)
  assert proc.returncode == 2, proc.stderr[-2000:]
  last = proc.stderr.strip().splitlines()[-1]
  assert last.startswith("infer.py: usage error:") and "BFM_model_front.mat" in last, last
  assert not out.exists()
