"""The Beam pipelines on an object store: photos, records, coarse caches and faces on remote
paths (a Dataflow job's ``gs://`` folders), here TensorFlow's ``ram://`` store made visible to
Beam by `ram_filesystem`. The results must equal the local path's, byte for byte where the
local path is deterministic, and nothing may land on the local disk instead."""

import json
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import ram_filesystem
from facegcn_tf import pipeline
from facegcn_tf import storage
from facegcn_tf.data import dataset
from facegcn_tf.pipeline import batch
from facegcn_tf.scale import fit as beam_fit
from facegcn_tf.scale import infer as beam_infer
from facegcn_tf.scale import options as beam_options
from facegcn_tf.scale import prepare as beam_prepare
from facegcn_tf.training import coarse_fits
from facegcn_tf.training import gcn_trainer
from facegcn_tf.training import preparation
from facegcn_tf.training import runtime as rt

REPO = pathlib.Path(__file__).resolve().parent.parent
# dlib identity features: the local path computes them 16 faces at a time, Beam one by one.
SETTINGS = preparation.PrepareSettings(face_model="ict_coarse", identity="dlib")
FIT = coarse_fits.CoarseSettings(face_model="ict_coarse", identity="none", fit_steps=0.05)
INFER_FLAGS = ["--preset=fast", "--face_model=ict_coarse", "--fit_steps=0.05",
               "--formats=obj,ply,png,json", "--texture_size=128", "--progress=false"]


DIRECT = beam_options.pipeline_options("DirectRunner")


@pytest.fixture(scope="module")
def bucket(photos_and_a_corrupt_file):
  """A fresh ``ram://`` bucket holding the photos under ``photos/``."""
  url = "ram://test-beam-remote"
  ram_filesystem.upload_tree(photos_and_a_corrupt_file, f"{url}/photos")
  return url


def _no_local_spill(folder: pathlib.Path):
  """Nothing named like the URL was made on the local disk (``open('ram://...')`` would)."""
  assert not [p for p in folder.rglob("*") if p.name.startswith("ram:")]


