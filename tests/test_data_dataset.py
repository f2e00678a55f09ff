"""TFRecord writer (shards, manifests, resume, failures) and reader (parse, shuffle, augment)."""

import json
import os
import shutil

import cv2
import numpy as np
import pytest
import tensorflow as tf

from facegcn_tf.data import alignment, augment, dataset
from facegcn_tf.data.landmark_indices import IBUG68_FLIP, POINTS5_FLIP
from facegcn_tf.data.preprocess import FacePreprocessor

@pytest.fixture(scope="module")
def preprocessor(ict_template5):
  return FacePreprocessor(ict_template5)


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory, astronaut, grace_hopper):
  """astronaut.png, grace_hopper.jpg, coffee.png (no face), broken.jpg (truncated)."""
  import skimage.data
  root = tmp_path_factory.mktemp("photos")
  cv2.imwrite(str(root / "astronaut.png"), astronaut[..., ::-1])
  cv2.imwrite(str(root / "grace_hopper.jpg"), grace_hopper[..., ::-1],
              [cv2.IMWRITE_JPEG_QUALITY, 95])
  cv2.imwrite(str(root / "coffee.png"), skimage.data.coffee()[..., ::-1])
  (root / "broken.jpg").write_bytes((root / "grace_hopper.jpg").read_bytes()[:4000])
  (root / "notes.txt").write_text("not a photo")
  return root


@pytest.fixture(scope="module")
def written(tmp_path_factory, photo_dir, preprocessor):
  out = tmp_path_factory.mktemp("shards")
  summary = dataset.prepare_directory(str(photo_dir), str(out), preprocessor, shard_size=2)
  return out, summary


def _mtimes(folder):
  return {p: os.stat(os.path.join(folder, p)).st_mtime_ns for p in os.listdir(folder)}


def test_list_images_is_sorted_and_filtered(photo_dir):
  assert dataset.list_images(str(photo_dir)) == [
      "astronaut.png", "broken.jpg", "coffee.png", "grace_hopper.jpg"]
  with pytest.raises(FileNotFoundError):
    dataset.list_images(str(photo_dir / "missing"))


def test_writer_records_done_and_failed(written):
  out, summary = written
  assert summary.num_done == 2 and summary.num_resumed_shards == 0
  reasons = {f.path: f.reason for f in summary.failures}
  assert set(reasons) == {"broken.jpg", "coffee.png"}
  assert "truncated" in reasons["broken.jpg"] and "no face" in reasons["coffee.png"]
  assert all("\n" not in r for r in reasons.values())
  assert sorted(os.listdir(out)) == ["faces-00000.json", "faces-00000.tfrecord",
                                     "faces-00001.json", "faces-00001.tfrecord"]
  manifest = json.loads((out / "faces-00000.json").read_text())
  assert manifest["inputs"] == ["astronaut.png", "broken.jpg"]
  assert manifest["done"] == ["astronaut.png"] and manifest["num_examples"] == 1
  assert manifest["failed"][0]["path"] == "broken.jpg"


def test_rerun_resumes_and_changes_redo_only_what_changed(written, photo_dir, preprocessor,
                                                          tmp_path):
  out, _ = written
  copy = tmp_path / "copy"
  shutil.copytree(out, copy)
  before = _mtimes(copy)
  calls = []
  summary = dataset.prepare_directory(str(photo_dir), str(copy), preprocessor, shard_size=2,
                                      progress=calls.append)
  assert summary.num_resumed_shards == 2 and summary.num_done == 2
  assert len(summary.failures) == 2 and sum(calls) == 4
  assert _mtimes(copy) == before

  # Skipping coffee.png changes shard 1 only.
  summary = dataset.prepare_directory(str(photo_dir), str(copy), preprocessor, shard_size=2,
                                      skip=["coffee.png"])
  assert [s.resumed for s in summary.shards] == [True, False]
  assert summary.shards[1].skipped == ["coffee.png"] and summary.num_skipped == 1
  after = _mtimes(copy)
  assert after["faces-00000.tfrecord"] == before["faces-00000.tfrecord"]
  assert after["faces-00001.tfrecord"] != before["faces-00001.tfrecord"]

  # Fewer inputs: the now-unused shard is removed.
  summary = dataset.prepare_directory(str(photo_dir), str(copy), preprocessor, shard_size=2,
                                      max_images=2)
  assert len(summary.shards) == 1 and summary.shards[0].resumed
  assert sorted(os.path.basename(p) for p in summary.removed_stale) == [
      "faces-00001.json", "faces-00001.tfrecord"]
  assert sorted(os.listdir(copy)) == ["faces-00000.json", "faces-00000.tfrecord"]


