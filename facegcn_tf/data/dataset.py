"""TFRecord shards of aligned faces: a resumable writer and a ``tf.data`` reader.

Writer layout in ``output_dir``: ``faces-00000.tfrecord`` + ``faces-00000.json``
(manifest), one pair per ``shard_size`` inputs. Inputs are sorted, so shard
``i`` always holds sorted inputs ``[i * shard_size, (i + 1) * shard_size)``.
Each shard is written to ``*.tmp`` and renamed; its manifest (written and
renamed last) lists the shard's inputs, the run config, and which inputs were
done, failed (with a one-line reason) or skipped. On a re-run a shard whose
manifest matches (same inputs, skip list and config) is left alone; any other
shard is rewritten; shards beyond the new shard count are removed.

The optional per-face feature vector (e.g. identity features) comes from an
injected callable, so this module does not depend on ``networks``.
"""

import dataclasses
import json
import os
import pathlib
from typing import Callable, Dict, Iterable, List, Optional, Sequence

import numpy as np
import tensorflow as tf

from facegcn_tf import storage
from facegcn_tf.data import tfrecords
from facegcn_tf.data.augment import AugmentOptions, augment_example
from facegcn_tf.errors import FaceGCNError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")
MANIFEST_FORMAT = "facegcn_tf.aligned_faces.v1"
DEFAULT_PREFIX = "faces"

# (prepared faces) float32 [B, S, S, 3] RGB 0..255 -> [B, D].
FeatureFn = Callable[[np.ndarray], np.ndarray]


@dataclasses.dataclass(frozen=True)
class Failure:
  path: str
  reason: str


@dataclasses.dataclass
class ShardReport:
  """What happened to one shard."""
  index: int
  tfrecord: str
  manifest: str
  done: List[str]
  failed: List[Failure]
  skipped: List[str]
  resumed: bool


@dataclasses.dataclass
class WriteSummary:
  """Result of :func:`write_dataset`."""
  shards: List[ShardReport]
  removed_stale: List[str]

  @property
  def num_done(self) -> int:
    return sum(len(s.done) for s in self.shards)

  @property
  def failures(self) -> List[Failure]:
    return [f for s in self.shards for f in s.failed]

  @property
  def num_skipped(self) -> int:
    return sum(len(s.skipped) for s in self.shards)

  @property
  def num_resumed_shards(self) -> int:
    return sum(1 for s in self.shards if s.resumed)


def list_images(input_dir: str, recursive: bool = True,
                extensions: Sequence[str] = IMAGE_EXTENSIONS) -> List[str]:
  """Sorted POSIX paths, relative to ``input_dir``, of files with an image extension.

  Hidden files and folders (leading dot) are ignored. ``input_dir`` may be remote
  (``gs://...``, see `storage`).

  Raises:
    FileNotFoundError: ``input_dir`` is not a directory.
  """
  if storage.is_remote(input_dir):
    if not storage.is_dir(input_dir):
      raise FileNotFoundError(f"input directory '{input_dir}' does not exist or is not a "
                              "directory")
    exts = {e.lower() for e in extensions}
    return [name for name in storage.list_files(input_dir)
            if (recursive or "/" not in name)
            and not any(part.startswith(".") for part in name.split("/"))
            and os.path.splitext(name)[1].lower() in exts]
  root = pathlib.Path(input_dir)
  if not root.is_dir():
    raise FileNotFoundError(f"input directory '{input_dir}' does not exist or is not a directory")
  exts = {e.lower() for e in extensions}
  files = root.rglob("*") if recursive else root.iterdir()
  out = []
  for path in files:
    rel = path.relative_to(root)
    if any(part.startswith(".") for part in rel.parts):
      continue
    if path.is_file() and path.suffix.lower() in exts:
      out.append(rel.as_posix())
  return sorted(out)


def shard_paths(output_dir: str, index: int, prefix: str = DEFAULT_PREFIX):
  """(tfrecord path, manifest path) of shard ``index``."""
  base = storage.join(output_dir, f"{prefix}-{index:05d}")
  return base + ".tfrecord", base + ".json"


def _one_line(text: str, limit: int = 300) -> str:
  text = " ".join(str(text).split())
  return text if len(text) <= limit else text[:limit - 3] + "..."


