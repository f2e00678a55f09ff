"""Reads dlib's serialised face-descriptor network (``*.dat``) into named arrays.

The file ``dlib_face_recognition_resnet_model_v1.dat`` is a ``dlib::serialize``
stream of the ``anet_type`` network of dlib's ``dnn_face_recognition_ex.cpp``
(a ResNet-29 ``loss_metric`` net). The format facts used here:

* integers: one header byte (low nibble = number of little-endian payload
  bytes, bit 7 = negative) followed by the payload;
* strings: an integer length, then the bytes;
* floats/doubles: dlib's portable encoding, integer mantissa then integer
  exponent (value = mantissa * 2**exponent);
* bools: the ASCII characters ``'1'`` / ``'0'``;
* tensors (version 2): integers n, k, nr, nc, then n*k*nr*nc little-endian
  IEEE float32 values;
* ``alias_tensor``: version 1 and the four sizes (no data);
* the network is written outermost first: the loss layer, then each nested
  layer's version number down to the input layer, then the layer *details*
  from the input outward, each followed by three bools and three (cleared)
  tensors; tag and skip layers write only a version number.

This module parses that stream, checks that it is exactly the ResNet-29 that
:mod:`facegcn_tf.networks.identity_dlib` builds (layer kinds, filter counts,
strides, paddings, pools; the architecture constants live there), and returns
the weights under the names that network uses:
``<block>/conv/filters`` ([kh, kw, in, out], HWIO), ``<block>/conv/bias``,
``<block>/scale/weights`` and ``<block>/scale/biases`` (the per-channel affine
layer) for ``block`` in ``STEM`` and the ``RESIDUAL_BLOCKS`` names, and ``fc``
([256, 128], input-major).
"""

import dataclasses
from typing import Any

import numpy as np

from facegcn_tf.networks.identity_dlib import EMBEDDING_DIM
from facegcn_tf.networks.identity_dlib import INPUT_MEAN_RGB
from facegcn_tf.networks.identity_dlib import INPUT_SIZE
from facegcn_tf.networks.identity_dlib import RESIDUAL_BLOCKS
from facegcn_tf.networks.identity_dlib import STEM

_CONV_MODE = 0                # dlib layer_mode CONV_MODE (affine per channel)
_FC_NO_BIAS = 1               # dlib fc_bias_mode FC_NO_BIAS


@dataclasses.dataclass
class DlibNetInfo:
  """What the stream says besides the weights."""
  loss: str
  margin: float
  distance_threshold: float
  input_layer: str
  input_mean_rgb: tuple
  input_size: tuple


class _Reader:
  """Sequential reader of a dlib::serialize byte stream."""

  def __init__(self, data: bytes):
    self._data = data
    self.pos = 0

  def _take(self, n: int) -> bytes:
    if self.pos + n > len(self._data):
      raise ValueError(f"dlib stream truncated at byte {self.pos} (wanted {n} more)")
    out = self._data[self.pos:self.pos + n]
    self.pos += n
    return out

  def at_end(self) -> bool:
    return self.pos == len(self._data)

  def peek_byte(self) -> int:
    return self._data[self.pos]

  def int_(self) -> int:
    header = self._take(1)[0]
    size = header & 0x0F
    if size > 8:
      raise ValueError(f"bad dlib integer header 0x{header:02x} at byte {self.pos - 1}")
    value = int.from_bytes(self._take(size), "little")
    return -value if header & 0x80 else value

  def str_(self) -> str:
    n = self.int_()
    if not 0 <= n < 1 << 16:
      raise ValueError(f"implausible dlib string length {n} at byte {self.pos}")
    return self._take(n).decode("ascii")

  def float_(self) -> float:
    mantissa = self.int_()
    exponent = self.int_()
    return float(mantissa) * 2.0 ** exponent

  def bool_(self) -> bool:
    c = self._take(1)
    if c not in (b"0", b"1"):
      raise ValueError(f"bad dlib bool {c!r} at byte {self.pos - 1}")
    return c == b"1"

  def tensor(self) -> np.ndarray:
    version = self.int_()
    if version != 2:
      raise ValueError(f"unsupported dlib tensor version {version} at byte {self.pos}")
    shape = tuple(self.int_() for _ in range(4))
    count = int(np.prod(shape))
    return np.frombuffer(self._take(4 * count), "<f4").reshape(shape).astype(np.float32)

  def alias(self) -> tuple:
    version = self.int_()
    if version != 1:
      raise ValueError(f"unsupported dlib alias_tensor version {version}")
    return tuple(self.int_() for _ in range(4))


