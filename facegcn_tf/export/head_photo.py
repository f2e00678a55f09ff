"""The photo's own eyes and mouth interior, baked into the head's eyeballs, teeth and mouth.

The painted eyeballs and teeth (``head_mesh``) are generic; the photo shows the real ones
through the lid and lip openings. ``photo_texels`` finds, for every texel of the head's
eyeballs and mouth interior (teeth, gums and tongue, mouth socket), where the fitted camera
saw it in the photo and whether the photo shows it there, and gives the photo's colour and
a weight in [0, 1]; ``head_mesh.build_head`` blends ``weight * photo + (1 - weight) *
painted``.

* **Camera**: the fitted pose and pinhole camera, recovered as the 3 x 4 projection matrix
  that maps the face's model-space vertices to their aligned-crop pixels
  (``fit_projection``: a linear least-squares fit, exact for a pinhole camera), so the
  eyeballs and teeth, which the face model does not have, project with the face's camera.
* **Seen**: a texel counts where it faces the camera, projects inside the photo's eye
  contour (landmarks 36-41, 42-47) or inner-lip contour (60-67), feathered by
  ``FEATHER`` aligned pixels at the contour (``opening_masks``), and, in the mouth, is the
  nearest mouth texel along its ray (a texel depth buffer: teeth hide the tongue behind
  them). Outside the openings the painted sclera, iris, teeth and gums stay, so the lids
  and lips of the photo are never painted onto the eyeballs or teeth.
* **Colour**: the full-resolution photo at the texel's position (bilinear), times
  ``albedo_gain`` (the face's albedo over the photo's lit colour, median over the seen
  face): the photo's light is divided out as one factor, not per texel, because the fitted
  light is a light on the face, not inside the eye opening or the mouth.
"""

import dataclasses

import cv2
import numpy as np

from facegcn_tf.data.alignment import AlignTransform
from facegcn_tf.export import detail_texture

FEATHER = 1.0  # aligned pixels: the openings' soft edge (half-width of the ramp)
_SUPERSAMPLE = 4  # opening masks are drawn at this multiple of the aligned size
_EYES = ((36, 42), (42, 48))
_INNER_MOUTH = (60, 68)
_DEPTH_TOLERANCE = 0.02  # decimetres (2 mm): a mouth texel this close to the nearest is seen


@dataclasses.dataclass(frozen=True)
class PhotoView:
  """What the head needs to take colours from the photo.

  Attributes:
    photo: [H, W, 3] uint8 the full-resolution photo.
    transform: its alignment (aligned crop <-> photo).
    projection: [3, 4] model space (decimetres, the posed head) -> homogeneous aligned-crop
      pixels (``fit_projection``).
    eye_mask, mouth_mask: [S', S'] float32 in [0, 1], the photo's eye and inner-mouth
      openings drawn at ``_SUPERSAMPLE`` times the aligned size (``opening_masks``).
    albedo_gain: photo colour -> albedo factor.
  """
  photo: np.ndarray
  transform: AlignTransform
  projection: np.ndarray
  eye_mask: np.ndarray
  mouth_mask: np.ndarray
  albedo_gain: float = 1.0


def fit_projection(vertices: np.ndarray, pixels: np.ndarray, max_points: int = 3000) -> np.ndarray:
  """[3, 4] projection matrix P with ``pixels ~ P [vertices; 1]`` (direct linear transform).

  Args:
    vertices: [N, 3] model-space positions; pixels: [N, 2] where the camera saw them.
    max_points: evenly spaced subset used for the fit.

  Raises:
    ValueError: fewer than 6 points or a fit that misses its points by over a pixel (not a
      pinhole projection of these vertices).
  """
  vertices = np.asarray(vertices, np.float64)
  pixels = np.asarray(pixels, np.float64)
  if len(vertices) < 6 or vertices.shape != (len(pixels), 3) or pixels.shape[1:] != (2,):
    raise ValueError(f"need [N >= 6, 3] vertices and [N, 2] pixels, got {vertices.shape} and "
                     f"{pixels.shape}")
  pick = np.linspace(0, len(vertices) - 1, min(max_points, len(vertices))).astype(int)
  x, p = vertices[pick], pixels[pick]
  # Normalize both sides (Hartley) for a well-conditioned system.
  xm, xs = x.mean(0), np.sqrt(3) / max(np.linalg.norm(x - x.mean(0), axis=1).mean(), 1e-9)
  pm, ps = p.mean(0), np.sqrt(2) / max(np.linalg.norm(p - p.mean(0), axis=1).mean(), 1e-9)
  xn = np.concatenate([(x - xm) * xs, np.ones((len(x), 1))], 1)
  pn = (p - pm) * ps
  zeros = np.zeros_like(xn)
  rows = np.concatenate([np.concatenate([xn, zeros, -pn[:, :1] * xn], 1),
                         np.concatenate([zeros, xn, -pn[:, 1:] * xn], 1)])
  normalized = np.linalg.svd(rows, full_matrices=False)[2][-1].reshape(3, 4)
  t_pix = np.array([[ps, 0, -ps * pm[0]], [0, ps, -ps * pm[1]], [0, 0, 1]])
  t_x = np.diag([xs, xs, xs, 1.0])
  t_x[:3, 3] = -xs * xm
  projection = np.linalg.inv(t_pix) @ normalized @ t_x
  projection /= np.linalg.norm(projection[2, :3])
  if np.linalg.det(projection[:, :3]) * (projection[2] @ np.append(xm, 1)) < 0:
    projection = -projection  # points in front of the camera have positive depth
  error = np.abs(project(projection, vertices)[0] - pixels).max()
  if not error < 1.0:
    raise ValueError(f"the vertices are not a pinhole projection of the pixels (error {error:.2f} px)")
  return projection


