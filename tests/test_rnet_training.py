"""R-Net trainer on synthetic crops (random ICT faces rendered at 64 px, ground-truth
landmarks): the loss falls, checkpoints restore to identical outputs, a NaN stops the run
and leaves the last good checkpoint intact, identity and distillation terms."""

import glob
import json
import os
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from facegcn_tf.errors import AssetNotFoundError
from facegcn_tf.fitting import losses
from facegcn_tf.morphable.ict import load_ict
from facegcn_tf.morphable.model import CoeffLayout
from facegcn_tf.networks import rnet as rnet_lib
from facegcn_tf.render.camera import Camera
from facegcn_tf.render.random_faces import FacePrior, random_coefficients
from facegcn_tf.render.renderer import FaceRenderer
from facegcn_tf.training import rnet_trainer as rtr
from facegcn_tf.training import runtime as rt

sys.path.insert(0, os.path.dirname(__file__))
from test_rnet_runtime import _files, _image_tags, _scalar_events  # noqa: E402

SIZE = 64
STEPS = 10


@pytest.fixture(scope="module")
def face_model():
  return load_ict(subdivide=False)


@pytest.fixture(scope="module")
def faces(face_model):
  """Two rendered faces: image [2, 64, 64, 3] 0..255, mask, exact landmarks, source paths."""
  renderer = FaceRenderer(face_model, Camera().resized(SIZE))
  coeffs = random_coefficients(face_model.layout, 2, 1, FacePrior(max_yaw=20.0))
  out = renderer.render(tf.constant(coeffs), background=0.45)
  return {"image": tf.clip_by_value(out.image, 0, 1) * 255.0, "mask": out.mask,
          "landmarks": renderer.landmarks(out.geometry),
          "source_path": tf.constant(["a.png", "b.png"])}


def _config(out_dir, **changes):
  # One checkpoint, at the end (periodic saving is covered by test_rnet_runtime.py; each
  # R-Net checkpoint with Adam slots is ~290 MB).
  runtime = rt.RuntimeConfig(output_dir=str(out_dir), checkpoint_every=0, summary_every=1,
                             image_summary_every=5, progress=False)
  settings = dict(runtime=runtime, data="unused", batch_size=2, steps=STEPS, learning_rate=2e-5,
                  image_size=SIZE, identity="none", face_model="ict_coarse")
  settings.update(changes)
  return rtr.RNetTrainConfig(**settings)


def _trainer(out_dir, faces, face_model, **changes):
  keras.utils.set_random_seed(0)
  dataset = tf.data.Dataset.from_tensors(faces).repeat()
  return rtr.RNetTrainer(_config(out_dir, **changes), dataset=dataset, face_model=face_model)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, faces, face_model):
  out = tmp_path_factory.mktemp("rnet_run")
  trainer = _trainer(out, faces, face_model)
  result = trainer.train()
  return trainer, out, result


def _eval(model, faces):
  return model(faces["image"], training=False)[0].numpy()


def test_the_loss_falls(trained):
  _, out, result = trained
  assert (result.first_step, result.last_step) == (0, STEPS)
  total = _scalar_events(out / "tensorboard", "loss")
  landmark = _scalar_events(out / "tensorboard", "loss/landmark")
  assert sorted(total) == list(range(1, STEPS + 1))
  assert total[STEPS] < 0.4 * total[1]
  assert landmark[STEPS] < 0.4 * landmark[1]
  for term in ("photo", "reg", "reflectance", "gamma"):
    assert np.isfinite(_scalar_events(out / "tensorboard", f"loss/{term}")[STEPS])


def test_checkpoints_image_summaries_and_exported_weights(trained, faces):
  trainer, out, result = trained
  indexes = sorted(os.path.basename(p) for p in glob.glob(str(out / "checkpoints" / "*.index")))
  assert indexes == ["ckpt-10.index"]
  assert result.checkpoint.endswith("ckpt-10")
  assert "input_render" in _image_tags(out / "tensorboard")
  meta = json.loads((out / rtr.CONFIG_FILE).read_text())
  assert meta["step"] == STEPS and meta["input_size"] == SIZE
  layout = CoeffLayout(**meta["layout"])
  assert layout == trainer.layout
  loaded = rnet_lib.load_rnet(out / rtr.WEIGHTS_FILE, layout, SIZE)
  np.testing.assert_array_equal(_eval(loaded, faces), _eval(trainer.model, faces))