def test_reader_round_trips_the_prepared_faces(written, photo_dir, preprocessor):
  out, _ = written
  ds = dataset.make_dataset(str(out / "faces-*.tfrecord"), batch_size=4, shuffle=False)
  batch = next(iter(ds))
  assert batch["image"].shape == (2, 224, 224, 3) and batch["image"].dtype == tf.float32
  assert "features" not in batch
  names = [p.decode() for p in batch["source_path"].numpy()]
  assert names == ["astronaut.png", "grace_hopper.jpg"]
  for i, name in enumerate(names):
    face = preprocessor.prepare_file(str(photo_dir / name), name=name)
    assert np.array_equal(batch["image"][i].numpy(), face.aligned.image.astype(np.float32))
    assert np.array_equal(batch["face_mask"][i, ..., 0].numpy() > 0.5, face.masks.face)
    assert np.array_equal(batch["skin_mask"][i, ..., 0].numpy() > 0.5, face.masks.skin)
    assert np.array_equal(batch["region_mask"][i, ..., 0].numpy() > 0.5, face.masks.region)
    assert np.array_equal(batch["valid_mask"][i, ..., 0].numpy() > 0.5, face.aligned.valid)
    assert np.allclose(batch["landmarks68"][i], face.landmarks68, atol=1e-3)
    assert np.allclose(batch["points5"][i], face.aligned.points5, atol=1e-3)
    assert np.allclose(batch["affine"][i], face.aligned.transform.matrix, rtol=1e-6, atol=1e-3)
    assert tuple(batch["source_size"][i].numpy()) == face.source_size
    # The affine maps the photo's detected points onto the stored aligned points.
    mapped = alignment.transform_points(face.detection.points, batch["affine"][i].numpy())
    assert np.allclose(mapped, batch["points5"][i], atol=1e-2)


def test_feature_vectors_from_an_injected_callable(photo_dir, preprocessor, ict_template5, tmp_path):
  loaders = pytest.importorskip("facegcn_tf.assets.loaders")
  try:
    encoder = loaders.load_identity_encoder("dlib", template5=ict_template5)
  except FileNotFoundError as err:
    pytest.skip(f"identity weights not available: {err}")
  summary = dataset.prepare_directory(str(photo_dir), str(tmp_path), preprocessor, shard_size=8,
                                      feature_fn=lambda b: np.asarray(encoder(b)))
  assert summary.num_done == 2
  manifest = json.loads((tmp_path / "faces-00000.json").read_text())
  assert manifest["feature_dim"] == 128
  batch = next(iter(dataset.make_dataset(str(tmp_path / "*.tfrecord"), 2, shuffle=False)))
  assert batch["features"].shape == (2, 128)
  again = np.asarray(encoder(batch["image"]))
  assert np.allclose(batch["features"].numpy(), again, atol=1e-4)
  with pytest.raises(ValueError, match=r"\[B, D\]"):
    dataset.prepare_directory(str(photo_dir), str(tmp_path / "bad"), preprocessor,
                              feature_fn=lambda b: np.zeros((1,)))
  assert not any(n.endswith(".tfrecord") for n in os.listdir(tmp_path / "bad"))


def test_shuffle_is_seeded(written):
  out, _ = written
  pattern = str(out / "*.tfrecord")

  def order(seed):
    ds = dataset.make_dataset(pattern, 1, shuffle=True, seed=seed, repeat=True)
    return [b["source_path"].numpy()[0] for b in ds.take(12)]

  assert order(7) == order(7)
  assert len(set(order(7))) == 2
  with pytest.raises(FileNotFoundError, match="no TFRecord"):
    dataset.make_dataset(str(out / "nothing-*.tfrecord"), 2)


