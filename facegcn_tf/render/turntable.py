"""Turntables: one face rendered at several yaw angles, centred, under a fixed light."""

from typing import Optional, Sequence

import numpy as np
import tensorflow as tf

from facegcn_tf.morphable.model import CoeffLayout
from facegcn_tf.render import light_presets
from facegcn_tf.render.renderer import FaceRenderer, Rendering

DEFAULT_YAWS_DEG = (-60.0, -30.0, 0.0, 30.0, 60.0)


def turntable_coefficients(coeffs: tf.Tensor, layout: CoeffLayout,
                           yaws_deg: Sequence[float] = DEFAULT_YAWS_DEG,
                           gamma: Optional[tf.Tensor] = None) -> tf.Tensor:
  """One face's coefficients posed at each yaw.

  Args:
    coeffs: [N] or [1, N] coefficients (`layout`); identity, expression and albedo are kept.
    layout: their layout.
    yaws_deg: Y yaw angles in degrees, the renderer's Euler yaw: a positive yaw turns the
      nose towards the image's right.
    gamma: [27] lighting of every frame (default: the "studio" preset).

  Returns:
    [Y, N] float32: angles (0, yaw, 0), translation 0 (face centred), lighting `gamma`.
  """
  coeffs = tf.reshape(tf.convert_to_tensor(coeffs, tf.float32), [1, layout.total])
  yaws = np.radians(np.asarray(yaws_deg, np.float32).reshape(-1))
  angles = tf.constant(np.stack([np.zeros_like(yaws), yaws, np.zeros_like(yaws)], -1),
                       tf.float32)
  s = layout.slices()
  frames = tf.tile(coeffs, [len(yaws), 1])
  frames = tf.concat([frames[:, :s["angles"].start], angles,
                      frames[:, s["angles"].stop:s["trans"].start],
                      tf.zeros([len(yaws), layout.n_trans], tf.float32),
                      frames[:, s["trans"].stop:]], axis=-1)
  return light_presets.with_light(frames, layout, gamma)


def render_turntable(renderer: FaceRenderer, coeffs: tf.Tensor,
                     yaws_deg: Sequence[float] = DEFAULT_YAWS_DEG,
                     vertex_colors: Optional[tf.Tensor] = None,
                     gamma: Optional[tf.Tensor] = None,
                     background: float = 1.0) -> Rendering:
  """Renders one face at each yaw (one batch, one rasterizer call).

  Args:
    renderer: the face model and camera.
    coeffs: [N] or [1, N] the face's coefficients (see `turntable_coefficients`).
    yaws_deg: Y yaw angles in degrees.
    vertex_colors: [V, 3] albedo to show instead of the coarse albedo of `coeffs`.
    gamma: [27] lighting (default: the "studio" preset).
    background: value of uncovered pixels.

  Returns:
    A `Rendering` with Y frames: `image` [Y, H, W, 3] (not clipped), `mask` [Y, H, W].
  """
  frames = turntable_coefficients(coeffs, renderer.layout, yaws_deg, gamma)
  if vertex_colors is not None:
    vertex_colors = tf.convert_to_tensor(vertex_colors, tf.float32)
    vertex_colors = tf.tile(vertex_colors[tf.newaxis], [tf.shape(frames)[0], 1, 1])
  return renderer.render(frames, vertex_colors=vertex_colors, background=background)


def side_by_side(images: tf.Tensor) -> tf.Tensor:
  """[Y, H, W, C] frames -> [H, Y·W, C], left to right, clipped to [0, 1]."""
  images = tf.clip_by_value(tf.convert_to_tensor(images, tf.float32), 0.0, 1.0)
  return tf.concat(tf.unstack(images, axis=0), axis=1)
