"""Coarse 3DMM coefficients of every training record, fitted once and cached.

The GCN texture training needs each photo's frozen coarse stage (shape, pose,
lighting, coarse albedo). The paper takes it from a pre-trained R-Net
(:func:`regress_records`, ``scripts/fit_data.py --rnet_checkpoint``: a trained
R-Net or Deep3DFace's ``FaceReconModel.pb``); by default it comes from the
analysis-by-synthesis fitter (`fitting.fitter`, :func:`fit_records`). Either runs
ONCE per record and the trainer reads the cache back with :func:`load_coarse_coeffs`.

Cache layout: a folder (default ``<data folder>/coarse_<face model>``) with
one ``<shard name>.npz`` per TFRecord shard, holding

=================  =================  =========================================
key                shape / type       content
=================  =================  =========================================
format             str                :data:`CACHE_FORMAT`
face_model         str                the model's name (``MorphableModel.name``)
layout             int [3]            (n_id, n_exp, n_tex) of the coefficients
paths              str [N]            the records' ``source/path`` (the key)
coeffs             float32 [N, C]     fitted coefficients (model layout)
photo_loss         float32 [N]        final photometric loss of the fit (NaN: regressed)
landmark_loss      float32 [N]        final landmark loss of the fit (NaN: regressed)
=================  =================  =========================================

A shard's file is rewritten (atomically) after every fitted batch, so an
interrupted run resumes where it stopped: records already in the cache are
skipped. ``paths``/``coeffs`` are the same keys as the R-Net trainer's
distillation file, so one shard file also works there.
"""

import dataclasses
import hashlib
import io
import json
import os
import time
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import tensorflow as tf

from facegcn_tf import storage
from facegcn_tf.data import dataset as data_lib
from facegcn_tf.data import tfrecords
from facegcn_tf.errors import AssetNotFoundError, FaceGCNError
from facegcn_tf.fitting import fitter as fitter_lib

CACHE_FORMAT = "facegcn_tf.coarse_coeffs.v1"
MASK_KEYS = ("skin_mask", "face_mask", "region_mask")


def default_cache_dir(pattern: str, face_model_name: str) -> str:
  """``<folder of the first shard matching pattern>/coarse_<face_model_name>``.

  Raises:
    FileNotFoundError: nothing matches ``pattern``.
  """
  files = sorted(tf.io.gfile.glob(pattern))
  if not files:
    raise FileNotFoundError(f"no TFRecord files match '{pattern}'")
  first = storage.absolute(files[0])
  return storage.join(storage.dirname(first), f"coarse_{face_model_name}")


def shard_cache_path(cache_dir: str, shard_path: str) -> str:
  """The cache file of one TFRecord shard: ``<cache_dir>/<shard name without ext>.npz``."""
  return storage.join(cache_dir, os.path.splitext(storage.basename(shard_path))[0] + ".npz")


def _layout_tuple(layout) -> tuple:
  return (layout.n_id, layout.n_exp, layout.n_tex)


def read_cache_file(path: str, layout=None, face_model: Optional[str] = None) -> Dict[str, np.ndarray]:
  """One cache file -> dict of its arrays (see the module docstring), validated.

  Raises:
    ValueError: not a cache file, or made for another layout / face model.
  """
  try:
    with np.load(io.BytesIO(storage.read_bytes(path)), allow_pickle=False) as data:
      arrays = {key: data[key] for key in data.files}
  except (OSError, ValueError) as err:
    raise ValueError(f"'{path}' is not a readable coarse-coefficient cache ({err})") from None
  if str(arrays.get("format", "")) != CACHE_FORMAT:
    raise ValueError(f"'{path}' is not a coarse-coefficient cache ({CACHE_FORMAT})")
  coeffs, paths = arrays["coeffs"], arrays["paths"]
  if coeffs.ndim != 2 or coeffs.shape[0] != paths.shape[0]:
    raise ValueError(f"'{path}': coeffs {coeffs.shape} do not match {paths.shape[0]} paths")
  if layout is not None and tuple(int(x) for x in arrays["layout"]) != _layout_tuple(layout):
    raise ValueError(f"'{path}' holds coefficients of layout {tuple(arrays['layout'])}, "
                     f"this face model has {_layout_tuple(layout)}")
  if face_model is not None and str(arrays["face_model"]) != face_model:
    raise ValueError(f"'{path}' was fitted with face model '{arrays['face_model']}', "
                     f"not '{face_model}'")
  return arrays