def _read_details(r: _Reader) -> dict:
  """One layer's details; returns {'kind': ..., ...}."""
  kind = r.str_()
  d: dict[str, Any] = {"kind": kind}
  if kind == "con_4":
    d["params"] = r.tensor()
    d["num_filters"], d["nr"], d["nc"] = r.int_(), r.int_(), r.int_()
    d["stride"] = (r.int_(), r.int_())
    d["padding"] = (r.int_(), r.int_())
    d["filters_shape"] = r.alias()
    d["biases_shape"] = r.alias()
    d["multipliers"] = tuple(r.float_() for _ in range(4))
  elif kind == "affine_":
    d["params"] = r.tensor()
    d["gamma_shape"] = r.alias()
    d["beta_shape"] = r.alias()
    d["mode"] = r.int_()
  elif kind in ("max_pool_2", "avg_pool_2"):
    d["window"] = (r.int_(), r.int_())
    d["stride"] = (r.int_(), r.int_())
    d["padding"] = (r.int_(), r.int_())
  elif kind == "fc_2":
    d["num_outputs"], d["num_inputs"] = r.int_(), r.int_()
    d["params"] = r.tensor()
    d["weights_shape"] = r.alias()
    d["biases_shape"] = r.alias()
    d["bias_mode"] = r.int_()
    d["multipliers"] = tuple(r.float_() for _ in range(4))
  elif kind in ("relu_", "add_prev_"):
    pass
  else:
    raise ValueError(f"unexpected dlib layer '{kind}' at byte {r.pos}: not the "
                     "ResNet-29 face descriptor network")
  return d


def parse_layers(data: bytes) -> tuple:
  """Parses the whole stream.

  Args:
    data: the bytes of the ``.dat`` file.

  Returns:
    (info: DlibNetInfo, layers: list of detail dicts, input side first).

  Raises:
    ValueError: the bytes are not a dlib ``loss_metric`` network stream.
  """
  r = _Reader(data)
  if r.int_() != 1:
    raise ValueError("not a dlib add_loss_layer stream (bad version)")
  loss = r.str_()
  if not loss.startswith("loss_metric"):
    raise ValueError(f"expected a loss_metric network, found '{loss}'")
  margin, threshold = r.float_(), r.float_()
  # Versions of the nested layers, outermost first: add_layer (2), tag/skip
  # layers (1), and the innermost add_layer holding the input layer (3).
  versions = []
  while True:
    v = r.int_()
    if v == 3:
      break
    if v not in (1, 2) or len(versions) > 10000:
      raise ValueError(f"unexpected layer version {v} at byte {r.pos}")
    versions.append(v)
  input_layer = r.str_()
  if input_layer != "input_rgb_image_sized":
    raise ValueError(f"expected input_rgb_image_sized, found '{input_layer}'")
  mean_rgb = (r.float_(), r.float_(), r.float_())
  size = (r.int_(), r.int_())
  n_layers = versions.count(2) + 1
  layers = []
  for i in range(n_layers):
    d = _read_details(r)
    for _ in range(3):              # setup_called, gradient stale, output disabled
      r.bool_()
    for _ in range(3):              # x_grad, cached_output, params_grad (cleared)
      r.tensor()
    if i == 0:
      r.int_()                      # sample_expansion_factor of the input add_layer
    layers.append(d)
  if not r.at_end():
    raise ValueError(f"{len(data) - r.pos} unread bytes after the network")
  info = DlibNetInfo(loss=loss, margin=margin, distance_threshold=threshold,
                     input_layer=input_layer, input_mean_rgb=mean_rgb, input_size=size)
  return info, layers


class _Cursor:
  """Walks the layer list, checking each layer against the expected network."""

  def __init__(self, layers: list):
    self._layers = layers
    self._i = 0

  def take(self, kind: str) -> dict:
    if self._i >= len(self._layers):
      raise ValueError(f"network ends early; expected {kind}")
    d = self._layers[self._i]
    if d["kind"] != kind:
      raise ValueError(f"layer {self._i}: expected {kind}, found {d['kind']}")
    self._i += 1
    return d

  def done(self) -> bool:
    return self._i == len(self._layers)