def test_augmentation_keeps_image_landmarks_and_affine_consistent(written):
  out, _ = written
  pattern = str(out / "*.tfrecord")
  plain = next(iter(dataset.make_dataset(pattern, 2, shuffle=False)))
  opts = augment.AugmentOptions(flip_prob=0.5, max_shift=8, max_scale=0.05, brightness=0,
                                contrast=0, saturation=0, hue=0)
  flips = set()
  for seed in range(4):
    aug = next(iter(dataset.make_dataset(pattern, 2, shuffle=False, augment=True, seed=seed,
                                         augment_options=opts)))
    again = next(iter(dataset.make_dataset(pattern, 2, shuffle=False, augment=True, seed=seed,
                                           augment_options=opts)))
    assert np.array_equal(aug["image"].numpy(), again["image"].numpy())
    for i in range(2):
      a0 = np.vstack([plain["affine"][i].numpy(), [0, 0, 1]])
      # g: aligned -> augmented.
      g = np.vstack([aug["affine"][i].numpy(), [0, 0, 1]]) @ np.linalg.inv(a0)
      flipped = g[0, 0] < 0
      flips.add(bool(flipped))
      p5 = alignment.transform_points(plain["points5"][i].numpy(), g[:2])
      lm = alignment.transform_points(plain["landmarks68"][i].numpy(), g[:2])
      if flipped:
        p5, lm = p5[list(POINTS5_FLIP)], lm[list(IBUG68_FLIP)]
      assert np.allclose(p5, aug["points5"][i], atol=1e-3)
      assert np.allclose(lm, aug["landmarks68"][i], atol=1e-3)
      assert aug["points5"][i, 0, 0] < aug["points5"][i, 1, 0]  # image-left eye stays first
      # Pixels moved with the points: sample both images on a grid of aligned points.
      ys, xs = np.mgrid[40:184:12, 40:184:12].astype(np.float32)
      src = np.stack([xs.ravel(), ys.ravel()], -1)
      dst = alignment.transform_points(src, g[:2]).astype(np.float32)
      before = cv2.remap(plain["image"][i].numpy(), src[:, 0:1], src[:, 1:2], cv2.INTER_LINEAR)
      after = cv2.remap(aug["image"][i].numpy(), dst[:, 0:1], dst[:, 1:2], cv2.INTER_LINEAR)
      assert np.abs(before - after).mean() < 6.0
      mask_before = plain["face_mask"][i].numpy()[ys.astype(int), xs.astype(int), 0]
      mask_after = cv2.remap(aug["face_mask"][i].numpy(), dst[:, 0:1], dst[:, 1:2],
                             cv2.INTER_NEAREST).reshape(mask_before.shape)
      assert (mask_before == mask_after).mean() > 0.97
  assert flips == {True, False}


def test_augment_pixel_convention_with_a_single_dot():
  """A lit pixel and a landmark on it must move together (half-pixel errors show here)."""
  size = 64
  image = np.zeros((size, size, 3), np.float32)
  image[20, 13] = 255.0
  ones = np.ones((size, size, 1), np.float32)
  dot = [[13.0, 20.0]]
  example = {"image": tf.constant(image),
             "landmarks68": tf.constant(np.tile(dot, (68, 1)), tf.float32),
             "points5": tf.constant(np.tile(dot, (5, 1)), tf.float32),
             "affine": tf.constant([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]),
             "face_mask": ones, "skin_mask": ones, "region_mask": ones, "valid_mask": ones}
  opts = augment.AugmentOptions(flip_prob=0.5, max_shift=5, max_scale=0.0, brightness=0,
                                contrast=0, saturation=0, hue=0)
  for seed in range(6):
    out = augment.augment_example(example, tf.constant([seed, 1], tf.int64), opts)
    weights = out["image"].numpy()[..., 0]
    ys, xs = np.mgrid[:size, :size]
    centroid = np.array([(weights * xs).sum(), (weights * ys).sum()]) / weights.sum()
    assert np.allclose(centroid, out["landmarks68"][0].numpy(), atol=0.05)
