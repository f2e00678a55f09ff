"""Deep3DFace-style 5-point alignment to a 224x224 crop, and the way back.

Recipe (Deng et al. 2019, ``preprocess_img.py``; paper_spec §4):

1. 5 image points (image-left eye centre, image-right eye centre, nose tip,
   image-left mouth corner, image-right mouth corner), y flipped to point up.
2. A least-squares fit of a scale ``s`` and translation ``t`` mapping the
   template's (X, Y) onto those points: ``p ~ s [X, Y] + t`` (closed form;
   no rotation, so the crop stays axis-aligned). The template is the 5
   points of the face model's mean shape (decimetres, model coordinates).
   ``method="pos"`` instead uses Deep3DFace's own "POS" fit: an 8-parameter
   affine camera ``p ~ P [X, Y, Z] + t`` with ``s = (|P_0| + |P_1|) / 2``.
   POS lets the template's depth absorb differences in face proportions and
   pitch, which moved the eyes of the example photos 11-18 px off the
   template's eye line (with the ICT template); the 2-D fit keeps them
   within ~3 px, so it is the default.
3. Scale the photo by ``k = 102 / s`` (102 px per decimetre ~ focal 1015 /
   camera distance 10 of the renderer) and crop ``224`` around ``t``, the
   image position of the template origin, which lands on the crop centre.

Step 3's resize-then-crop is done here as one ``cv2.warpAffine`` with the
2x3 matrix ``[[k, 0, 112 - k cx], [0, k, 112 - k cy]]`` (one interpolation, no
full-size resized intermediate, exact sub-pixel placement). When shrinking
(k < 1) only the source region under the crop is Gaussian-blurred first with
``sigma = (1/k - 1) / 2`` (scikit-image's anti-aliasing rule), since
``warpAffine`` has no area filter. The inverse matrix lets any aligned result
(render, mask) be pasted back onto the full-resolution photo.

Coordinates are pixel-index coordinates: the centre of pixel (i, j) is
(x=j, y=i), as in OpenCV.
"""

import dataclasses
from typing import Tuple

import cv2
import numpy as np

ALIGNED_SIZE = 224
RESCALE = 102.0

# iBUG-68 indices (0-based) of the 5 alignment points, in detector order.
LEFT_EYE_68 = tuple(range(36, 42))   # image-left eye = subject's right eye
RIGHT_EYE_68 = tuple(range(42, 48))
NOSE_TIP_68 = 30
MOUTH_LEFT_68 = 48
MOUTH_RIGHT_68 = 54


def five_points_from_68(lm68: np.ndarray) -> np.ndarray:
  """Reduces iBUG-68 landmarks to the 5 alignment points.

  Args:
    lm68: [68, D] (D = 2 or 3) in iBUG order.

  Returns:
    [5, D]: mean(36..41), mean(42..47), point 30, point 48, point 54.
  """
  lm68 = np.asarray(lm68, dtype=np.float64)
  if lm68.ndim != 2 or lm68.shape[0] != 68:
    raise ValueError(f"expected [68, D] landmarks, got shape {lm68.shape}")
  return np.stack([
      lm68[list(LEFT_EYE_68)].mean(axis=0),
      lm68[list(RIGHT_EYE_68)].mean(axis=0),
      lm68[NOSE_TIP_68],
      lm68[MOUTH_LEFT_68],
      lm68[MOUTH_RIGHT_68],
  ])


def five_point_template(lm68_3d: np.ndarray) -> np.ndarray:
  """The 3D alignment template from a face model's 68 mean-shape landmarks.

  Args:
    lm68_3d: [68, 3] model-space landmark positions in decimetres (+x to the
      subject's left, i.e. image right; +y up; +z towards the camera), in the
      coordinate frame the renderer uses (mean shape centred).

  Returns:
    [5, 3] template points in detector order.

  Raises:
    ValueError: wrong shape, non-finite values, or a mirrored model (the
      image-left eye must have the smaller x).
  """
  lm68_3d = np.asarray(lm68_3d, dtype=np.float64)
  if lm68_3d.shape != (68, 3):
    raise ValueError(f"lm68_3d must be [68, 3], got {lm68_3d.shape}")
  if not np.all(np.isfinite(lm68_3d)):
    raise ValueError("lm68_3d contains NaN or inf")
  template = five_points_from_68(lm68_3d)
  if template[0, 0] >= template[1, 0]:
    raise ValueError("template eyes are mirrored: iBUG 36-41 must have smaller x than 42-47")
  return template


