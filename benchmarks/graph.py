"""Mesh hierarchy build / cache load and ChebConv speed on a face-sized mesh.

Stand-in meshes (the face template is built elsewhere): a 189x189 bumpy grid
(35,721 V / 70,688 T, open border like the face) and, in full mode, a
6-times subdivided icosphere (40,962 V / 81,920 T).
"""

import tempfile
import time

import numpy as np
import tensorflow as tf
import trimesh

from benchmarks._timing import time_ms
from facegcn_tf.graph import hierarchy
from facegcn_tf.graph import layers
from facegcn_tf.graph import mesh_decimation
from facegcn_tf.graph import upsampling

TITLE = "Graph hierarchy (quadric decimation, U/D, cache) and ChebConv"


def bumpy_grid(n=189):
  """Height-field grid: [n*n, 3] vertices, [2(n-1)^2, 3] triangles."""
  x, y = np.meshgrid(np.linspace(-1, 1, n), np.linspace(-1, 1, n))
  z = 0.3 * np.sin(3 * x) * np.cos(2 * y) + 0.2 * x * x
  v = np.stack([x.ravel(), y.ravel(), z.ravel()], axis=1)
  idx = np.arange(n * n).reshape(n, n)
  a, b = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel()
  c, d = idx[1:, :-1].ravel(), idx[1:, 1:].ravel()
  return v, np.concatenate([np.stack([a, b, d], 1), np.stack([a, d, c], 1)])


def _hierarchy_rows(label, v, f):
  """Times decimation and U per level, then build_hierarchy with a cold and warm cache."""
  rows = []
  dec_s = up_s = 0.0
  fine_v, fine_f = v, f
  for _ in range(4):
    t0 = time.perf_counter()
    dec = mesh_decimation.decimate(fine_v, fine_f, 4)
    t1 = time.perf_counter()
    upsampling.upsampling_matrix(fine_v, fine_v[dec.kept], dec.faces, kept=dec.kept)
    t2 = time.perf_counter()
    dec_s += t1 - t0
    up_s += t2 - t1
    fine_v, fine_f = fine_v[dec.kept], dec.faces
  with tempfile.TemporaryDirectory() as tmp:
    t0 = time.perf_counter()
    h = hierarchy.build_hierarchy(v, f, cache_dir=tmp)
    build_s = time.perf_counter() - t0
    size_mb = hierarchy.cache_path(v, f, cache_dir=tmp).stat().st_size / 2**20
    load_ms = time_ms(lambda: hierarchy.build_hierarchy(v, f, cache_dir=tmp), repeats=5, warmup=1)
  counts = " -> ".join(str(n) for n in h.num_vertices)
  rows += [
      (f"{label}: vertices per level", counts, ""),
      (f"{label}: 4 decimations", dec_s, "s"),
      (f"{label}: 4 upsampling matrices", up_s, "s"),
      (f"{label}: build_hierarchy, cold cache (build + save)", build_s, "s"),
      (f"{label}: build_hierarchy, warm cache (hash + load)", load_ms, "ms"),
      (f"{label}: cache file size", size_mb, "MiB"),
  ]
  return rows, h


def _chebconv_rows(h, batch=4, channels=16, repeats=10):
  lap = h.laplacians[0]
  n = lap.shape[0]
  conv = layers.ChebConv(channels, lap, order=6)
  pool = layers.GraphResample(h.down[0])
  unpool = layers.GraphResample(h.up[0])
  x = tf.constant(np.random.RandomState(0).randn(batch, n, channels).astype(np.float32))
  conv(x)

  @tf.function
  def forward(x):
    return conv(x)

  @tf.function
  def forward_backward(x):
    with tf.GradientTape() as tape:
      tape.watch(x)
      loss = tf.reduce_sum(tf.square(conv(x)))
    return tape.gradient(loss, [x, conv.kernel])

  @tf.function
  def pool_unpool(x):
    return unpool(pool(x))

  fwd = time_ms(lambda: forward(x).numpy(), repeats)
  fwd_bwd = time_ms(lambda: [g.numpy() for g in forward_backward(x)], repeats)
  resample = time_ms(lambda: pool_unpool(x).numpy(), repeats)
  tag = f"B={batch}, V={n}, {channels}->{channels} ch, K=6, tf.function"
  return [
      (f"ChebConv forward ({tag})", fwd, "ms"),
      (f"ChebConv forward+backward ({tag})", fwd_bwd, "ms"),
      (f"GraphResample D0 then U0 (B={batch}, {channels} ch)", resample, "ms"),
  ]


def run(quick: bool):
  v, f = bumpy_grid()
  rows, h = _hierarchy_rows(f"grid {v.shape[0]} V / {f.shape[0]} T", v, f)
  if not quick:
    s = trimesh.creation.icosphere(subdivisions=6)
    sphere_rows, _ = _hierarchy_rows(
        f"icosphere {len(s.vertices)} V / {len(s.faces)} T",
        np.asarray(s.vertices), np.asarray(s.faces))
    rows += sphere_rows
  rows += _chebconv_rows(h, repeats=3 if quick else 10)
  return rows
