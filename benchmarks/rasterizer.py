"""Rasterizer op vs our batched wrapper, 224x224, a face-sized mesh (~35k V / ~70k T)."""

import numpy as np
import tensorflow as tf

from benchmarks._timing import time_ms
from facegcn_tf.render import rasterizer

TITLE = "Rasterizer (tf_mesh_renderer op and the batched wrapper), 224x224"


def bumpy_grid(n=187, batch=8, seed=0):
  """[batch, n*n, 4] clip-space grids (35k vertices, 69k triangles) filling most of the view."""
  rng = np.random.RandomState(seed)
  u, v = np.meshgrid(np.linspace(-0.8, 0.8, n), np.linspace(-0.8, 0.8, n))
  idx = np.arange(n * n).reshape(n, n)
  a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, 1:], idx[1:, :-1]
  tris = np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3),
                         np.stack([a, c, d], -1).reshape(-1, 3)]).astype(np.int32)
  verts = []
  for _ in range(batch):
    z = 0.05 * rng.randn(n, n)
    w = 1.0 + 0.1 * rng.rand()
    verts.append(np.stack([u * w, v * w, z, np.full_like(u, w)], -1).reshape(-1, 4))
  return np.asarray(verts, np.float32), tris


def run(quick: bool):
  repeats = 3 if quick else 10
  verts, tris = bumpy_grid()
  module = rasterizer.load_op_library()
  size = 224
  weights = tf.constant(np.random.RandomState(1).randn(8, size, size, 3), tf.float32)
  rows = [("mesh vertices / triangles", f"{verts.shape[1]} / {tris.shape[0]}", "")]

  # Bare op, one image per call (what the wrapper is built on).
  v_t, t_t = tf.constant(verts), tf.constant(tris)

  def bare(batch, backward):
    def fn():
      for i in range(batch):
        bary, ids, _ = module.rasterize_triangles(v_t[i], t_t, size, size)
        if backward:
          module.rasterize_triangles_grad(v_t[i], t_t, bary, ids, weights[i], size, size).numpy()
        else:
          bary.numpy()
    return fn

  def wrapped(fn_builder, batch, backward):
    v = tf.constant(verts[:batch])

    def step(v):
      if not backward:
        return rasterizer.rasterize(v, t_t, (size, size)).barycentrics
      with tf.GradientTape() as tape:
        tape.watch(v)
        loss = tf.reduce_sum(rasterizer.rasterize(v, t_t, (size, size)).barycentrics
                             * weights[:batch])
      return tape.gradient(loss, v)

    f = fn_builder(step)
    return lambda: f(v).numpy()

  results = {}
  for batch in (1, 8):
    for backward in (False, True):
      kind = "fwd+bwd" if backward else "fwd"
      results[("op", batch, kind)] = time_ms(bare(batch, backward), repeats) / batch
      results[("eager", batch, kind)] = time_ms(
          wrapped(lambda s: s, batch, backward), repeats) / batch
      results[("function", batch, kind)] = time_ms(
          wrapped(tf.function, batch, backward), repeats) / batch
  for (mode, batch, kind), ms in results.items():
    label = {"op": "bare op (eager loop)", "eager": "wrapper, eager",
             "function": "wrapper, tf.function"}[mode]
    rows.append((f"{label}, batch {batch}, {kind}", ms, "ms/image"))
  for kind in ("fwd", "fwd+bwd"):
    overhead = results[("function", 8, kind)] / results[("op", 8, kind)] - 1.0
    rows.append((f"wrapper overhead vs bare op, batch 8, tf.function, {kind}",
                 100.0 * overhead, "%"))
  return rows
