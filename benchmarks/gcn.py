"""GCN texture generator and image critic speed on the subdivided ICT face.

TextureGenerator (decoder + refiner + combine net, Chebyshev K = 6) on the
37,280-vertex face hierarchy (5 levels, factor 4), batch 4, inside
tf.function; forward alone and forward + backward (gradients of a scalar loss
to every trainable weight). The critic runs on 224x224 images.
"""

import numpy as np
import tensorflow as tf

from benchmarks._timing import time_ms
from facegcn_tf.graph import hierarchy as hierarchy_lib
from facegcn_tf.morphable import ict
from facegcn_tf.networks import critic as critic_lib
from facegcn_tf.networks import texture_generator

TITLE = "GCN texture generator and image critic (subdivided ICT face, B=4)"
BATCH = 4
FEATURES = 128  # dlib identity features


def _generator_rows(h, refiner, repeats):
  n = h.num_vertices[0]
  rng = np.random.default_rng(0)
  vis = (rng.random((BATCH, n, 1)) > 0.3).astype(np.float32)
  inputs = (tf.constant(rng.normal(size=(BATCH, FEATURES)).astype(np.float32)),
            tf.constant(rng.uniform(-1, 1, (BATCH, n, 3)).astype(np.float32)),
            tf.constant(np.concatenate([rng.uniform(-1, 1, (BATCH, n, 3)) * vis, vis], -1)
                        .astype(np.float32)))
  gen = texture_generator.TextureGenerator(h, FEATURES, refiner=refiner)
  gen(inputs)

  @tf.function
  def forward(x):
    return gen(x)

  @tf.function
  def forward_backward(x):
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean(tf.abs(gen(x) - x[1]))
    return tape.gradient(loss, gen.trainable_variables)

  tag = f"refiner={refiner}"
  return [
      (f"TextureGenerator parameters ({tag})", gen.count_params(), ""),
      (f"TextureGenerator forward ({tag})", time_ms(lambda: forward(inputs).numpy(), repeats),
       "ms"),
      (f"TextureGenerator forward+backward ({tag})",
       time_ms(lambda: [g.numpy() for g in forward_backward(inputs)], repeats), "ms"),
  ]


def _critic_rows(norm, repeats):
  critic = critic_lib.ImageCritic(norm=norm)
  images = tf.random.uniform([BATCH, 224, 224, 3], -1, 1)
  critic(images, training=True)

  @tf.function
  def forward_backward(x):
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean(critic(x, training=True))
    return tape.gradient(loss, critic.trainable_variables)

  return [
      (f"ImageCritic parameters (norm={norm})", critic.count_params(), ""),
      (f"ImageCritic forward+backward 224x224 (norm={norm})",
       time_ms(lambda: [g.numpy() for g in forward_backward(images)], repeats), "ms"),
  ]


def run(quick: bool):
  model = ict.load_ict(subdivide=True)
  h = hierarchy_lib.build_hierarchy(model.mean_shape, model.triangles)
  repeats = 3 if quick else 10
  rows = [("face hierarchy vertices per level", " -> ".join(map(str, h.num_vertices)), "")]
  for refiner in ("residual", "unet"):
    rows += _generator_rows(h, refiner, repeats)
  rows += _critic_rows("batch", repeats)
  if not quick:
    rows += _critic_rows("layer", repeats)
  return rows