def failure_reason(err: Exception) -> str:
  """One line saying why an input failed (the message of a FaceGCNError, else type: message)."""
  if isinstance(err, FaceGCNError):
    return _one_line(str(err))
  return _one_line(f"{type(err).__name__}: {err}")


def _read_manifest(path: str) -> Optional[dict]:
  try:
    manifest = json.loads(storage.read_text(path))
  except (OSError, ValueError):
    return None
  if isinstance(manifest, dict) and manifest.get("format") == MANIFEST_FORMAT:
    return manifest
  return None


def _write_json_atomic(path: str, payload: dict) -> None:
  storage.write_text(path, json.dumps(payload, indent=1, sort_keys=True) + "\n")


def face_features(feature_fn: FeatureFn, faces: Sequence) -> np.ndarray:
  """[B, D] float32 features of prepared faces by `feature_fn`, checked.

  Raises:
    ValueError: `feature_fn` returned another shape, NaN or inf.
  """
  batch = np.stack([f.aligned.image for f in faces]).astype(np.float32)
  values = np.asarray(feature_fn(batch), dtype=np.float32)
  if values.ndim != 2 or values.shape[0] != len(faces) or values.shape[1] < 1:
    raise ValueError(f"feature_fn must return [B, D] for B={len(faces)}, got {values.shape}")
  if not np.all(np.isfinite(values)):
    raise ValueError("feature_fn returned NaN or inf")
  return values


@dataclasses.dataclass
class ShardPlan:
  """One shard of a write: its sorted inputs and files; `resumed` when already complete."""
  index: int
  names: List[str]
  skipped: List[str]
  tfrecord: str
  manifest: str
  resumed: Optional[ShardReport] = None


def plan_shards(inputs: Iterable[str], output_dir: str, shard_size: int = 256,
                skip: Iterable[str] = (), config: Optional[Dict] = None,
                prefix: str = DEFAULT_PREFIX) -> List[ShardPlan]:
  """Splits the sorted inputs into shards and finds the ones a re-run may keep.

  A shard whose manifest matches (same inputs, skip list and config) and whose TFRecord
  exists is `resumed`; the manifest of any other shard is deleted (it is being redone).
  ``config`` must already be JSON-normalised (:func:`normalise_config`).
  """
  if shard_size < 1:
    raise ValueError(f"shard_size must be >= 1, got {shard_size}")
  names = sorted({str(x) for x in inputs})
  skip_set = {str(x) for x in skip}
  storage.makedirs(output_dir)
  plans = []
  for index, start in enumerate(range(0, len(names), shard_size)):
    chunk = names[start:start + shard_size]
    tfrecord, manifest_path = shard_paths(output_dir, index, prefix)
    plan = ShardPlan(index, chunk, [n for n in chunk if n in skip_set], tfrecord, manifest_path)
    manifest = _read_manifest(manifest_path)
    if (manifest is not None and manifest.get("inputs") == chunk and
        manifest.get("skipped") == plan.skipped and manifest.get("config") == config and
        storage.is_file(tfrecord)):
      plan.resumed = ShardReport(index, tfrecord, manifest_path, list(manifest.get("done", [])),
                                 [Failure(**f) for f in manifest.get("failed", [])],
                                 plan.skipped, resumed=True)
    elif storage.exists(manifest_path):
      storage.remove(manifest_path)  # The shard is being redone: invalidate first.
    plans.append(plan)
  return plans


def normalise_config(config: Optional[Dict]) -> Dict:
  """The config as the manifests store it (JSON round trip, sorted keys)."""
  return json.loads(json.dumps(config or {}, sort_keys=True))


def write_manifest(plan: ShardPlan, config: Dict, done: List[str], failed: List[Failure],
                   feature_dim: int) -> ShardReport:
  """Writes a finished shard's manifest (atomically; after its TFRecord) and reports it."""
  _write_json_atomic(plan.manifest, {
      "format": MANIFEST_FORMAT,
      "shard": plan.index,
      "inputs": plan.names,
      "skipped": plan.skipped,
      "config": config,
      "done": done,
      "failed": [dataclasses.asdict(f) for f in failed],
      "num_examples": len(done),
      "feature_dim": feature_dim,
      "tfrecord": storage.basename(plan.tfrecord),
  })
  return ShardReport(plan.index, plan.tfrecord, plan.manifest, done, failed, plan.skipped,
                     resumed=False)


