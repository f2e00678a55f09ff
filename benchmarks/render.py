"""Full render (coefficients -> lit image) of the subdivided ICT face, and its mesh hierarchy."""

import tempfile
import time

import numpy as np
import tensorflow as tf

from benchmarks._timing import time_ms
from facegcn_tf.graph.hierarchy import build_hierarchy
from facegcn_tf.morphable.ict import load_ict
from facegcn_tf.render.random_faces import random_coefficients
from facegcn_tf.render.renderer import FaceRenderer

TITLE = "Face rendering (coefficients -> 224x224 lit image) and mesh hierarchy, ICT subdivided"


def run(quick: bool):
  repeats = 3 if quick else 8
  start = time.perf_counter()
  model = load_ict(subdivide=True)
  rows = [("load ICT model (subdivided)", time.perf_counter() - start, "s"),
          ("vertices / triangles", f"{model.num_vertices} / {model.num_triangles}", "")]
  renderer = FaceRenderer(model)

  @tf.function
  def forward(coeffs):
    return renderer.render(coeffs).image

  @tf.function
  def forward_backward(coeffs):
    with tf.GradientTape() as tape:
      tape.watch(coeffs)
      loss = tf.reduce_mean(tf.square(renderer.render(coeffs).image))
    return tape.gradient(loss, coeffs)

  for batch in (1, 8):
    coeffs = tf.constant(random_coefficients(model.layout, batch, batch))
    rows.append((f"render, batch {batch}, fwd", time_ms(
        lambda: forward(coeffs).numpy(), repeats) / batch, "ms/image"))
    rows.append((f"render, batch {batch}, fwd+bwd (grad w.r.t. all coefficients)", time_ms(
        lambda: forward_backward(coeffs).numpy(), repeats) / batch, "ms/image"))

  with tempfile.TemporaryDirectory() as cache:
    start = time.perf_counter()
    hierarchy = build_hierarchy(model.mean_shape, model.triangles, cache_dir=cache)
    rows.append(("mesh hierarchy build (4 levels, factor 4, cold)",
                 time.perf_counter() - start, "s"))
    start = time.perf_counter()
    build_hierarchy(model.mean_shape, model.triangles, cache_dir=cache)
    rows.append(("mesh hierarchy load from cache", 1e3 * (time.perf_counter() - start), "ms"))
  rows.append(("vertices per level", " -> ".join(str(n) for n in hierarchy.num_vertices), ""))
  return rows
