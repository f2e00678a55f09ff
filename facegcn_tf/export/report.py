"""The per-face JSON report: coefficients by part, pose, landmarks, losses, versions, flags.

:func:`to_json_safe` turns what a pipeline holds (numpy arrays and scalars, TF tensors,
dataclasses, namedtuples, paths, absl flag values) into plain JSON values. Non-finite
floats become ``null`` (strict JSON has no NaN/Infinity); float32 values are written with
float32's 7 significant digits instead of the 17 of their float64 expansion.
"""

import dataclasses
import datetime
import math
import os
import pathlib
import platform
from typing import Any, Dict, Mapping, Optional

import numpy as np

from facegcn_tf.morphable.model import CoeffLayout

REPORT_VERSION = 1


def _float(value, single: bool):
  value = float(value)
  if not math.isfinite(value):
    return None
  return float(f"{value:.7g}") if single else value


def to_json_safe(value: Any) -> Any:
  """A JSON-encodable copy of ``value`` (see the module docstring).

  Raises:
    ValueError: a value with no JSON form (bytes, arbitrary objects, complex numbers).
  """
  if value is None or isinstance(value, (bool, str)):
    return value
  if isinstance(value, np.bool_):
    return bool(value)
  if isinstance(value, (int, np.integer)):
    return int(value)
  if isinstance(value, (float, np.floating)):
    return _float(value, isinstance(value, (np.float32, np.float16)))
  if isinstance(value, (os.PathLike, pathlib.PurePath)):
    return os.fspath(value)
  if hasattr(value, "numpy") and callable(value.numpy):  # tf.Tensor, tf.Variable
    return to_json_safe(value.numpy())
  if hasattr(value, "flag_values_dict") and callable(value.flag_values_dict):  # absl FlagValues
    return to_json_safe(value.flag_values_dict())
  if isinstance(value, np.ndarray):
    if value.dtype.kind == "f":
      single = value.dtype.itemsize <= 4
      as_list = value.astype(np.float64).tolist()
      return _map_floats(as_list, single)
    if value.dtype.kind in "biu":
      return value.tolist()
    if value.dtype.kind == "U":
      return value.tolist()
    raise ValueError(f"cannot convert a numpy array of dtype {value.dtype} to JSON")
  if dataclasses.is_dataclass(value) and not isinstance(value, type):
    return {f.name: to_json_safe(getattr(value, f.name)) for f in dataclasses.fields(value)}
  if isinstance(value, tuple) and hasattr(value, "_fields"):  # namedtuple
    return {k: to_json_safe(v) for k, v in zip(value._fields, value)}
  if isinstance(value, Mapping):
    out = {}
    for k, v in value.items():
      if not isinstance(k, (str, int, np.integer)):
        raise ValueError(f"JSON object keys must be strings, got {type(k).__name__} {k!r}")
      out[str(k)] = to_json_safe(v)
    return out
  if isinstance(value, (list, tuple)):
    return [to_json_safe(v) for v in value]
  if isinstance(value, (set, frozenset)):
    return sorted((to_json_safe(v) for v in value), key=repr)
  raise ValueError(f"cannot convert {type(value).__name__} to JSON")


def _map_floats(nested, single: bool):
  if isinstance(nested, list):
    return [_map_floats(v, single) for v in nested]
  return _float(nested, single)


def versions() -> Dict[str, str]:
  """Versions of facegcn_tf and the libraries that shape its results."""
  import cv2
  import keras
  import scipy
  import tensorflow as tf
  import trimesh

  import facegcn_tf
  return {"facegcn_tf": facegcn_tf.__version__, "tensorflow": tf.__version__,
          "keras": keras.__version__, "numpy": np.__version__, "scipy": scipy.__version__,
          "opencv": cv2.__version__, "trimesh": trimesh.__version__,
          "python": platform.python_version()}


def pose_degrees(angles) -> Dict[str, float]:
  """Deep3DFace Euler angles ``[3]`` (pitch x, yaw y, roll z; radians) -> degrees."""
  angles = np.asarray(to_numpy(angles), dtype=np.float64).reshape(-1)
  if angles.shape != (3,):
    raise ValueError(f"angles must have 3 values (pitch, yaw, roll), got {angles.shape}")
  pitch, yaw, roll = np.degrees(angles)
  return {"pitch_deg": float(pitch), "yaw_deg": float(yaw), "roll_deg": float(roll)}


def to_numpy(value) -> np.ndarray:
  """numpy array of a tensor / array / list."""
  if hasattr(value, "numpy") and callable(value.numpy):
    value = value.numpy()
  return np.asarray(value)


def split_coefficients(coeffs, layout: CoeffLayout) -> Dict[str, np.ndarray]:
  """``[N]`` (or ``[1, N]``) coefficient vector -> dict part -> ``[n_part]`` array."""
  coeffs = to_numpy(coeffs).astype(np.float32)
  if coeffs.ndim == 2 and coeffs.shape[0] == 1:
    coeffs = coeffs[0]
  if coeffs.ndim != 1:
    raise ValueError(f"one face's coefficients must be [N] or [1, N], got shape {coeffs.shape}")
  return layout.split(coeffs)


def _landmarks(points, name: str):
  if points is None:
    return None
  points = to_numpy(points).astype(np.float64)
  if points.ndim == 3 and points.shape[0] == 1:
    points = points[0]
  if points.ndim != 2 or points.shape[1] != 2:
    raise ValueError(f"{name} landmarks must be [L, 2] (x, y), got shape {points.shape}")
  return points


def face_report(name: str, coeffs, layout: CoeffLayout, *, model_name: Optional[str] = None,
                landmarks_aligned=None, landmarks_original=None,
                losses: Optional[Mapping[str, Any]] = None, flags: Any = None,
                source: Optional[Mapping[str, Any]] = None,
                extra: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
  """The JSON-safe report of one face.

  Args:
    name: the face's output name.
    coeffs: [N] or [1, N] coefficient vector (Deep3DFace order).
    layout: its :class:`CoeffLayout`.
    model_name: the face model's name (e.g. ``"ict"``).
    landmarks_aligned: [68, 2] projected landmarks in the aligned crop (x, y pixels).
    landmarks_original: [68, 2] the same in the original photo's pixels.
    losses: loss / fitting figures by name.
    flags: the run's flags (a dict or an absl ``FlagValues``).
    source: facts about the input (photo path, size, detection score, box...).
    extra: anything else, stored under ``"extra"``.

  Returns:
    A dict of plain JSON values with keys ``report_version``, ``name``, ``created``,
    ``model``, ``coefficients`` (part -> list), ``pose`` (degrees and the translation in
    decimetres), ``landmarks``, ``losses``, ``source``, ``versions``, ``flags`` and
    ``extra``.
  """
  parts = split_coefficients(coeffs, layout)
  pose = pose_degrees(parts["angles"])
  pose["translation_dm"] = parts["trans"]
  report = {
      "report_version": REPORT_VERSION,
      "name": str(name),
      "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "model": model_name,
      "coefficients": dict(parts),
      "pose": pose,
      "landmarks": {"aligned": _landmarks(landmarks_aligned, "aligned"),
                    "original": _landmarks(landmarks_original, "original")},
      "losses": dict(losses or {}),
      "source": dict(source or {}),
      "versions": versions(),
      "flags": flags if flags is not None else {},
      "extra": dict(extra or {}),
  }
  return to_json_safe(report)