class _ShardWriter:
  """Writes one shard: prepares faces, batches the feature callable, encodes."""

  def __init__(self, tfrecord: str, feature_fn: Optional[FeatureFn], feature_batch: int):
    self.tmp = tfrecord + ".tmp"
    self.tfrecord = tfrecord
    self.writer = tf.io.TFRecordWriter(self.tmp)
    self.feature_fn = feature_fn
    self.feature_batch = max(int(feature_batch), 1)
    self.pending = []  # (name, PreparedFace)
    self.done: List[str] = []
    self.feature_dim = 0

  def add(self, name: str, face) -> None:
    self.pending.append((name, face))
    if len(self.pending) >= self.feature_batch:
      self.flush()

  def flush(self) -> None:
    if not self.pending:
      return
    features = [None] * len(self.pending)
    if self.feature_fn is not None:
      values = face_features(self.feature_fn, [f for _, f in self.pending])
      if self.feature_dim and values.shape[1] != self.feature_dim:
        raise ValueError(f"feature_fn changed its output size from {self.feature_dim} "
                         f"to {values.shape[1]}")
      self.feature_dim = int(values.shape[1])
      features = list(values)
    for (name, face), vector in zip(self.pending, features):
      self.writer.write(tfrecords.encode_example(face, vector))
      self.done.append(name)
    self.pending = []

  def commit(self) -> None:
    self.flush()
    self.writer.close()
    storage.rename(self.tmp, self.tfrecord)

  def abort(self) -> None:
    self.writer.close()
    if storage.exists(self.tmp):
      storage.remove(self.tmp)


def write_dataset(inputs: Iterable[str], output_dir: str, prepare_fn: Callable[[str], object],
                  shard_size: int = 256, feature_fn: Optional[FeatureFn] = None,
                  feature_batch: int = 16, skip: Iterable[str] = (),
                  config: Optional[Dict] = None, prefix: str = DEFAULT_PREFIX,
                  progress: Optional[Callable[[int], None]] = None) -> WriteSummary:
  """Writes (or resumes) the sharded dataset.

  Args:
    inputs: input names (e.g. paths relative to the photo folder); sorted and
      de-duplicated here.
    output_dir: created if missing.
    prepare_fn: name -> ``preprocess.PreparedFace``; raises on a bad input
      (the error becomes that input's one-line failure reason).
    shard_size: inputs per shard.
    feature_fn: optional [B, S, S, 3] float32 0..255 -> [B, D] callable.
    feature_batch: faces per ``feature_fn`` call.
    skip: names to leave out (recorded as skipped).
    config: JSON-able settings that change the output (thresholds, feature
      extractor...); a shard written with other settings is redone.
    prefix: shard file prefix.
    progress: called with the number of inputs finished after each input
      (or a whole resumed shard).

  Returns:
    A :class:`WriteSummary`.
  """
  config = normalise_config(config)
  skip_set = {str(x) for x in skip}
  plans = plan_shards(inputs, output_dir, shard_size, skip_set, config, prefix)
  reports = []
  for plan in plans:
    if plan.resumed is not None:
      reports.append(plan.resumed)
      if progress:
        progress(len(plan.names))
      continue
    writer = _ShardWriter(plan.tfrecord, feature_fn, feature_batch)
    failed = []
    try:
      for name in plan.names:
        if name not in skip_set:
          try:
            face = prepare_fn(name)
          # One bad photo must not stop a batch: any error becomes its failure reason.
          except Exception as err:  # pylint: disable=broad-except
            failed.append(Failure(name, failure_reason(err)))
          else:
            writer.add(name, face)
        if progress:
          progress(1)
      writer.commit()
    except BaseException:
      writer.abort()
      raise
    reports.append(write_manifest(plan, config, writer.done, failed, writer.feature_dim))
  removed = remove_stale_shards(output_dir, prefix, len(plans))
  return WriteSummary(shards=reports, removed_stale=removed)


def remove_stale_shards(output_dir: str, prefix: str, num_shards: int) -> List[str]:
  """Deletes this writer's shard files with an index >= ``num_shards``."""
  removed = []
  pattern = storage.join(storage.escape(output_dir), f"{prefix}-{'[0-9]' * 5}.*")
  for path in storage.glob(pattern):
    name = storage.basename(path)
    stem = name[len(prefix) + 1:len(prefix) + 6]
    if (os.path.splitext(name)[1] in (".tfrecord", ".json", ".tmp") and stem.isdigit()
        and int(stem) >= num_shards):
      storage.remove(path)
      removed.append(path)
  return removed