def write_cache_file(path: str, face_model: str, layout, paths: List[str],
                     coeffs: List[np.ndarray], photo: Optional[List[float]] = None,
                     landmark: Optional[List[float]] = None) -> None:
  """Writes one shard's cache file atomically (losses NaN where not given, e.g. regressed)."""
  photo = [np.nan] * len(paths) if photo is None else photo
  landmark = [np.nan] * len(paths) if landmark is None else landmark
  data = io.BytesIO()
  np.savez(data, format=np.array(CACHE_FORMAT), face_model=np.array(face_model),
           layout=np.array(_layout_tuple(layout), np.int64), paths=np.array(paths, dtype=str),
           coeffs=np.asarray(coeffs, np.float32).reshape(len(paths), layout.total),
           photo_loss=np.asarray(photo, np.float32), landmark_loss=np.asarray(landmark, np.float32))
  storage.write_bytes(path, data.getvalue())


PARTS_DIR = "parts"


def part_path(cache_dir: str, shard_path: str, paths: List[str]) -> str:
  """A part file of one shard's cache: ``<cache_dir>/parts/<shard name>-<hash of paths>.npz``.

  Beam workers write a part per fitted batch (a retried batch rewrites the same file); the
  parts are merged into the shard's file at the end of the run (:func:`merge_parts`).
  """
  digest = hashlib.sha1("\n".join(paths).encode("utf-8")).hexdigest()[:16]
  stem = os.path.splitext(storage.basename(shard_path))[0]
  return storage.join(cache_dir, PARTS_DIR, f"{stem}-{digest}.npz")


def _shard_parts(cache_dir: str, shard_path: str) -> List[str]:
  stem = os.path.splitext(storage.basename(shard_path))[0]
  return storage.glob(storage.join(storage.escape(storage.join(cache_dir, PARTS_DIR)),
                                   storage.escape(stem) + "-" + "[0-9a-f]" * 16 + ".npz"))


def cached_paths(cache_dir: str, shard_path: str, layout, face_model: str) -> set:
  """The records of a shard already in its cache file or in its parts."""
  path = shard_cache_path(cache_dir, shard_path)
  out = set()
  for source in ([path] if storage.exists(path) else []) + _shard_parts(cache_dir, shard_path):
    out.update(str(p) for p in read_cache_file(source, layout, face_model)["paths"])
  return out


def merge_parts(cache_dir: str, shard_path: str, layout, face_model: str) -> int:
  """Merges a shard's part files into its cache file (atomically), then deletes them.

  A record already in the file is kept as it is. Writes an empty file for a shard with
  neither. Returns the number of records added.
  """
  path = shard_cache_path(cache_dir, shard_path)
  parts = _shard_parts(cache_dir, shard_path)
  has_file = storage.exists(path)
  if has_file and not parts:
    return 0
  paths, coeffs, photo, landmark = [], [], [], []
  seen, before = set(), 0
  for source in ([path] if has_file else []) + parts:
    arrays = read_cache_file(source, layout, face_model)
    for k, name in enumerate(arrays["paths"]):
      if str(name) not in seen:
        seen.add(str(name))
        paths.append(str(name))
        coeffs.append(arrays["coeffs"][k])
        photo.append(float(arrays["photo_loss"][k]))
        landmark.append(float(arrays["landmark_loss"][k]))
    if source == path:   # the records the shard's file held before this merge
      before = len(paths)
  write_cache_file(path, face_model, layout, paths, coeffs, photo, landmark)
  for part in parts:
    storage.remove(part)
  return len(paths) - before


@dataclasses.dataclass
class FitSummary:
  """What :func:`fit_records` did."""
  cache_dir: str
  fitted: int
  already_done: int
  shards: int
  seconds: float


def _batch_arrays(batch, mask_key: str):
  """A parsed batch -> numpy (paths, images, landmarks, masks [B, S, S])."""
  mask = batch[mask_key] * batch["valid_mask"]
  return ([p.decode("utf-8") for p in batch["source_path"].numpy()], batch["image"].numpy(),
          batch["landmarks68"].numpy(), mask.numpy()[..., 0])


