"""The project's stand-in albedo model for meshes that ship none (ICT).

BFM 2009 has a texture PCA learnt from 200 scans (``meantex``, ``texBase``);
no openly licensed face albedo model exists (shared/spec/assets.md, section
3), so models without one get this hand-built stand-in with the same form,
``albedo = mean_albedo + sum_k delta_k * albedo_basis[k]`` with
``delta ~ N(0, 1)``:

* **Mean albedo**: one skin colour, with soft darker/redder lips (inside
  the outer-lip landmark polygon 48-59) and darker eyebrows (around the
  landmark polylines 17-21, 22-26), projected frontally. In [0, 1].
* **Basis**: the smoothest eigenfunctions ``phi_k`` of the mesh's cotangent
  Laplacian (``laplacian.low_frequency_basis``), each times one colour
  direction: about half the modes along the skin colour itself (brightness),
  a quarter along a red-vs-green/blue axis (redness) and a quarter along a
  yellow-vs-blue axis. ``phi_0`` is constant, so the first modes change the
  global skin tone; the standard deviations (``GLOBAL_STD``) are a few
  percent of albedo. Higher ``phi_k`` add smooth regional variation whose
  variance (``LOCAL_STD``) is spread over the modes with weights
  ``1 / (1 + k / 4)^2``, so low frequencies dominate. Modes are sorted by
  decreasing RMS magnitude, like a PCA.

It is a prior for plausible, smooth skin variation, not a statistical model
of real faces; the GCN stages refine albedo beyond it anyway. Build it on
the coarse mesh and carry it to a subdivided one with
``subdivision.interpolate_midpoints`` so both resolutions agree.
"""

from typing import Tuple

import numpy as np

from facegcn_tf.morphable import laplacian as laplacian_lib
from facegcn_tf.morphable import regions

SKIN_RGB = (0.74, 0.55, 0.46)
LIP_RGB = (0.64, 0.36, 0.36)
BROW_RGB = (0.38, 0.28, 0.23)
# Colour directions of the basis (per unit of standard deviation).
DIRECTIONS = {
    "brightness": np.asarray(SKIN_RGB) / np.mean(SKIN_RGB),
    "redness": np.array([1.0, -0.5, -0.5]),
    "yellowness": np.array([0.5, 0.5, -1.0]),
}
GLOBAL_STD = {"brightness": 0.08, "redness": 0.03, "yellowness": 0.025}
LOCAL_STD = {"brightness": 0.035, "redness": 0.02, "yellowness": 0.01}


def mean_albedo(vertices: np.ndarray, landmarks68: np.ndarray) -> np.ndarray:
  """Skin colour with soft lips and eyebrows, ``[V, 3]`` float32 in [0, 1]."""
  v = np.asarray(vertices, dtype=np.float64)
  lm = v[np.asarray(landmarks68)]
  scale = regions.landmark_scale(lm)
  xy = v[:, :2]
  lips = regions.signed_distance_to_polygon(xy, lm[list(regions.OUTER_LIPS), :2])
  lip_weight = 1.0 / (1.0 + np.exp(np.clip(lips / (0.008 * scale), -50, 50)))
  brow_distance = np.minimum(
      regions.distance_to_segments(xy, lm[list(regions.RIGHT_BROW[:-1]), :2],
                                   lm[list(regions.RIGHT_BROW[1:]), :2]),
      regions.distance_to_segments(xy, lm[list(regions.LEFT_BROW[:-1]), :2],
                                   lm[list(regions.LEFT_BROW[1:]), :2]))
  brow_weight = 0.8 * np.exp(-(brow_distance / (0.04 * scale)) ** 2)
  colour = np.tile(np.asarray(SKIN_RGB), (len(v), 1))
  colour += lip_weight[:, None] * (np.asarray(LIP_RGB) - colour)
  colour += brow_weight[:, None] * (np.asarray(BROW_RGB) - colour)
  return np.clip(colour, 0.0, 1.0).astype(np.float32)


def mode_allocation(n_tex: int) -> dict:
  """Number of eigenfunctions per colour direction for ``n_tex`` modes."""
  if n_tex < 0:
    raise ValueError(f"n_tex must be >= 0, got {n_tex}")
  bright = (n_tex + 1) // 2
  red = (n_tex - bright + 1) // 2
  return {"brightness": bright, "redness": red, "yellowness": n_tex - bright - red}


