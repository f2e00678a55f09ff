"""Deep3DFace's spherical-harmonics (9-band) Lambertian lighting.

Colour of a vertex with albedo a (RGB in [0, 1]) and unit normal n, per channel c:

    colour_c = a_c · Σ_k Y_k(n) · γ_{c,k},   γ_{c,0} += 0.8 (Deep3DFace's ambient offset)

with the basis (paper_spec §2.4; a0 = π, a1 = 2π/√3, a2 = 2π/√8; c0 = 1/√(4π),
c1 = √3/√(4π), c2 = 3√5/√(12π)):

    Y0 = a0 c0              Y1 = -a1 c1 ny          Y2 = a1 c1 nz
    Y3 = -a1 c1 nx          Y4 = a2 c2 nx ny        Y5 = -a2 c2 ny nz
    Y6 = a2 c2 (0.5/√3)(3nz² - 1)   Y7 = -a2 c2 nx nz   Y8 = a2 c2 · 0.5 (nx² - ny²)

The 27 lighting coefficients are laid out [3 channels × 9] (R's nine, then G's, then B's).

Written as polynomials in the normal rather than with tensorflow-graphics'
`evaluate_spherical_harmonics`, which takes spherical angles: converting normals to (θ, φ)
needs atan2/acos with undefined gradients at the poles, and the polynomial form is exact
(the tests check it against tensorflow-graphics' SH up to the band factors and signs).
"""

import math

import tensorflow as tf

AMBIENT_OFFSET = 0.8
_A = (math.pi, 2.0 * math.pi / math.sqrt(3.0), 2.0 * math.pi / math.sqrt(8.0))
_C = (1.0 / math.sqrt(4.0 * math.pi), math.sqrt(3.0) / math.sqrt(4.0 * math.pi),
      3.0 * math.sqrt(5.0) / math.sqrt(12.0 * math.pi))


def sh_basis(normals: tf.Tensor) -> tf.Tensor:
  """[..., 3] unit normals -> [..., 9] Deep3DFace SH basis values (band factors included)."""
  nx, ny, nz = tf.unstack(normals, axis=-1)
  b0, b1, b2 = _A[0] * _C[0], _A[1] * _C[1], _A[2] * _C[2]
  return tf.stack([
      tf.fill(tf.shape(nx), tf.cast(b0, normals.dtype)),
      -b1 * ny, b1 * nz, -b1 * nx,
      b2 * nx * ny, -b2 * ny * nz, b2 * 0.5 / math.sqrt(3.0) * (3.0 * nz * nz - 1.0),
      -b2 * nx * nz, b2 * 0.5 * (nx * nx - ny * ny),
  ], axis=-1)


def irradiance(normals: tf.Tensor, gamma: tf.Tensor) -> tf.Tensor:
  """Per-channel shading factor (what multiplies the albedo).

  Args:
    normals: [B, V, 3] unit normals (in camera-aligned world axes).
    gamma: [B, 27] lighting coefficients (Deep3DFace layout), WITHOUT the 0.8 offset.

  Returns:
    [B, V, 3].
  """
  g = tf.reshape(tf.cast(gamma, normals.dtype), [-1, 3, 9])
  g = g + tf.constant([AMBIENT_OFFSET] + [0.0] * 8, normals.dtype)
  return tf.einsum("bvk,bck->bvc", sh_basis(normals), g)


def shade(albedo: tf.Tensor, normals: tf.Tensor, gamma: tf.Tensor) -> tf.Tensor:
  """Lit colour `albedo · irradiance` ([B, V, 3]; not clipped, so losses keep gradients)."""
  return albedo * irradiance(normals, gamma)