def fit_scale_translation(points_up: np.ndarray, template: np.ndarray) -> Tuple[float, np.ndarray]:
  """Least-squares ``points_up ~ s * template[:, :2] + t`` (no rotation).

  Args:
    points_up: [N, 2] image points with y pointing up.
    template: [N, 2+] model points (only X, Y are used).

  Returns:
    (s, t): scale (image px per model unit) and [2] translation (y up).
  """
  points_up = np.asarray(points_up, dtype=np.float64)
  template = np.asarray(template, dtype=np.float64)
  n = points_up.shape[0]
  if points_up.shape != (n, 2) or template.ndim != 2 or template.shape[0] != n or n < 2:
    raise ValueError(f"need [N, 2] points and [N, 2+] template with N >= 2, "
                     f"got {points_up.shape} and {template.shape}")
  model = template[:, :2]
  model_c = model - model.mean(axis=0)
  points_c = points_up - points_up.mean(axis=0)
  denom = float(np.sum(model_c ** 2))
  if denom <= 0:
    raise ValueError("degenerate template: all points coincide")
  scale = float(np.sum(points_c * model_c) / denom)
  return scale, points_up.mean(axis=0) - scale * model.mean(axis=0)


def pos_fit(points_up: np.ndarray, template: np.ndarray) -> Tuple[float, np.ndarray]:
  """Deep3DFace's POS: scale and translation of an affine camera fit.

  Args:
    points_up: [N, 2] image points with y pointing up.
    template: [N, 3] model points.

  Returns:
    (s, t): scale (image px per model unit) and [2] translation (y up).
  """
  points_up = np.asarray(points_up, dtype=np.float64)
  template = np.asarray(template, dtype=np.float64)
  n = points_up.shape[0]
  if points_up.shape != (n, 2) or template.shape != (n, 3) or n < 4:
    raise ValueError(f"need [N, 2] points and [N, 3] template with N >= 4, "
                     f"got {points_up.shape} and {template.shape}")
  a = np.zeros((2 * n, 8))
  a[0::2, 0:3] = template
  a[0::2, 3] = 1.0
  a[1::2, 4:7] = template
  a[1::2, 7] = 1.0
  b = points_up.reshape(-1)
  k, *_ = np.linalg.lstsq(a, b, rcond=None)
  scale = (np.linalg.norm(k[0:3]) + np.linalg.norm(k[4:7])) / 2.0
  return float(scale), np.array([k[3], k[7]])


FIT_METHODS = {"scale_translation": fit_scale_translation, "pos": pos_fit}


def invert_affine(matrix: np.ndarray) -> np.ndarray:
  """[2, 3] -> [2, 3] inverse affine."""
  return cv2.invertAffineTransform(np.asarray(matrix, dtype=np.float64))


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
  """Applies a [2, 3] affine to [..., 2] (x, y) points."""
  points = np.asarray(points, dtype=np.float64)
  matrix = np.asarray(matrix, dtype=np.float64)
  return points @ matrix[:, :2].T + matrix[:, 2]


@dataclasses.dataclass(frozen=True)
class AlignTransform:
  """Original photo <-> aligned crop.

  Attributes:
    matrix: [2, 3] affine, original pixel coords -> aligned pixel coords.
    inverse: [2, 3] affine, aligned -> original.
    scale: fitted scale s (original px per template unit).
    translation: [2] fitted translation (original image, y up).
    size: side of the aligned crop.
    source_shape: (height, width) of the original photo.
    method: the fit used ("scale_translation" or "pos").
  """
  matrix: np.ndarray
  inverse: np.ndarray
  scale: float
  translation: np.ndarray
  size: int
  source_shape: Tuple[int, int]
  method: str = "scale_translation"

  @property
  def zoom(self) -> float:
    """k: aligned pixels per original pixel."""
    return float(self.matrix[0, 0])

  def to_aligned(self, points: np.ndarray) -> np.ndarray:
    return transform_points(points, self.matrix)

  def to_original(self, points: np.ndarray) -> np.ndarray:
    return transform_points(points, self.inverse)


@dataclasses.dataclass(frozen=True)
class AlignedFace:
  """An aligned crop.

  Attributes:
    image: [size, size, 3] uint8 RGB.
    valid: [size, size] bool, True where the crop lies inside the photo
      (outside is black padding).
    points5: [5, 2] the detector's 5 points in aligned coordinates.
    transform: the :class:`AlignTransform` used.
  """
  image: np.ndarray
  valid: np.ndarray
  points5: np.ndarray
  transform: AlignTransform