def albedo_basis(vertices: np.ndarray, triangles: np.ndarray, n_tex: int = 80) -> np.ndarray:
  """Smooth albedo modes, ``[n_tex, V, 3]`` float32 (see the module docstring).

  Args:
    vertices: ``[V, 3]`` mean shape (connected mesh).
    triangles: ``[F, 3]`` int.
    n_tex: number of modes.
  """
  counts = mode_allocation(n_tex)
  if n_tex == 0:
    return np.zeros((0, len(vertices), 3), np.float32)
  _, phi = laplacian_lib.low_frequency_basis(vertices, triangles, max(counts.values()))
  modes = []
  for name, count in counts.items():
    if count == 0:
      continue
    k = np.arange(1, count)
    weights = 1.0 / (1.0 + k / 4.0) ** 2
    local = LOCAL_STD[name] * np.sqrt(weights / weights.sum()) if count > 1 else np.zeros(0)
    std = np.concatenate([[GLOBAL_STD[name]], local])
    for i in range(count):
      modes.append(std[i] * phi[:, i, None] * DIRECTIONS[name][None, :])
  modes = np.stack(modes)
  rms = np.sqrt(np.mean(modes ** 2, axis=(1, 2)))
  return modes[np.argsort(-rms, kind="stable")].astype(np.float32)


def stand_in_albedo_model(vertices: np.ndarray, triangles: np.ndarray, landmarks68: np.ndarray,
                          n_tex: int = 80) -> Tuple[np.ndarray, np.ndarray]:
  """``(mean_albedo [V, 3], albedo_basis [n_tex, V, 3])`` for a neutral face mesh."""
  return mean_albedo(vertices, landmarks68), albedo_basis(vertices, triangles, n_tex)


# ITU-R BT.601 luma weights and chroma scales (RGB in [0, 1]).
LUMA = (0.299, 0.587, 0.114)
_CB_SCALE, _CR_SCALE = 0.564, 0.713
# Skin hues: red-dominant (Cr >= 0) with at most this much blue per unit of red (Cb <= k Cr).
MAX_BLUE_PER_RED = 0.25


def to_skin_hues(albedo):
  """Projects albedo colours onto skin hues: no blue, green or purple.

  In the BT.601 chroma plane, skin (and lips, brows) lies where Cr >= 0 and Cb is at most
  `MAX_BLUE_PER_RED` x Cr; colours outside are moved to the nearest edge of that wedge at
  the same luma (green and blue lose their Cr < 0 part, purple its excess blue). Skin
  colours are unchanged, so a real albedo model passes through as is.

  Args:
    albedo: [..., 3] RGB in [0, 1] (tf.Tensor or numpy).

  Returns:
    [..., 3] float32 tf.Tensor, clipped to [0, 1].
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top  (numpy callers stay light)
  albedo = tf.convert_to_tensor(albedo, tf.float32)
  r, g, b = tf.unstack(albedo, axis=-1)
  y = LUMA[0] * r + LUMA[1] * g + LUMA[2] * b
  cb = _CB_SCALE * (b - y)
  cr = tf.maximum(_CR_SCALE * (r - y), 0.0)
  cb = tf.minimum(cb, MAX_BLUE_PER_RED * cr)
  r = y + cr / _CR_SCALE
  b = y + cb / _CB_SCALE
  g = (y - LUMA[0] * r - LUMA[2] * b) / LUMA[1]
  return tf.clip_by_value(tf.stack([r, g, b], axis=-1), 0.0, 1.0)


def luma(rgb) -> np.ndarray:
  """[..., 3] RGB (numpy) -> [...] float32 BT.601 luma."""
  return np.asarray(rgb, np.float32) @ np.asarray(LUMA, np.float32)


def to_gray(albedo):
  """[..., 3] -> [..., 3] float32 tf.Tensor: BT.601 luma in all three channels."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  albedo = tf.convert_to_tensor(albedo, tf.float32)
  y = tf.reduce_sum(albedo * tf.constant(LUMA, tf.float32), axis=-1, keepdims=True)
  return tf.tile(y, [1] * (len(albedo.shape) - 1) + [3])