def _record_batches(shard: str, batch_size: int, mask_key: str):
  """Yields numpy batches (paths, images, landmarks, masks) of one shard, in file order."""
  ds = tf.data.TFRecordDataset(shard).map(lambda x: tfrecords.parse_example(x, 0))
  for batch in ds.batch(batch_size):
    yield _batch_arrays(batch, mask_key)


def parse_records(records: List[bytes], mask_key: str = "skin_mask"):
  """Serialised records -> numpy (paths, images, landmarks, masks), as the fit reads them."""
  ds = tf.data.Dataset.from_tensor_slices(tf.constant(records, tf.string))
  batch = next(iter(ds.map(lambda x: tfrecords.parse_example(x, 0)).batch(len(records))))
  return _batch_arrays(batch, mask_key)


CoarseFn = Callable[[np.ndarray, np.ndarray, np.ndarray],
                    Tuple[np.ndarray, Optional[np.ndarray], Optional[np.ndarray]]]


def fit_records(pattern: str, renderer, cache_dir: Optional[str] = None, batch_size: int = 8,
                fit_config: fitter_lib.FitConfig = fitter_lib.FitConfig(),
                fit_renderer=None, identity_encoder=None, mask_key: str = "skin_mask",
                progress: Optional[Callable[[int], None]] = None) -> FitSummary:
  """Fits the coarse model to every record of the shards matching ``pattern``; resumable.

  Args:
    pattern: glob of ``prepare_data`` TFRecord shards (224-px crops).
    renderer: `FaceRenderer` of the face model at the records' size.
    cache_dir: output folder (default :func:`default_cache_dir`).
    batch_size: records fitted together.
    fit_config: the fitter's schedule.
    fit_renderer: optional coarser renderer with the same layout to fit on.
    identity_encoder: optional identity network (enables the identity loss).
    mask_key: record mask weighing the photometric loss (times the valid area).
    progress: called with the number of records finished after each batch.

  Returns:
    A :class:`FitSummary`.

  Raises:
    FileNotFoundError: nothing matches ``pattern``.
    ValueError: bad arguments, or a cache file of another face model in the way.
  """
  fitter = fitter_lib.Fitter(renderer, identity_encoder, fit_config, fit_renderer)
  return cache_records(pattern, fitter_coarse_fn(fitter), renderer.model.name, renderer.layout,
                       cache_dir, batch_size, mask_key, progress)


def fitter_coarse_fn(fitter, predictor=None) -> "CoarseFn":
  """The fit as a `CoarseFn`; with an R-Net `predictor` the fit starts from its regression."""
  def coarse_fn(images, landmarks, masks):
    start = None if predictor is None else np.asarray(predictor(tf.constant(images, tf.float32)))
    result = fitter(images, landmarks, masks, initial_coeffs=start)
    return result.coeffs.numpy(), result.losses["photo"], result.losses["landmark"]
  return coarse_fn


def rnet_coarse_fn(predictor) -> "CoarseFn":
  """An R-Net's regression as a `CoarseFn` (no fit losses)."""
  def coarse_fn(images, landmarks, masks):
    del landmarks, masks
    return np.asarray(predictor(tf.constant(images, tf.float32))), None, None
  return coarse_fn


