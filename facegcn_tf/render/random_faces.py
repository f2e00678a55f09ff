"""Random but plausible 3DMM coefficients, for demos, synthetic data and tests."""

import numpy as np

from facegcn_tf.morphable.model import CoeffLayout


def random_coefficients(layout: CoeffLayout,
                        batch_size: int,
                        seed: int = 0,
                        identity_scale: float = 1.0,
                        expression_modes: int = 3,
                        texture_scale: float = 1.0,
                        max_yaw_deg: float = 45.0,
                        max_pitch_deg: float = 15.0,
                        max_roll_deg: float = 10.0,
                        light_scale: float = 0.2,
                        bounded_expressions: bool = True) -> np.ndarray:
  """Samples [B, layout.total] coefficients (Deep3DFace order).

  Identity and texture ~ N(0, scale²); `expression_modes` random expression modes per face
  with weights in U[0, 0.8] when `bounded_expressions` (ICT blendshapes live in [0, 1]) or
  N(0, 0.5²) otherwise; Euler angles uniform within the given limits; SH lighting: a random
  ambient level plus a random first-order direction, the same hue for all channels with a
  little colour; no translation.
  """
  rng = np.random.RandomState(seed)
  s = layout.slices()
  coeffs = np.zeros((batch_size, layout.total), np.float32)
  coeffs[:, s["id"]] = identity_scale * rng.randn(batch_size, layout.n_id)
  coeffs[:, s["tex"]] = texture_scale * rng.randn(batch_size, layout.n_tex)
  if layout.n_exp:
    for b in range(batch_size):
      modes = rng.choice(layout.n_exp, size=min(expression_modes, layout.n_exp), replace=False)
      coeffs[b, s["exp"].start + modes] = (rng.uniform(0.0, 0.8, len(modes)) if bounded_expressions
                                           else 0.5 * rng.randn(len(modes)))
  limits = np.radians([max_pitch_deg, max_yaw_deg, max_roll_deg])
  coeffs[:, s["angles"]] = rng.uniform(-1, 1, (batch_size, 3)) * limits
  gamma = np.zeros((batch_size, 3, 9), np.float32)
  base = rng.uniform(0.0, 0.3, (batch_size, 1))
  direction = rng.randn(batch_size, 3) * light_scale
  tint = 1.0 + 0.1 * rng.randn(batch_size, 3)
  gamma[:, :, 0] = base * tint
  gamma[:, :, 1:4] = direction[:, None, :] * tint[:, :, None]
  coeffs[:, s["gamma"]] = gamma.reshape(batch_size, 27)
  return coeffs