def test_remote_prepare_and_fit_equal_the_local_ones(bucket, tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  # Local runner: the remote photos into a local folder (dlib features in batches).
  plain = tmp_path / "plain"
  preprocessor, feature_fn, config = SETTINGS.build()
  dataset.prepare_directory(f"{bucket}/photos", str(plain), preprocessor, shard_size=2,
                            feature_fn=feature_fn, config=config)
  # Beam: the remote photos into remote shards (features one face at a time).
  records = f"{bucket}/records"
  summary = beam_prepare.prepare(f"{bucket}/photos", records, SETTINGS, DIRECT, shard_size=2)
  assert (summary.shards, summary.done, summary.failed) == (2, 2, 1)
  names = [f"faces-0000{i}.{e}" for i in range(2) for e in ("json", "tfrecord")]
  assert sorted(p.name for p in plain.iterdir()) == names
  assert sorted(tf.io.gfile.listdir(records)) == names + ["failures.txt"]
  for name in names:
    local, remote = (plain / name).read_bytes(), storage.read_bytes(f"{records}/{name}")
    if name.endswith(".tfrecord"):
      assert remote == local, name     # the same records, identity features included
    else:
      assert json.loads(remote) == json.loads(local), name
  failures = beam_options.read_failures(records)
  assert list(failures) == ["b_corrupt.jpg"]
  assert "cannot load image" in failures["b_corrupt.jpg"]
  # A re-run keeps every finished remote shard.
  again = beam_prepare.prepare(f"{bucket}/photos", records, SETTINGS, DIRECT, shard_size=2)
  assert (again.resumed, again.done) == (2, 0)

  pattern = f"{records}/faces-*.tfrecord"
  coarse_fn, model = FIT.build()
  assert preparation.check_preparation(pattern, model).shards_checked == 2
  fitted = beam_fit.fit(pattern, FIT, model, DIRECT)
  assert fitted.cache_dir == f"{records}/coarse_ict_coarse"
  assert (fitted.fitted, fitted.failed) == (2, 0)
  assert storage.glob(f"{fitted.cache_dir}/{coarse_fits.PARTS_DIR}/*.npz") == []
  want = coarse_fits.cache_records(str(plain / "faces-*.tfrecord"), coarse_fn, model.name,
                                   model.layout, cache_dir=str(tmp_path / "cache"))
  assert want.fitted == 2
  want = coarse_fits.load_coarse_coeffs(str(tmp_path / "cache"), model.layout, model.name)
  got = coarse_fits.load_coarse_coeffs(fitted.cache_dir, model.layout, model.name)
  assert sorted(got) == sorted(want) == ["a_astronaut.png", "c_grace_hopper.jpg"]
  for name, coeffs in want.items():
    np.testing.assert_allclose(got[name], coeffs, rtol=1e-4, atol=1e-5)
  assert coarse_fits.check_coverage(got, pattern, fitted.cache_dir) == 2
  again = beam_fit.fit(pattern, FIT, model, DIRECT)
  assert (again.fitted, again.already_done) == (0, 2)
  # The GCN trainer reads the remote records and cache (two eager steps of a tiny generator).
  keras.utils.set_random_seed(0)
  runtime = rt.RuntimeConfig(output_dir=str(tmp_path / "run"), checkpoint_every=0,
                             summary_every=0, image_summary_every=0, progress=False,
                             run_eagerly=True)
  config = gcn_trainer.GCNTrainConfig(
      runtime=runtime, data=pattern, batch_size=2, steps=2, face_model="ict_coarse",
      image_size=64, decoder_widths="8,8,8,8", refiner_widths="8,8", critic_steps=1,
      shuffle_buffer=2)
  trainer = gcn_trainer.GCNTrainer(config, face_model=model)
  assert trainer.steps_per_epoch == 1
  result = trainer.train()
  assert result.last_step == 2
  assert result.last_scalars and all(np.isfinite(v) for v in result.last_scalars.values())
  _no_local_spill(tmp_path)


_SCRIPT_IN_RAM = """
import runpy, sys
sys.path.insert(0, {tests!r})
import ram_filesystem, tensorflow as tf
ram_filesystem.upload_tree({photos!r}, "ram://job/photos")
with tf.io.gfile.GFile("ram://job/photos.txt", "w") as f:
  f.write("photos/a_astronaut.png\\nphotos/b_corrupt.jpg\\nphotos/missing.jpg\\n")
sys.argv = ["infer.py"] + {args!r}
try:
  runpy.run_path({script!r}, run_name="__main__")
except SystemExit as stop:
  code = stop.code
for name in tf.io.gfile.listdir("ram://job/out"):     # the bucket, copied out for the test
  tf.io.gfile.copy("ram://job/out/" + name, {dump!r} + "/" + name, overwrite=True)
sys.exit(code)
"""


def test_infer_script_writes_the_local_runs_files_to_a_remote_folder(photos_and_a_corrupt_file,
                                                                     tmp_path):
  """``infer.py --runner=DirectRunner`` with a remote file list and output folder."""
  photos = photos_and_a_corrupt_file
  dump, local = tmp_path / "remote_out", tmp_path / "local_out"
  dump.mkdir()
  args = ["--input=ram://job/photos.txt", "--output_dir=ram://job/out",
          "--runner=DirectRunner"] + INFER_FLAGS
  code = _SCRIPT_IN_RAM.format(tests=str(REPO / "tests"), photos=str(photos), args=args,
                               script=str(REPO / "scripts" / "infer.py"), dump=str(dump))
  remote = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=900, cwd=tmp_path)
  assert remote.returncode == 0, remote.stderr[-3000:]
  assert "1 done, 0 skipped, 2 failed on DirectRunner" in remote.stdout, remote.stdout
  assert "outputs: ram://job/out" in remote.stdout
  failures = beam_options.read_failures(str(dump))
  assert sorted(failures) == ["ram://job/photos/b_corrupt.jpg", "ram://job/photos/missing.jpg"]
  assert "no such file" in failures["ram://job/photos/missing.jpg"]
  _no_local_spill(tmp_path)
  # The same photo by the plain local run: the same files, byte for byte.
  plain = subprocess.run([sys.executable, str(REPO / "scripts" / "infer.py"),
                          f"--input={photos / 'a_astronaut.png'}", f"--output_dir={local}"]
                         + INFER_FLAGS, capture_output=True, text=True, timeout=900, cwd=REPO)
  assert plain.returncode == 0, plain.stderr[-3000:]
  page = ("index.html", "model-viewer-umd.min.js")   # the results page: local folders only
  files = sorted(p.name for p in local.iterdir() if p.name not in page)
  assert sorted(p.name for p in dump.iterdir()) == sorted(files + ["failures.txt"])
  for name in files:
    if name.endswith(".json"):
      got, want = json.loads((dump / name).read_text()), json.loads((local / name).read_text())
      assert got["source"]["path"] == "ram://job/photos/a_astronaut.png"
      for report in (got, want):
        for key in ("created", "source", "flags"):
          report.pop(key)
        report["extra"].pop("seconds")
      assert got == want
    else:
      assert (dump / name).read_bytes() == (local / name).read_bytes(), name


