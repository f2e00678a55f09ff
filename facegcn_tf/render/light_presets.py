"""Named spherical-harmonics lights for showing faces (demos, turntables, the results page).

A preset is a white light: an ambient level plus a first-order direction, written as the 27
Deep3DFace SH coefficients of `lighting` ([3 channels × 9], without the 0.8 ambient offset
`lighting.irradiance` adds). In that basis Y1 = -b·ny, Y2 = b·nz and Y3 = -b·nx, so light
from the top (+y), the front (+z, towards the camera) and the right (+x) enter with signs
-, + and -.
"""

from typing import Optional

import tensorflow as tf

from facegcn_tf.morphable.model import CoeffLayout

# name -> (ambient, top, front, right); see `sh_light`.
_PRESETS = {
    # Light from the front and a little above: the mean face of scripts/render_faces.py.
    "front_top": (0.3, 0.15, 0.3, 0.0),
    # Even, nearly frontal light that keeps every yaw of a turntable readable.
    "studio": (0.35, 0.1, 0.35, 0.0),
    # Ambient only (the shading of all-zero coefficients).
    "ambient": (0.0, 0.0, 0.0, 0.0),
    # Light from the camera's right: shows the relief of the shape.
    "side": (0.25, 0.05, 0.15, 0.3),
}


def preset_names() -> tuple:
  """The names `preset` accepts."""
  return tuple(_PRESETS)


def sh_light(ambient: float, top: float = 0.0, front: float = 0.0,
             right: float = 0.0) -> tf.Tensor:
  """[27] float32 SH coefficients of a white light (Deep3DFace layout, R then G then B).

  Args:
    ambient: added to band 0 (on top of `lighting.AMBIENT_OFFSET`).
    top, front, right: strength of the first-order light from +y (up), +z (the camera)
      and +x (image right).
  """
  one_channel = tf.constant([ambient, -top, front, -right, 0, 0, 0, 0, 0], tf.float32)
  return tf.tile(one_channel, [3])


def preset(name: str) -> tf.Tensor:
  """[27] float32 SH coefficients of a named light (see `preset_names`).

  Raises:
    ValueError: unknown name.
  """
  if name not in _PRESETS:
    raise ValueError(f"unknown light preset {name!r}; known: {', '.join(_PRESETS)}")
  return sh_light(*_PRESETS[name])


def with_light(coeffs: tf.Tensor, layout: CoeffLayout,
               gamma: Optional[tf.Tensor] = None) -> tf.Tensor:
  """Coefficients with their lighting replaced.

  Args:
    coeffs: [B, N] coefficients (`layout`).
    layout: their layout.
    gamma: [27] (same light for every face) or [B, 27]; default: the "studio" preset.

  Returns:
    [B, N] float32, every part but "gamma" unchanged.
  """
  coeffs = tf.convert_to_tensor(coeffs, tf.float32)
  gamma = preset("studio") if gamma is None else tf.convert_to_tensor(gamma, tf.float32)
  gamma = tf.broadcast_to(gamma, [tf.shape(coeffs)[0], layout.n_gamma])
  s = layout.slices()["gamma"]
  return tf.concat([coeffs[:, :s.start], gamma, coeffs[:, s.stop:]], axis=-1)