def project(projection: np.ndarray, points: np.ndarray):
  """[N, 3] -> ([N, 2] pixels, [N] depth along the optical axis)."""
  homogeneous = np.asarray(points, np.float64) @ projection[:, :3].T + projection[:, 3]
  depth = homogeneous[:, 2]
  return homogeneous[:, :2] / np.where(np.abs(depth) < 1e-12, 1e-12, depth)[:, None], depth


def camera_centre(projection: np.ndarray) -> np.ndarray:
  """[3] the camera's position in model space (P's null space)."""
  return -np.linalg.solve(projection[:, :3], projection[:, 3])


def opening_masks(landmarks: np.ndarray, size: int, feather: float = FEATHER):
  """Soft masks of the photo's eye openings and inner mouth.

  Args:
    landmarks: [68, 2] landmarks in aligned-crop pixels.
    size: the aligned crop's side.
    feather: half-width of the soft edge, aligned pixels (0.5 at the contour).

  Returns:
    (eye_mask, mouth_mask): [size * 4, size * 4] float32 in [0, 1].
  """
  s = _SUPERSAMPLE
  landmarks = np.asarray(landmarks, np.float64)

  def soft(polygons):
    hard = np.zeros((size * s, size * s), np.uint8)
    for points in polygons:
      cv2.fillPoly(hard, [np.round((points + 0.5) * s - 0.5).astype(np.int32)], 1)
    inside = cv2.distanceTransform(hard, cv2.DIST_L2, 5)
    outside = cv2.distanceTransform(1 - hard, cv2.DIST_L2, 5)
    signed = (inside - outside) / s  # aligned pixels, > 0 inside
    return np.clip(0.5 + signed / (2 * max(feather, 1e-3)), 0.0, 1.0).astype(np.float32)

  return (soft([landmarks[a:b] for a, b in _EYES]),
          soft([landmarks[_INNER_MOUTH[0]:_INNER_MOUTH[1]]]))


def _as_rows(points: np.ndarray, width: int = 1024) -> np.ndarray:
  """[N, 2] -> [ceil(N / width), width, 2] float32 (zero-padded): OpenCV's remap takes
  images under 32,767 rows."""
  rows = -(-len(points) // width)
  out = np.zeros((rows * width, 2), np.float32)
  out[:len(points)] = points
  return out.reshape(rows, width, 2)


def _sample_mask(mask: np.ndarray, xy: np.ndarray) -> np.ndarray:
  grid = _as_rows((xy + 0.5) * _SUPERSAMPLE - 0.5)
  return cv2.remap(mask, grid[..., 0], grid[..., 1], cv2.INTER_LINEAR,
                   borderMode=cv2.BORDER_CONSTANT, borderValue=0.0).reshape(-1)[:len(xy)]


def _nearest_along_rays(xy: np.ndarray, depth: np.ndarray, candidates: np.ndarray) -> np.ndarray:
  """[T] bool: each candidate texel is within ``_DEPTH_TOLERANCE`` of the nearest candidate
  texel projecting to the same (supersampled) pixel."""
  cells = np.round((xy + 0.5) * _SUPERSAMPLE / 2).astype(np.int64)  # 2 x the aligned size
  ok = candidates & np.all(cells >= 0, axis=1)
  side = int(cells[ok].max()) + 1 if ok.any() else 1
  key = cells[:, 1] * side + cells[:, 0]
  nearest = np.full(side * side, np.inf)
  np.minimum.at(nearest, key[ok], depth[ok])
  out = np.zeros(len(xy), bool)
  out[ok] = depth[ok] <= nearest[key[ok]] + _DEPTH_TOLERANCE
  return out


def photo_texels(view: PhotoView, positions: np.ndarray, normals: np.ndarray,
                 eye: np.ndarray, mouth: np.ndarray):
  """The photo's colour and its weight at head texels (see the module docstring).

  Args:
    view: the photo and camera.
    positions: [T, 3] posed model-space positions of the texels; normals: [T, 3] their
      outward normals.
    eye: [T] bool eyeball texels; mouth: [T] bool mouth-interior texels.

  Returns:
    (colors [T, 3] float32 albedo in [0, 1], weights [T] float32 in [0, 1]; 0 where the
    photo does not show the texel).
  """
  xy, depth = project(view.projection, positions)
  toward = camera_centre(view.projection)[None] - positions
  toward /= np.maximum(np.linalg.norm(toward, axis=1, keepdims=True), 1e-9)
  facing = np.sum(toward * normals, axis=1) / np.maximum(np.linalg.norm(normals, axis=1), 1e-9)
  facing = np.clip((facing - 0.05) / 0.2, 0.0, 1.0)
  weights = np.zeros(len(positions), np.float32)
  weights[eye] = (facing * _sample_mask(view.eye_mask, xy))[eye]
  seen_mouth = _nearest_along_rays(xy, depth, mouth & (facing > 0))
  weights[seen_mouth] = (facing * _sample_mask(view.mouth_mask, xy))[seen_mouth]
  colors = np.zeros((len(positions), 3), np.float32)
  used = weights > 0
  if used.any():
    grid = _as_rows(xy[used])
    gain = np.full(grid.shape[:2] + (3,), 1.0 / view.albedo_gain, np.float32)
    colors[used] = detail_texture.detail_albedo(view.photo, view.transform, grid,
                                                gain).reshape(-1, 3)[:int(used.sum())]
  return colors, weights


__all__ = ["FEATHER", "PhotoView", "camera_centre", "fit_projection", "opening_masks",
           "photo_texels", "project"]
