"""Random 3DMM faces with known coefficients, rendered over backgrounds.

The one home of synthetic faces, used by the fitter's synthetic evaluation,
the synthetic training records, demos, benchmarks and tests:

* `random_coefficients`: identity and texture ~ N(0, std²), a few active
  expressions, a random pose within `FacePrior`'s ranges and random SH
  lighting.
* `render_faces`: renders coefficients and composites the faces over
  backgrounds; the landmarks are the projected landmark vertices plus
  Gaussian pixel noise and the face mask is the render's coverage, so the
  truth is exact.
* `background_crops`: random crops of photos to composite over.
"""

import dataclasses
from typing import Optional, Sequence, Union

import numpy as np
import tensorflow as tf

from facegcn_tf.morphable.model import CoeffLayout
from facegcn_tf.render.renderer import FaceRenderer


@dataclasses.dataclass(frozen=True)
class FacePrior:
  """Ranges of the random faces.

  Attributes:
    max_yaw, max_pitch, max_roll: uniform pose ranges, degrees (+-).
    max_shift: uniform x/y translation range, decimetres (+-).
    active_expressions: number of expression modes switched on per face.
    max_expression: their weights ~ U(0.2, max_expression) for bounded
      (blendshape) models; N(0, 1) modes are used otherwise.
    identity_std, texture_std: std of the identity and texture coefficients
      (0: the mean shape or albedo).
    ambient: range of the SH DC term offset (added to Deep3DFace's 0.8).
    directional: std of the first-order SH terms (shared by the channels).
    second_order: std of the second-order SH terms.
    tint: std of the per-channel deviation of the DC term.
  """
  max_yaw: float = 45.0
  max_pitch: float = 15.0
  max_roll: float = 10.0
  max_shift: float = 0.05
  active_expressions: int = 3
  max_expression: float = 0.7
  identity_std: float = 1.0
  texture_std: float = 1.0
  ambient: float = 0.15
  directional: float = 0.2
  second_order: float = 0.05
  tint: float = 0.02


@dataclasses.dataclass
class SyntheticFaces:
  """A batch of rendered faces and their truth.

  images: [B, S, S, 3] float32 RGB 0..255; landmarks68: [B, 68, 2] noisy landmarks;
  face_mask: [B, S, S] float32 {0, 1}; coeffs: [B, N] float32 true coefficients;
  true_landmarks68: [B, 68, 2] noise-free landmarks.
  """
  images: np.ndarray
  landmarks68: np.ndarray
  face_mask: np.ndarray
  coeffs: np.ndarray
  true_landmarks68: np.ndarray


def random_coefficients(layout: CoeffLayout, batch: int,
                        rng: Union[int, np.random.Generator] = 0,
                        prior: FacePrior = FacePrior(), bounded_expressions: bool = True,
                        yaw: Optional[Sequence[float]] = None) -> np.ndarray:
  """[B, layout.total] float32 random coefficients (Deep3DFace order; see `FacePrior`).

  Args:
    layout: the model's coefficient layout.
    batch: number of faces B.
    rng: a generator, or a seed for one.
    prior: ranges of the faces.
    bounded_expressions: expression weights in U(0.2, prior.max_expression)
      (blendshapes, which live in [0, 1]) rather than N(0, 1).
    yaw: [B] degrees, overrides the random yaw.
  """
  rng = np.random.default_rng(rng)
  coeffs = np.zeros([batch, layout.total], np.float32)
  s = layout.slices()
  coeffs[:, s["id"]] = prior.identity_std * rng.standard_normal([batch, layout.n_id])
  coeffs[:, s["tex"]] = prior.texture_std * rng.standard_normal([batch, layout.n_tex])
  for b in range(batch):
    active = rng.choice(layout.n_exp, size=min(prior.active_expressions, layout.n_exp),
                        replace=False)
    exp = np.zeros(layout.n_exp)
    if bounded_expressions:
      exp[active] = rng.uniform(0.2, prior.max_expression, size=len(active))
    else:
      exp[active] = rng.standard_normal(len(active))
    coeffs[b, s["exp"]] = exp
  degrees = np.stack([rng.uniform(-prior.max_pitch, prior.max_pitch, batch),
                      rng.uniform(-prior.max_yaw, prior.max_yaw, batch) if yaw is None
                      else np.asarray(yaw, np.float64),
                      rng.uniform(-prior.max_roll, prior.max_roll, batch)], axis=1)
  coeffs[:, s["angles"]] = np.deg2rad(degrees)
  coeffs[:, s["trans"]] = np.concatenate(
      [rng.uniform(-prior.max_shift, prior.max_shift, [batch, 2]), np.zeros([batch, 1])], axis=1)
  gamma = np.zeros([batch, 3, 9])
  shared = np.zeros([batch, 9])
  shared[:, 0] = rng.uniform(-prior.ambient, prior.ambient, batch)
  shared[:, 1:4] = rng.normal(0.0, prior.directional, [batch, 3])
  shared[:, 4:] = rng.normal(0.0, prior.second_order, [batch, 5])
  gamma[:] = shared[:, np.newaxis, :]
  gamma[:, :, 0] += rng.normal(0.0, prior.tint, [batch, 3])
  coeffs[:, s["gamma"]] = gamma.reshape(batch, 27)
  return coeffs


