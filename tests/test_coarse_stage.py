"""R-Net as the coarse stage of the training data, and the preparation-manifest checks.

`fit_data.py --rnet_checkpoint` writes the R-Net's regression into the coarse cache the GCN
trainer reads; records aligned to another face model's template are refused in one line by
fit_data.py and by the trainer.
"""

import glob
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from facegcn_tf.assets import loaders
from facegcn_tf.morphable.ict import load_ict
from facegcn_tf.networks.rnet import build_rnet
from facegcn_tf.training import coarse_fits
from facegcn_tf.training import gcn_trainer
from facegcn_tf.training import preparation
from facegcn_tf.training import runtime as rt
from facegcn_tf.training import synthetic_records

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def face_model():
  return load_ict(subdivide=False)


@pytest.fixture(scope="module")
def written(tmp_path_factory, face_model):
  return synthetic_records.write_records(str(tmp_path_factory.mktemp("records")), face_model,
                                         count=2, shard_size=2)


@pytest.fixture(scope="module")
def rnet_weights(tmp_path_factory, face_model):
  """A small R-Net whose heads are random (not zero), so its regression is not trivial."""
  keras.utils.set_random_seed(1)
  net = build_rnet(face_model.layout, input_size=64)
  for layer in net.layers:
    if layer.name.startswith("head_"):
      for w in layer.weights:
        w.assign(np.random.default_rng(2).normal(0, 1e-3, w.shape).astype(np.float32))
  folder = tmp_path_factory.mktemp("rnet")
  path = folder / "rnet.weights.h5"
  net.save_weights(str(path))
  (folder / "rnet.json").write_text(json.dumps({"input_size": 64}))
  return path


def _run(*args):
  return subprocess.run([sys.executable, os.path.join(REPO, "scripts", "fit_data.py"), *args,
                         "--progress=false"], cwd=REPO, capture_output=True, text=True,
                        timeout=600)


def test_fit_data_regresses_with_an_rnet_and_the_trainer_trains_on_it(written, rnet_weights,
                                                                     face_model, tmp_path):
  cache = tmp_path / "coarse"
  proc = _run(f"--data={written['pattern']}", "--face_model=ict_coarse",
              f"--rnet_checkpoint={rnet_weights}", f"--cache_dir={cache}")
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "regressed 2 records, 0 already done, 1 shards" in proc.stdout
  table = coarse_fits.load_coarse_coeffs(str(cache), face_model.layout, face_model.name)
  predictor = loaders.load_rnet_predictor(rnet_weights, face_model.layout)
  images = written["faces"]["images"]
  expected = predictor(tf.constant(np.round(images).astype(np.float32))).numpy()
  got = np.stack([table["face0.png"], table["face1.png"]])
  assert np.abs(expected).max() > 1e-4        # not the zero-initialised heads
  np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
  # Resumes: nothing left to regress.
  proc = _run(f"--data={written['pattern']}", "--face_model=ict_coarse",
              f"--rnet_checkpoint={rnet_weights}", f"--cache_dir={cache}")
  assert "regressed 0 records, 2 already done" in proc.stdout
  # The GCN trainer trains on the regressed coefficients.
  keras.utils.set_random_seed(0)
  runtime = rt.RuntimeConfig(output_dir=str(tmp_path / "run"), checkpoint_every=0,
                             summary_every=0, image_summary_every=0, progress=False,
                             run_eagerly=True)
  config = gcn_trainer.GCNTrainConfig(
      runtime=runtime, data=written["pattern"], coarse_coeffs=str(cache), batch_size=2, steps=1,
      face_model="ict_coarse", image_size=64, decoder_widths="8,8,8,8", refiner_widths="8,8",
      order=2, gan=False, shuffle_buffer=2)
  trainer = gcn_trainer.GCNTrainer(config, face_model=face_model)
  result = trainer.train()
  assert result.last_step == 1 and np.isfinite(result.last_scalars["loss"])


def _set_manifest_config(pattern, config):
  for shard in glob.glob(pattern):
    path = os.path.splitext(shard)[0] + ".json"
    manifest = json.loads(open(path, encoding="utf-8").read())
    manifest["config"] = config
    with open(path, "w", encoding="utf-8") as f:
      json.dump(manifest, f)


def test_a_template_mismatch_is_one_line_in_fit_data_and_the_trainer(tmp_path, face_model):
  written = synthetic_records.write_records(str(tmp_path / "rec"), face_model, count=2,
                                            shard_size=2)
  pattern = written["pattern"]
  right = {"template5": np.round(face_model.template5, 6).tolist(), "align_method": "pos"}
  _set_manifest_config(pattern, right)
  prep = preparation.check_preparation(pattern, face_model)
  assert prep.fit_method == "pos" and prep.shards_checked == 1
  wrong = dict(right, template5=(np.round(face_model.template5, 6) * 1.1).tolist())
  _set_manifest_config(pattern, wrong)
  with pytest.raises(preparation.PreparationMismatchError, match="aligned to the template") as e:
    preparation.check_preparation(pattern, face_model)
  assert "\n" not in str(e.value) and "--face_model=ict_coarse" in str(e.value)
  proc = _run(f"--data={pattern}", "--face_model=ict_coarse", "--identity=none")
  assert proc.returncode != 0
  assert proc.stderr.strip().splitlines()[-1].startswith(
      f"fit_data.py: error: the records of '{pattern}' were aligned to the template of "
      "another face model"), proc.stderr[-2000:]
  runtime = rt.RuntimeConfig(output_dir=str(tmp_path / "run"), progress=False)
  config = gcn_trainer.GCNTrainConfig(runtime=runtime, data=pattern, steps=1,
                                      face_model="ict_coarse", image_size=64)
  with pytest.raises(preparation.PreparationMismatchError):
    gcn_trainer.GCNTrainer(config, face_model=face_model, coarse_coeffs={})
  # Shards prepared with different settings are refused too.
  more = synthetic_records.write_records(str(tmp_path / "rec"), face_model, count=4,
                                         shard_size=2)
  shards = sorted(glob.glob(more["pattern"]))
  _set_manifest_config(shards[0], right)
  _set_manifest_config(shards[1], dict(right, align_method="scale_translation"))
  with pytest.raises(preparation.PreparationMismatchError, match="prepared differently"):
    preparation.read_preparation(more["pattern"])
