"""Reads the tfjs port of dlib's face descriptor (face-api's ``face_recognition_model``).

A tfjs weights manifest is JSON: a list of groups, each with ``paths`` (binary
shards, concatenated in order) and ``weights`` (``name``, ``shape``, ``dtype``
and optionally ``quantization{dtype, scale, min}``). Tensors are stored back to
back in manifest order; a ``uint8``-quantised tensor takes one byte per value
and dequantises as ``q * scale + min``; a plain ``float32`` one takes four
little-endian bytes. Filters are already [kh, kw, in, out] and ``fc`` is
[256, 128], so the names and layouts match :mod:`dlib_dat`.
"""

import json
from typing import Mapping

import numpy as np


def read_tfjs(manifest_json: str, shards: Mapping[str, bytes]) -> tuple:
  """Decodes all tensors of a tfjs weights manifest.

  Args:
    manifest_json: the manifest text.
    shards: shard file name (as written in ``paths``) -> its bytes.

  Returns:
    (weights: dict name -> float32 array,
     steps: dict name -> quantisation step (``scale``; 0.0 for float32 tensors)).

  Raises:
    ValueError: a shard is missing, a dtype is unsupported, or the byte count
      does not match the manifest exactly.
  """
  groups = json.loads(manifest_json)
  weights: dict[str, np.ndarray] = {}
  steps: dict[str, float] = {}
  for group in groups:
    try:
      blob = b"".join(shards[p] for p in group["paths"])
    except KeyError as e:
      raise ValueError(f"tfjs shard {e.args[0]} missing") from None
    pos = 0
    for w in group["weights"]:
      count = int(np.prod(w["shape"]))
      quant = w.get("quantization")
      if quant:
        if quant.get("dtype") != "uint8":
          raise ValueError(f"{w['name']}: unsupported quantisation {quant.get('dtype')}")
        q = np.frombuffer(blob, np.uint8, count, pos).astype(np.float64)
        pos += count
        values = q * quant["scale"] + quant["min"]
        steps[w["name"]] = float(quant["scale"])
      elif w.get("dtype", "float32") == "float32":
        values = np.frombuffer(blob, "<f4", count, pos)
        pos += 4 * count
        steps[w["name"]] = 0.0
      else:
        raise ValueError(f"{w['name']}: unsupported dtype {w.get('dtype')}")
      weights[w["name"]] = np.asarray(values, np.float32).reshape(w["shape"])
    if pos != len(blob):
      raise ValueError(f"tfjs shards hold {len(blob)} bytes, manifest describes {pos}")
  return weights, steps