def background_crops(photos: Sequence[np.ndarray], batch: int, size: int,
                     rng: np.random.Generator) -> np.ndarray:
  """[B, size, size, 3] float32 random square crops (resized) of RGB uint8 photos."""
  if not photos:
    raise ValueError("need at least one background photo")
  out = np.zeros([batch, size, size, 3], np.float32)
  for b in range(batch):
    photo = np.asarray(photos[rng.integers(len(photos))])
    if photo.ndim != 3 or photo.shape[2] != 3:
      raise ValueError(f"background photos must be [H, W, 3], got {photo.shape}")
    side = int(rng.integers(min(photo.shape[:2]) // 2, min(photo.shape[:2]) + 1))
    y = int(rng.integers(0, photo.shape[0] - side + 1))
    x = int(rng.integers(0, photo.shape[1] - side + 1))
    crop = tf.image.resize(photo[y:y + side, x:x + side].astype(np.float32), [size, size],
                           method="area")
    out[b] = np.clip(crop.numpy(), 0.0, 255.0)
  return out


def render_faces(renderer: FaceRenderer, coeffs: np.ndarray, backgrounds: np.ndarray,
                 rng: np.random.Generator, landmark_noise: float = 1.0,
                 vertex_colors: Optional[np.ndarray] = None) -> SyntheticFaces:
  """Renders `coeffs` [B, N] over `backgrounds` (0..255).

  Args:
    renderer: renders the faces at its image size S.
    coeffs: [B, N] coefficients.
    backgrounds: [B, S, S, 3], or anything that broadcasts to it (e.g. a
      flat colour per face, [B, 1, 1, 3]).
    rng: draws the landmark noise, N(0, landmark_noise²) pixels per coordinate.
    landmark_noise: its std (0: exact landmarks).
    vertex_colors: [B, V, 3] albedo in [0, 1] instead of the coefficients' texture.
  """
  coeffs = np.asarray(coeffs, np.float32)
  size = renderer.image_size
  shape = (coeffs.shape[0], size, size, 3)
  backgrounds = np.asarray(backgrounds, np.float32)
  try:
    backgrounds = np.broadcast_to(backgrounds, shape)
  except ValueError:
    raise ValueError(f"backgrounds must be [{coeffs.shape[0]}, {size}, {size}, 3], "
                     f"got {backgrounds.shape}") from None
  colors = None if vertex_colors is None else tf.constant(vertex_colors, tf.float32)
  out = renderer.render(tf.constant(coeffs), vertex_colors=colors)
  mask = out.mask.numpy()
  face = np.clip(out.image.numpy() * 255.0, 0.0, 255.0)
  images = face * mask[..., None] + backgrounds * (1.0 - mask[..., None])
  true_landmarks = renderer.landmarks(out.geometry).numpy()
  noisy = true_landmarks + rng.normal(0.0, landmark_noise, true_landmarks.shape)
  return SyntheticFaces(images=images.astype(np.float32), landmarks68=noisy.astype(np.float32),
                        face_mask=mask.astype(np.float32), coeffs=coeffs,
                        true_landmarks68=true_landmarks.astype(np.float32))