def test_a_restored_trainer_is_identical(trained, faces, face_model):
  trainer, out, _ = trained
  again = _trainer(out, faces, face_model)
  assert np.abs(_eval(again.model, faces)).max() == 0.0        # fresh: zero heads
  assert again.restore().endswith("ckpt-10")
  assert int(again.runtime.step.numpy()) == STEPS
  np.testing.assert_array_equal(_eval(again.model, faces), _eval(trainer.model, faces))
  assert np.abs(_eval(again.model, faces)).max() > 0.0
  for a, b in zip(again.optimizer.variables, trainer.optimizer.variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  # Re-running a finished run resumes at its end and does nothing more.
  result = again.train()
  assert (result.first_step, result.last_step) == (STEPS, STEPS)


@pytest.mark.parametrize("poison", ["landmarks", "image"])
def test_nan_stops_the_run_and_leaves_the_last_checkpoint_intact(trained, faces, poison):
  """NaN landmarks make the loss NaN (the guard skips the update); a NaN image makes NaN
  coefficients, which the rasterizer's input check refuses; both end the run the same way."""
  trainer, out, _ = trained
  saved = _files(out / "checkpoints")
  weights = [w.numpy().copy() for w in trainer.model.weights]
  bad = faces[poison].numpy().copy()
  bad[0, 7] = np.nan
  batches = iter(tf.data.Dataset.from_tensors(dict(faces, **{poison: bad})).repeat())
  expected = "loss=nan" if poison == "landmarks" else "NaN"
  with pytest.raises(rt.NonFiniteLossError, match=rf"step {STEPS} .*{expected}.*ckpt-{STEPS}"):
    trainer.runtime.run(trainer.step_function, batches, STEPS + 5,
                        prepare_batch=trainer.prepare_batch)
  assert int(trainer.runtime.step.numpy()) == STEPS
  assert _files(out / "checkpoints") == saved
  if poison == "landmarks":       # the guard skipped the update of the trainable weights
    for a, w in zip(weights, trainer.model.weights):
      if w.trainable:
        np.testing.assert_array_equal(a, w.numpy())
  # The bad step may have touched BatchNorm statistics in memory; the checkpoint
  # brings back the last good state exactly.
  assert trainer.restore().endswith(f"ckpt-{STEPS}")
  for a, w in zip(weights, trainer.model.weights):
    np.testing.assert_array_equal(a, w.numpy())


def test_identity_and_distillation_terms(tmp_path, faces, face_model):
  targets = tmp_path / "fits.npz"
  total = face_model.layout.total
  np.savez(targets, paths=np.array(["a.png", "elsewhere.png"]), coeffs=np.ones([2, total]))
  weights = rtr.DistillWeights(id=2.0, exp=0.5, tex=0.5, angles=0.5, gamma=0.5, trans=0.5)
  trainer = _trainer(tmp_path, faces, face_model, identity="dlib", distill_targets=str(targets),
                     distill=weights, distill_weight=3.0)
  batch = trainer.prepare_batch(faces)
  np.testing.assert_array_equal(batch["has_target"].numpy(), [1.0, 0.0])
  terms, per_image, overlay = trainer.loss_terms(batch, training=False)
  # The untrained R-Net predicts zeros; the target is all ones: each part's mean
  # squared difference is 1, so the term is the sum of the part weights.
  np.testing.assert_allclose(terms["distill"].numpy(), [2.0 + 5 * 0.5, 0.0], rtol=1e-6)
  identity = terms["identity"].numpy()
  assert identity.shape == (2,) and np.all((identity > 0) & (identity <= 2))
  base = {k: v for k, v in terms.items() if k != "distill"}
  np.testing.assert_allclose(per_image.numpy(),
                             losses.total_loss(base, trainer.config.weights).numpy()
                             + 3.0 * terms["distill"].numpy(), rtol=1e-5)
  assert overlay.shape == (2, SIZE, SIZE, 3)


def test_distillation_loss_closed_form():
  layout = CoeffLayout(2, 1, 1)                  # 2 + 1 + 1 + 3 + 27 + 3 = 37
  predicted = np.zeros([1, 37], np.float32)
  target = np.zeros([1, 37], np.float32)
  target[0, 0:2] = [1.0, 3.0]                    # id: mean sq = 5
  target[0, 4:7] = [0.3, 0.0, 0.0]               # angles: mean sq = 0.03
  w = rtr.DistillWeights(id=1.0, angles=10.0)
  value = rtr.distillation_loss(predicted, target, [1.0], layout, w).numpy()
  np.testing.assert_allclose(value, [5.0 + 10.0 * 0.03], rtol=1e-6)
  assert rtr.distillation_loss(predicted, target, [0.0], layout, w).numpy()[0] == 0.0


def test_resize_examples_scales_landmarks_and_masks():
  image = np.zeros([1, 224, 224, 3], np.float32)
  image[:, :112] = 200.0
  skin = np.zeros([1, 224, 224, 1], np.float32)
  skin[:, 56:168, 56:168] = 1.0
  valid = np.ones_like(skin)
  valid[:, :, :112] = 0.0
  landmarks = np.tile(np.array([[111.5, 111.5]], np.float32), [1, 68, 1])
  landmarks[0, 0] = [-0.5, -0.5]
  out = rtr.resize_examples({"image": image, "skin_mask": skin, "valid_mask": valid,
                             "landmarks68": landmarks}, 56, "skin_mask")
  assert out["image"].shape == (1, 56, 56, 3) and out["mask"].shape == (1, 56, 56)
  np.testing.assert_allclose(out["landmarks"][0, 1], [27.5, 27.5])    # the centre stays the centre
  np.testing.assert_allclose(out["landmarks"][0, 0], [-0.5, -0.5])    # so does the border
  np.testing.assert_allclose(out["image"][0, :28].numpy(), 200.0)
  mask = out["mask"][0].numpy()
  assert mask[:, :28].max() == 0.0 and mask[14:42, 28:42].min() == 1.0


def test_config_and_data_errors(tmp_path):
  runtime = rt.RuntimeConfig(output_dir=str(tmp_path))
  with pytest.raises(ValueError, match="exactly one of steps and epochs"):
    rtr.RNetTrainConfig(runtime=runtime, data="x", steps=5, epochs=1.0)
  with pytest.raises(ValueError, match="identity must be one of"):
    rtr.RNetTrainConfig(runtime=runtime, data="x", steps=5, identity="arcface")
  with pytest.raises(ValueError, match=r"image_size must be in \[32, 224\]"):
    rtr.RNetTrainConfig(runtime=runtime, data="x", steps=5, image_size=256)
  with pytest.raises(ValueError, match="do not apply to the R-Net stage"):
    rtr.make_config(runtime, data="x", steps=5, sigma_ramp=3)
  with pytest.raises(ValueError, match="--data"):
    rtr.make_config(runtime, steps=5)
  with pytest.raises(FileNotFoundError, match="no TFRecord files match"):
    rtr.count_examples(str(tmp_path / "*.tfrecord"))


def test_distill_targets_from_files_folders_and_globs(tmp_path, face_model):
  total = face_model.layout.total
  fits = tmp_path / "fits"
  fits.mkdir()
  np.savez(fits / "faces-00000.npz", paths=np.array(["a.png", "b.png"]),
           coeffs=np.stack([np.zeros(total), np.ones(total)]), face_model=face_model.name)
  np.savez(fits / "faces-00001.npz", paths=np.array(["c.png"]), coeffs=np.full([1, total], 2.0))
  for where in (fits, fits / "*.npz"):
    targets = rtr.load_distill_targets(str(where), face_model)
    assert sorted(targets) == ["a.png", "b.png", "c.png"]
    np.testing.assert_array_equal(targets["c.png"], np.full(total, 2.0, np.float32))
  assert sorted(rtr.load_distill_targets(str(fits / "faces-00001.npz"), face_model)) == ["c.png"]
  np.savez(fits / "faces-00002.npz", paths=np.array(["d"]), coeffs=np.ones([1, 5]))
  with pytest.raises(ValueError, match=rf"coeffs must be \[1, {total}\]"):
    rtr.load_distill_targets(str(fits), face_model)
  other = tmp_path / "other.npz"
  np.savez(other, paths=np.array(["d"]), coeffs=np.ones([1, total]), face_model="bfm")
  with pytest.raises(ValueError, match="fitted with face model 'bfm'"):
    rtr.load_distill_targets(str(other), face_model)
  with pytest.raises(AssetNotFoundError, match="missing.npz"):
    rtr.load_distill_targets(str(tmp_path / "missing.npz"), face_model)


def test_count_examples_reads_manifests_or_records(tmp_path):
  with tf.io.TFRecordWriter(str(tmp_path / "faces-00000.tfrecord")) as writer:
    for _ in range(3):
      writer.write(b"x")
  assert rtr.count_examples(str(tmp_path / "*.tfrecord")) == 3
  (tmp_path / "faces-00000.json").write_text(json.dumps({"num_examples": 5}))
  assert rtr.count_examples(str(tmp_path / "*.tfrecord")) == 5