def estimate_transform(points5: np.ndarray, template5: np.ndarray,
                       image_shape: Tuple[int, ...], size: int = ALIGNED_SIZE,
                       rescale: float = RESCALE,
                       method: str = "scale_translation") -> AlignTransform:
  """The alignment transform for one face.

  Args:
    points5: [5, 2] image points (x, y down) in detector order.
    template5: [5, 3] template from :func:`five_point_template`.
    image_shape: shape of the photo, (H, W, ...).
    size: output crop side.
    rescale: aligned pixels per template unit (102 for decimetres).
    method: "scale_translation" (default) or "pos" (Deep3DFace's fit).

  Raises:
    ValueError: malformed or degenerate points, or an unknown method.
  """
  if method not in FIT_METHODS:
    raise ValueError(f"unknown alignment method '{method}'; choose from {sorted(FIT_METHODS)}")
  points5 = np.asarray(points5, dtype=np.float64)
  if points5.shape != (5, 2) or not np.all(np.isfinite(points5)):
    raise ValueError(f"points5 must be a finite [5, 2] array, got shape {points5.shape}")
  height = int(image_shape[0])
  width = int(image_shape[1])
  up = np.stack([points5[:, 0], height - 1 - points5[:, 1]], axis=-1)
  scale, t = FIT_METHODS[method](up, template5)
  if not np.isfinite(scale) or scale <= 1e-6:
    raise ValueError("degenerate 5 points: alignment scale is zero")
  k = rescale / scale
  cx, cy = t[0], height - 1 - t[1]
  half = size / 2.0
  matrix = np.array([[k, 0.0, half - k * cx], [0.0, k, half - k * cy]])
  return AlignTransform(matrix=matrix, inverse=invert_affine(matrix), scale=scale,
                        translation=t, size=int(size), source_shape=(height, width),
                        method=method)


def _valid_mask(transform: AlignTransform) -> np.ndarray:
  """[S, S] bool: aligned pixels whose source lies inside the photo."""
  size = transform.size
  coords = np.arange(size, dtype=np.float64)
  inv = transform.inverse
  sx = inv[0, 0] * coords + inv[0, 2]
  sy = inv[1, 1] * coords + inv[1, 2]
  height, width = transform.source_shape
  vx = (sx >= -0.5) & (sx <= width - 0.5)
  vy = (sy >= -0.5) & (sy <= height - 0.5)
  return vy[:, None] & vx[None, :]


def warp_to_aligned(image: np.ndarray, transform: AlignTransform,
                    interpolation: int = cv2.INTER_CUBIC) -> np.ndarray:
  """Resamples the photo into the aligned crop (anti-aliased when shrinking).

  Args:
    image: [H, W, C] (or [H, W]) array of the photo ``transform`` was made for.
    transform: from :func:`estimate_transform`.
    interpolation: an OpenCV interpolation flag.

  Returns:
    [size, size, C] array of the same dtype; outside the photo is 0.
  """
  if tuple(image.shape[:2]) != tuple(transform.source_shape):
    raise ValueError(f"image shape {image.shape[:2]} does not match the transform's "
                     f"source shape {transform.source_shape}")
  size = transform.size
  k = transform.zoom
  matrix = transform.matrix.copy()
  source = image
  if k < 1.0:
    sigma = (1.0 / k - 1.0) / 2.0
    pad = int(np.ceil(3 * sigma)) + 2
    corners = transform.to_original(np.array([[0, 0], [size - 1, size - 1]], dtype=np.float64))
    height, width = image.shape[:2]
    x0 = int(np.clip(np.floor(corners[0, 0]) - pad, 0, width))
    y0 = int(np.clip(np.floor(corners[0, 1]) - pad, 0, height))
    x1 = int(np.clip(np.ceil(corners[1, 0]) + pad + 1, 0, width))
    y1 = int(np.clip(np.ceil(corners[1, 1]) + pad + 1, 0, height))
    if x1 <= x0 or y1 <= y0:  # Crop entirely outside the photo.
      shape = (size, size) + tuple(image.shape[2:])
      return np.zeros(shape, dtype=image.dtype)
    source = cv2.GaussianBlur(image[y0:y1, x0:x1], (0, 0), sigmaX=sigma, sigmaY=sigma)
    matrix[:, 2] += matrix[:, :2] @ np.array([x0, y0], dtype=np.float64)
  out = cv2.warpAffine(source, matrix, (size, size), flags=interpolation,
                       borderMode=cv2.BORDER_CONSTANT, borderValue=0)
  if image.ndim == 3 and out.ndim == 2:
    out = out[..., None]
  return out


