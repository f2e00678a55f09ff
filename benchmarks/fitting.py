"""Coarse 3DMM fitting speed: the default FitConfig on synthetic 224-px faces.

Targets are rendered with the subdivided ICT face (37,280 vertices), which also
renders the results; the fitter optimises the coarse 9,409-vertex model (same
coefficients). "warm" calls reuse the traced step functions of an earlier call
with the same batch size; "first call" includes tracing.
"""

import time

import numpy as np

from facegcn_tf.fitting import evaluation
from facegcn_tf.fitting import fitter as fitter_lib
from facegcn_tf.morphable.ict import load_ict
from facegcn_tf.render import random_faces
from facegcn_tf.render.renderer import FaceRenderer

TITLE = "Coarse 3DMM fitting (default FitConfig, fit on 9,409 V, render on 37,280 V, 224 px)"


def _faces(renderer, batch, seed):
  rng = np.random.default_rng(seed)
  coeffs = random_faces.random_coefficients(renderer.layout, batch, rng)
  backgrounds = random_faces.background_crops(evaluation.default_backgrounds(), batch,
                                              renderer.image_size, rng)
  return random_faces.render_faces(renderer, coeffs, backgrounds, rng)


def _seconds(fitter, faces):
  start = time.perf_counter()
  fitter(faces.images, faces.landmarks68, faces.face_mask)
  return time.perf_counter() - start


def run(quick: bool):
  renderer = FaceRenderer(load_ict(subdivide=True))
  fit_renderer = FaceRenderer(load_ict(subdivide=False))
  config = fitter_lib.FitConfig()
  label = ""
  if quick:  # a fifth of every stage; the per-image time scales about linearly
    config = config.replace(pose_steps=20, landmark_steps=40, photo_steps=100)
    label = " (quick: 1/5 of the steps)"
  steps = f"{config.pose_steps}+{config.landmark_steps}+{config.photo_steps}@{config.photo_size}px"
  rows = [("schedule (pose + landmark + photometric steps)", steps, "")]
  fitter = fitter_lib.Fitter(renderer, config=config, fit_renderer=fit_renderer)
  for batch in (1, 8):
    faces = _faces(renderer, batch, seed=batch)
    first = _seconds(fitter, faces)
    warm = _seconds(fitter, _faces(renderer, batch, seed=100 + batch))
    rows.append((f"batch {batch}, first call incl. tracing{label}", first / batch, "s/image"))
    rows.append((f"batch {batch}, warm{label}", warm / batch, "s/image"))
  return rows