@dataclasses.dataclass(frozen=True)
class CoarseSettings:
  """What ``fit_data.py`` fits with (its flags); picklable, so a Beam worker builds the same
  coarse function (`build`) as the single-process run.

  Attributes:
    face_model, model_path: the face model to fit.
    identity: "dlib" (identity loss) or "none".
    fit_method: the records' alignment fit (`preparation.Preparation.fit_method`).
    fit_steps: scale of the fitter's iteration counts.
    rnet_checkpoint: an R-Net (``rnet.weights.h5`` or Deep3DFace's ``.pb``).
    rnet_init: with `rnet_checkpoint`, fit starting from its regression (else the regression
      is the result).
  """
  face_model: str = "ict"
  model_path: Optional[str] = None
  identity: str = "dlib"
  fit_method: str = "scale_translation"
  fit_steps: float = 1.0
  rnet_checkpoint: Optional[str] = None
  rnet_init: bool = False

  def build(self, model=None):
    """(coarse_fn, face model): the networks loaded once (the face model unless `model`, the
    one these settings name, is given)."""
    # pylint: disable=import-outside-toplevel
    from facegcn_tf.assets import loaders
    from facegcn_tf.morphable import load_fitting_model, load_model
    from facegcn_tf.render.renderer import FaceRenderer
    # pylint: enable=import-outside-toplevel
    if model is None:
      model = load_model(self.face_model, self.model_path)
    predictor = None
    if self.rnet_checkpoint:
      predictor = loaders.load_rnet_predictor(self.rnet_checkpoint, model.layout)
      if not self.rnet_init:
        return rnet_coarse_fn(predictor), model
    elif self.rnet_init:
      raise ValueError("rnet_init needs an R-Net checkpoint (--rnet_checkpoint)")
    fit_model = load_fitting_model(self.face_model, self.model_path)
    encoder = None
    if self.identity == "dlib":
      encoder = loaders.load_identity_encoder("dlib", template5=model.template5,
                                              fit_method=self.fit_method)
    fitter = fitter_lib.Fitter(
        FaceRenderer(model), encoder, fitter_lib.FitConfig().scaled(self.fit_steps),
        FaceRenderer(fit_model) if fit_model is not None else None)
    return fitter_coarse_fn(fitter, predictor), model


def regress_records(pattern: str, predictor, model, cache_dir: Optional[str] = None,
                    batch_size: int = 8, progress: Optional[Callable[[int], None]] = None
                    ) -> FitSummary:
  """Coarse coefficients of every record by an R-Net's regression (the paper's frozen R-Net).

  Same cache and resume rules as :func:`fit_records`; the fit losses are stored as NaN.

  Args:
    pattern: glob of ``prepare_data`` TFRecord shards.
    predictor: aligned crops [B, 224, 224, 3] RGB 0..255 -> coefficients [B, C]
      (`assets.loaders.load_rnet_predictor`).
    model: the face model (its name and layout are recorded and checked).
    cache_dir, batch_size, progress: as :func:`fit_records`.
  """
  return cache_records(pattern, rnet_coarse_fn(predictor), model.name, model.layout, cache_dir,
                       batch_size, "skin_mask", progress)


def cache_records(pattern: str, coarse_fn: CoarseFn, model_name: str, layout,
                  cache_dir: Optional[str] = None, batch_size: int = 8,
                  mask_key: str = "skin_mask",
                  progress: Optional[Callable[[int], None]] = None) -> FitSummary:
  """Runs `coarse_fn` on every record not yet in the cache and writes the cache; resumable.

  Args:
    pattern: glob of the shards.
    coarse_fn: (images [B, S, S, 3] 0..255, landmarks [B, 68, 2], masks [B, S, S]) ->
      (coeffs [B, C], photo losses [B] or None, landmark losses [B] or None).
    model_name, layout: the face model the coefficients belong to.
    cache_dir, batch_size, mask_key, progress: as :func:`fit_records`.
  """
  if mask_key not in MASK_KEYS:
    raise ValueError(f"mask_key must be one of {MASK_KEYS}, got '{mask_key}'")
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}")
  files = sorted(tf.io.gfile.glob(pattern))
  if not files:
    raise FileNotFoundError(f"no TFRecord files match '{pattern}'")
  cache_dir = cache_dir or default_cache_dir(pattern, model_name)
  storage.makedirs(cache_dir)
  start = time.perf_counter()
  fitted = done_before = 0
  for shard in files:
    path = shard_cache_path(cache_dir, shard)
    if _shard_parts(cache_dir, shard):   # left by a Beam run (`scale.fit`)
      merge_parts(cache_dir, shard, layout, model_name)
    paths, coeffs, photo, landmark = [], [], [], []
    if storage.exists(path):
      old = read_cache_file(path, layout, model_name)
      paths = [str(p) for p in old["paths"]]
      coeffs = list(old["coeffs"])
      photo, landmark = list(old["photo_loss"]), list(old["landmark_loss"])
    known = set(paths)
    for names, images, lms, masks in _record_batches(shard, batch_size, mask_key):
      todo = [i for i, name in enumerate(names) if name not in known]
      done_before += len(names) - len(todo)
      if todo:
        values, photo_loss, landmark_loss = coarse_fn(images[todo], lms[todo], masks[todo])
        if not np.all(np.isfinite(values)):
          raise FaceGCNError(f"the coarse fit of {names[todo[0]]!r}... in '{shard}' is not finite")
        for j, i in enumerate(todo):
          paths.append(names[i])
          coeffs.append(values[j])
          photo.append(np.nan if photo_loss is None else float(photo_loss[j]))
          landmark.append(np.nan if landmark_loss is None else float(landmark_loss[j]))
          known.add(names[i])
        write_cache_file(path, model_name, layout, paths, coeffs, photo, landmark)
        fitted += len(todo)
      if progress:
        progress(len(names))
    if not storage.exists(path):  # an empty shard still gets its (empty) file
      write_cache_file(path, model_name, layout, paths, coeffs, photo, landmark)
  return FitSummary(cache_dir=cache_dir, fitted=fitted, already_done=done_before,
                    shards=len(files), seconds=time.perf_counter() - start)