def _conv(c: _Cursor, out: dict, prefix: str, filters: int, size: int, stride: int) -> int:
  """Consumes con_ + affine_; writes named arrays; returns the input depth."""
  d = c.take("con_4")
  pad = 0 if stride != 1 else size // 2      # dlib's default padding rule
  if (d["num_filters"], d["nr"], d["nc"]) != (filters, size, size):
    raise ValueError(f"{prefix}: expected {filters} filters of {size}x{size}, got "
                     f"{d['num_filters']} of {d['nr']}x{d['nc']}")
  if d["stride"] != (stride, stride) or d["padding"] != (pad, pad):
    raise ValueError(f"{prefix}: unexpected stride {d['stride']} / padding {d['padding']}")
  n, k, nr, nc = d["filters_shape"]
  weights = d["params"].reshape(-1)
  if weights.size != n * k * nr * nc + n:
    raise ValueError(f"{prefix}: parameter count {weights.size} does not match shape")
  oihw = weights[:n * k * nr * nc].reshape(n, k, nr, nc)
  out[f"{prefix}/conv/filters"] = np.ascontiguousarray(oihw.transpose(2, 3, 1, 0))
  out[f"{prefix}/conv/bias"] = weights[n * k * nr * nc:].copy()
  a = c.take("affine_")
  if a["mode"] != _CONV_MODE:
    raise ValueError(f"{prefix}: affine layer is not per-channel")
  p = a["params"].reshape(-1)
  if p.size != 2 * filters:
    raise ValueError(f"{prefix}: affine layer has {p.size} params, expected {2 * filters}")
  out[f"{prefix}/scale/weights"] = p[:filters].copy()
  out[f"{prefix}/scale/biases"] = p[filters:].copy()
  return k


def _pool(c: _Cursor, kind: str, window: int, stride: int) -> None:
  d = c.take(kind)
  if d["window"] != (window, window) or d["stride"] != (stride, stride) or d["padding"] != (0, 0):
    raise ValueError(f"unexpected {kind} configuration {d}")


def named_weights(layers: list) -> dict:
  """Maps the parsed layer list onto the project's weight names (see module doc)."""
  c = _Cursor(layers)
  out: dict[str, np.ndarray] = {}
  if _conv(c, out, STEM, 32, 7, 2) != 3:
    raise ValueError("the first convolution does not take 3 channels")
  c.take("relu_")
  _pool(c, "max_pool_2", 3, 2)
  for name, filters, down in RESIDUAL_BLOCKS:
    _conv(c, out, f"{name}/conv1", filters, 3, 2 if down else 1)
    c.take("relu_")
    _conv(c, out, f"{name}/conv2", filters, 3, 1)
    if down:
      _pool(c, "avg_pool_2", 2, 2)
    c.take("add_prev_")
    c.take("relu_")
  d = c.take("avg_pool_2")          # avg_pool_everything
  if d["window"] != (0, 0) or d["stride"] != (1, 1):
    raise ValueError("expected a global average pool before the fc layer")
  fc = c.take("fc_2")
  if (fc["num_inputs"], fc["num_outputs"], fc["bias_mode"]) != (256, EMBEDDING_DIM, _FC_NO_BIAS):
    raise ValueError(f"unexpected fc layer {fc['num_inputs']}->{fc['num_outputs']}")
  out["fc"] = fc["params"].reshape(256, EMBEDDING_DIM).copy()
  if not c.done():
    raise ValueError("extra layers after the fc layer")
  return out


def read_dat(data: bytes) -> tuple:
  """Parses and checks a dlib face-descriptor ``.dat`` file.

  Args:
    data: file bytes.

  Returns:
    (weights: dict name -> float32 array, info: DlibNetInfo).

  Raises:
    ValueError: the stream is not dlib's ResNet-29 face descriptor network.
  """
  info, layers = parse_layers(data)
  if info.input_size != (INPUT_SIZE, INPUT_SIZE):
    raise ValueError(f"expected a {INPUT_SIZE}x{INPUT_SIZE} input, found {info.input_size}")
  if not np.allclose(info.input_mean_rgb, INPUT_MEAN_RGB, atol=1e-3):
    raise ValueError(f"unexpected input mean {info.input_mean_rgb}")
  return named_weights(layers), info