def test_beam_infer_on_a_remote_folder_skips_done_faces(bucket, tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  scan = pipeline.scan_inputs(f"{bucket}/photos")
  assert scan.paths == [f"{bucket}/photos/a_astronaut.png", f"{bucket}/photos/b_corrupt.jpg",
                        f"{bucket}/photos/c_grace_hopper.jpg"]
  settings = pipeline.Settings.from_preset("fast", face_model="ict_coarse",
                                           formats=("obj", "json"), texture_size=128)
  out = f"{bucket}/faces"
  photos = scan.paths[:2]
  first = beam_infer.infer(photos, out, settings, DIRECT)
  assert (first.done, first.skipped, first.failed) == (1, 0, 1)
  assert batch.photo_done(out, "a_astronaut", ("obj", "json"), all_faces=False)
  stamp = tf.io.gfile.stat(f"{out}/a_astronaut.json").mtime_nsec
  second = beam_infer.infer(photos, out, settings, DIRECT)
  assert (second.done, second.skipped, second.failed) == (0, 1, 1)
  assert tf.io.gfile.stat(f"{out}/a_astronaut.json").mtime_nsec == stamp
  tf.io.gfile.remove(f"{out}/a_astronaut.obj")     # an unfinished face is redone
  assert not batch.photo_done(out, "a_astronaut", ("obj", "json"), all_faces=False)
  third = beam_infer.infer(photos, out, settings, DIRECT)
  assert (third.done, third.skipped) == (1, 0)
  assert storage.size(f"{out}/a_astronaut.obj") > 0
  _no_local_spill(tmp_path)


def test_storage_reads_and_writes_both_kinds_of_path(tmp_path):
  for root in (str(tmp_path / "local"), "ram://test-storage"):
    path = storage.join(root, "a", "b.txt")
    storage.write_text(path, "hello")
    assert storage.read_text(path) == "hello" and storage.size(path) == 5
    assert storage.is_file(path) and storage.is_dir(storage.dirname(path))
    storage.copy(path, storage.join(root, "c.txt"))
    assert storage.list_files(root) == ["a/b.txt", "c.txt"]
    assert storage.glob(storage.join(root, "*.txt")) == [storage.join(root, "c.txt")]
    storage.rename(storage.join(root, "c.txt"), storage.join(root, "d.txt"))
    assert storage.list_files(root) == ["a/b.txt", "d.txt"]
    storage.remove(path)
    assert storage.size(path) is None and not storage.exists(path)
    with pytest.raises(FileNotFoundError):
      storage.read_bytes(path)
  assert storage.as_path("gs://bucket/x/y.jpg") == "gs://bucket/x/y.jpg"
  assert storage.as_path("x/y.jpg") == pathlib.Path("x/y.jpg")
  names = batch.output_names(["ram://b/one/face.jpg", "ram://b/two/face.jpg", "ram://b/x.png"])
  assert names == {"ram://b/one/face.jpg": "b_one_face", "ram://b/two/face.jpg": "b_two_face",
                   "ram://b/x.png": "x"}