def _infer_feature_dim(files: Sequence[str]) -> int:
  """Feature size from the first record found (0 when there is no feature vector)."""
  for raw in tf.data.TFRecordDataset(list(files)).take(1):
    example = tf.train.Example.FromString(raw.numpy())
    feature = example.features.feature.get("features")
    return len(feature.float_list.value) if feature is not None else 0
  return 0


def make_dataset(pattern: str, batch_size: int, shuffle: bool = True, augment: bool = False,
                 seed: Optional[int] = None, shuffle_buffer: int = 512, repeat: bool = False,
                 drop_remainder: bool = False, feature_dim: Optional[int] = None,
                 augment_options: AugmentOptions = AugmentOptions()) -> tf.data.Dataset:
  """Batched ``tf.data`` pipeline over the shards matching ``pattern``.

  Args:
    pattern: glob of TFRecord files, e.g. ``DATA/faces-*.tfrecord``.
    batch_size: examples per batch.
    shuffle: shuffle shard order and examples (buffer ``shuffle_buffer``).
    augment: apply :func:`augment.augment_example`.
    seed: makes shuffling and augmentation reproducible.
    repeat: repeat forever (before shuffling, so batches span epochs).
    drop_remainder: drop a last partial batch (static batch size).
    feature_dim: size of the feature vector; read from the data if None.
    augment_options: augmentation ranges.

  Returns:
    Dataset of dicts (see ``tfrecords.parse_example``), each value batched.

  Raises:
    FileNotFoundError: nothing matches ``pattern``.
  """
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}")
  files = sorted(tf.io.gfile.glob(pattern))
  if not files:
    raise FileNotFoundError(f"no TFRecord files match '{pattern}'")
  if feature_dim is None:
    feature_dim = _infer_feature_dim(files)
  autotune = tf.data.AUTOTUNE
  ds = tf.data.Dataset.from_tensor_slices(files)
  if shuffle:
    ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
  ds = ds.interleave(tf.data.TFRecordDataset, cycle_length=min(4, len(files)),
                     num_parallel_calls=autotune, deterministic=True)
  if repeat:
    ds = ds.repeat()
  if shuffle:
    ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
  ds = ds.map(lambda x: tfrecords.parse_example(x, feature_dim), num_parallel_calls=autotune,
              deterministic=True)
  if augment:
    seeds = tf.data.Dataset.random(seed=seed).batch(2, drop_remainder=True)
    ds = tf.data.Dataset.zip((ds, seeds)).map(
        lambda ex, s: augment_example(ex, s, augment_options), num_parallel_calls=autotune,
        deterministic=True)
  return ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(autotune)


def select_images(input_dir: str, recursive: bool = True,
                  max_images: Optional[int] = None) -> List[str]:
  """The first `max_images` (all when None) of :func:`list_images`."""
  names = list_images(input_dir, recursive=recursive)
  if max_images is not None:
    if max_images < 0:
      raise ValueError(f"max_images must be >= 0, got {max_images}")
    names = names[:max_images]
  return names


def prepare_directory(input_dir: str, output_dir: str, preprocessor, shard_size: int = 256,
                      feature_fn: Optional[FeatureFn] = None, max_images: Optional[int] = None,
                      skip: Iterable[str] = (), config: Optional[Dict] = None,
                      progress: Optional[Callable[[int], None]] = None,
                      recursive: bool = True) -> WriteSummary:
  """Photos in ``input_dir`` -> shards in ``output_dir`` (see :func:`write_dataset`).

  Args:
    input_dir: folder of photos (searched recursively by default).
    output_dir: shard folder.
    preprocessor: a ``preprocess.FacePreprocessor``.
    shard_size: inputs per shard.
    feature_fn: optional feature callable.
    max_images: keep only the first N photos of the sorted list.
    skip: relative paths to leave out.
    config: extra settings recorded in (and checked against) the manifests.
    progress: per-input progress callback.
    recursive: also look in sub-folders.
  """
  names = select_images(input_dir, recursive, max_images)

  def prepare(name: str):
    return preprocessor.prepare_file(storage.join(input_dir, name), name=name)

  return write_dataset(names, output_dir, prepare, shard_size=shard_size, feature_fn=feature_fn,
                       skip=skip, config=config, progress=progress)