def load_coarse_coeffs(cache_dir: str, layout, face_model: Optional[str] = None,
                       data_pattern: Optional[str] = None) -> Dict[str, np.ndarray]:
  """Every cached fit in ``cache_dir``: ``{source path: coeffs [C] float32}``.

  Args:
    cache_dir: the cache folder.
    layout: the face model's `CoeffLayout` (checked).
    face_model: the face model's name (checked when given).
    data_pattern: the data glob, only for the hint in the error message.

  Raises:
    AssetNotFoundError: no cache there (the message says how to make one).
    ValueError: a cache file of another layout / face model.
  """
  files = storage.glob(storage.join(storage.escape(cache_dir), "*.npz"))
  if not files:
    data = f"--data='{data_pattern}' " if data_pattern else ""
    raise AssetNotFoundError(
        f"no coarse coefficients in '{cache_dir}'; fit them once with: python scripts/fit_data.py "
        f"{data}--face_model={face_model or '...'}")
  table = {}
  for path in files:
    arrays = read_cache_file(path, layout, face_model)
    for name, row in zip(arrays["paths"], arrays["coeffs"]):
      table[str(name)] = np.asarray(row, np.float32)
  return table


def _read_json(path: str) -> dict:
  try:
    value = json.loads(storage.read_text(path))
  except (OSError, ValueError):
    return {}
  return value if isinstance(value, dict) else {}


def record_paths(pattern: str) -> List[str]:
  """The ``source/path`` of every record of the shards (manifests' ``done`` lists, else read)."""
  files = sorted(tf.io.gfile.glob(pattern))
  if not files:
    raise FileNotFoundError(f"no TFRecord files match '{pattern}'")
  out = []
  for shard in files:
    manifest = _read_json(os.path.splitext(shard)[0] + ".json")
    if (manifest.get("format") == data_lib.MANIFEST_FORMAT
        and isinstance(manifest.get("done"), list)):
      out.extend(str(p) for p in manifest["done"])
      continue
    for raw in tf.data.TFRecordDataset(shard):
      example = tf.train.Example.FromString(raw.numpy())
      out.append(example.features.feature["source/path"].bytes_list.value[0].decode("utf-8"))
  return out


def check_coverage(table: Dict[str, np.ndarray], pattern: str, cache_dir: str) -> int:
  """Number of records; raises FaceGCNError (one line) when some have no cached fit."""
  names = record_paths(pattern)
  missing = [n for n in names if n not in table]
  if missing:
    raise FaceGCNError(
        f"{len(missing)} of {len(names)} records have no coarse coefficients in '{cache_dir}' "
        f"(e.g. '{missing[0]}'); run: python scripts/fit_data.py --data='{pattern}'")
  return len(names)


__all__ = ["CACHE_FORMAT", "CoarseSettings", "FitSummary", "cache_records", "cached_paths",
           "check_coverage", "default_cache_dir", "fit_records", "fitter_coarse_fn",
           "load_coarse_coeffs", "merge_parts", "parse_records", "part_path",
           "read_cache_file", "record_paths", "regress_records", "rnet_coarse_fn",
           "shard_cache_path", "write_cache_file"]