def align_face(image: np.ndarray, points5: np.ndarray, template5: np.ndarray,
               size: int = ALIGNED_SIZE, rescale: float = RESCALE,
               method: str = "scale_translation") -> AlignedFace:
  """Aligns one face of a photo to a ``size`` x ``size`` crop.

  Args:
    image: [H, W, 3] uint8 RGB photo at full resolution.
    points5: [5, 2] detector points in ``image`` coordinates.
    template5: [5, 3] template (see :func:`five_point_template`).
    size, rescale, method: see :func:`estimate_transform`.

  Returns:
    An :class:`AlignedFace`.
  """
  transform = estimate_transform(points5, template5, image.shape, size, rescale, method)
  aligned = warp_to_aligned(image, transform)
  return AlignedFace(image=aligned, valid=_valid_mask(transform),
                     points5=transform.to_aligned(points5), transform=transform)


def warp_to_original(aligned: np.ndarray, transform: AlignTransform,
                     original_shape: Tuple[int, ...]) -> np.ndarray:
  """Maps an aligned-space image (RGB, RGBA or mask) back onto the photo's grid.

  With 4 channels the 4th is alpha and colours are premultiplied while
  resampling so transparent pixels do not bleed into the edge. Pixels outside
  the crop are 0 (alpha 0).

  Args:
    aligned: [S, S, C] or [S, S] array, S = ``transform.size``.
    transform: the transform that produced the crop.
    original_shape: (H, W, ...) of the full-resolution photo.

  Returns:
    [H, W, C] (or [H, W]) array of ``aligned``'s dtype.
  """
  aligned = np.asarray(aligned)
  size = transform.size
  if aligned.shape[:2] != (size, size):
    raise ValueError(f"aligned image must be {size}x{size}, got {aligned.shape[:2]}")
  height, width = int(original_shape[0]), int(original_shape[1])
  out = np.zeros((height, width) + aligned.shape[2:], dtype=aligned.dtype)
  # Only the photo region under the crop is resampled.
  corners = transform.to_original(np.array([[-0.5, -0.5], [size - 0.5, size - 0.5]]))
  x0 = int(np.clip(np.floor(corners[0, 0]), 0, width))
  y0 = int(np.clip(np.floor(corners[0, 1]), 0, height))
  x1 = int(np.clip(np.ceil(corners[1, 0]) + 1, 0, width))
  y1 = int(np.clip(np.ceil(corners[1, 1]) + 1, 0, height))
  if x1 <= x0 or y1 <= y0:
    return out
  matrix = transform.matrix.copy()
  matrix[:, 2] += matrix[:, :2] @ np.array([x0, y0], dtype=np.float64)  # ROI -> aligned.
  premultiply = aligned.ndim == 3 and aligned.shape[-1] == 4
  data = aligned.astype(np.float32)
  if premultiply:
    scale = 255.0 if aligned.dtype == np.uint8 else 1.0
    data = np.concatenate([data[..., :3] * (data[..., 3:] / scale), data[..., 3:]], axis=-1)
  roi = cv2.warpAffine(data, matrix, (x1 - x0, y1 - y0),
                       flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                       borderMode=cv2.BORDER_CONSTANT, borderValue=0)
  if roi.ndim == 2 and aligned.ndim == 3:
    roi = roi[..., None]
  if premultiply:
    alpha = roi[..., 3:]
    safe = np.where(alpha > 1e-6, alpha, 1.0)
    roi = np.concatenate([np.where(alpha > 1e-6, roi[..., :3] * scale / safe, 0.0), alpha], axis=-1)
  if np.issubdtype(aligned.dtype, np.integer):
    info = np.iinfo(aligned.dtype)
    roi = np.clip(np.rint(roi), info.min, info.max)
  elif aligned.dtype == np.bool_:
    roi = roi >= 0.5
  out[y0:y1, x0:x1] = roi.astype(aligned.dtype)
  return out


def paste_onto(photo: np.ndarray, aligned_rgba: np.ndarray,
               transform: AlignTransform) -> np.ndarray:
  """Alpha-composites an aligned RGBA result over the full-resolution photo.

  Args:
    photo: [H, W, 3] uint8 RGB.
    aligned_rgba: [S, S, 4] uint8 (alpha 255 = use the aligned pixel).

  Returns:
    [H, W, 3] uint8 composite.
  """
  if aligned_rgba.ndim != 3 or aligned_rgba.shape[-1] != 4 or aligned_rgba.dtype != np.uint8:
    raise ValueError(f"aligned_rgba must be [S, S, 4] uint8, got {aligned_rgba.shape} "
                     f"{aligned_rgba.dtype}")
  back = warp_to_original(aligned_rgba, transform, photo.shape).astype(np.float32)
  alpha = back[..., 3:] / 255.0
  out = back[..., :3] * alpha + photo.astype(np.float32) * (1.0 - alpha)
  return np.clip(np.rint(out), 0, 255).astype(np.uint8)
