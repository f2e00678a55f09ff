"""Images for people: renders pasted back on the photo, a comparison strip.

* :func:`paste_back` puts an aligned 224x224 RGBA render onto the ORIGINAL full-resolution
  photo with the inverse of the alignment (``data.alignment.paste_onto``: one
  premultiplied-alpha ``cv2.warpAffine``) after feathering the render's alpha
  (:func:`feather_alpha`), so the face blends into the photo instead of ending in a
  jagged, aliased edge. Only the photo region under the crop is composited (a 12-MP photo
  costs what its face region costs).
* :func:`paste_faces` does it for every face of a photo at once (``--all_faces``).
* :func:`comparison_strip` lays equal-sized panels side by side (photo | coarse | fine |
  shape by default) under a labelled banner.

Pure image operations: the renders themselves come from the pipeline
(``pipeline.assemble``), the gray shape shading from ``render.shape_shading``.
"""

import collections
import dataclasses
from typing import Optional, Sequence

import cv2
import numpy as np

from facegcn_tf.data.alignment import AlignTransform
from facegcn_tf.data.alignment import paste_onto

DEFAULT_FEATHER = 3.0
DEFAULT_LABELS = ("input", "coarse", "fine", "shape")

AlignedRenders = collections.namedtuple("AlignedRenders",
                                        ["crop", "coarse", "fine", "shape", "mask"])
AlignedRenders.__doc__ = """The aligned (S x S) images of one face.

crop: [S, S, 3] uint8 the aligned photo.
coarse: [S, S, 3] float render of the lit coarse (3DMM) albedo, on black.
fine: [S, S, 3] float render of the lit fine (GCN) albedo, on black.
shape: [S, S, 3] float gray shaded geometry, on black.
mask: [S, S] float32 in {0, 1}, the pixels the reconstruction replaces: render coverage
  minus the estimated occluders.
"""


def _as_uint8(image: np.ndarray, name: str) -> np.ndarray:
  """uint8 as is; floats in [0, 1] clipped and rounded."""
  image = np.asarray(image)
  if image.dtype == np.uint8:
    return image
  if not np.issubdtype(image.dtype, np.floating):
    raise ValueError(f"{name} must be uint8 or float in [0, 1], got {image.dtype}")
  if not np.all(np.isfinite(image)):
    raise ValueError(f"{name} contains NaN or Inf")
  return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)


def as_rgb_uint8(image: np.ndarray, name: str) -> np.ndarray:
  """[H, W, 3] uint8 from uint8 or [0, 1] floats; ValueError naming `name` otherwise."""
  image = np.asarray(image)
  if image.ndim != 3 or image.shape[-1] != 3 or image.shape[0] == 0 or image.shape[1] == 0:
    raise ValueError(f"{name} must be an [H, W, 3] RGB image, got shape {image.shape}")
  return _as_uint8(image, name)


def feather_alpha(mask: np.ndarray, radius: float = DEFAULT_FEATHER) -> np.ndarray:
  """Soft alpha falling from 1 to 0 over the last ``radius`` pixels inside the mask.

  Args:
    mask: [H, W] coverage (bool or float, inside where > 0.5).
    radius: feather width in pixels; 0 keeps the hard mask.

  Returns:
    [H, W] float32: 0 outside; ``smoothstep(d / (radius + 1))`` inside, with ``d`` the
    distance (``cv2.distanceTransform``, L2) to the nearest outside pixel, so 1 at
    ``radius + 1`` pixels or more from the edge.
  """
  mask = np.asarray(mask)
  if mask.ndim != 2:
    raise ValueError(f"mask must be [H, W], got shape {mask.shape}")
  if radius < 0:
    raise ValueError(f"feather radius must be >= 0, got {radius}")
  inside = (mask.astype(np.float32) > 0.5).astype(np.uint8)
  if radius == 0:
    return inside.astype(np.float32)
  # Outside the crop counts as outside: a render cut by the crop's edge fades out there
  # instead of ending in a straight seam.
  padded = cv2.copyMakeBorder(inside, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
  distance = cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]
  t = np.clip(distance / (radius + 1.0), 0.0, 1.0)
  return (t * t * (3.0 - 2.0 * t)).astype(np.float32)


def render_to_rgba(image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
  """[S, S, 3] float render in [0, 1] (clipped) + [S, S] alpha in [0, 1] -> [S, S, 4] uint8."""
  rgb = as_rgb_uint8(image, "render")
  alpha = np.asarray(alpha, dtype=np.float32)
  if alpha.shape != rgb.shape[:2]:
    raise ValueError(f"alpha {alpha.shape} must match the render {rgb.shape[:2]}")
  return np.concatenate([rgb, _as_uint8(alpha, "alpha")[..., None]], axis=-1)


def paste_back(photo: np.ndarray, render: np.ndarray, mask: np.ndarray, transform: AlignTransform,
               feather: float = DEFAULT_FEATHER) -> np.ndarray:
  """The render composited onto the full-resolution photo where the face was.

  Args:
    photo: [H, W, 3] uint8 RGB, the photo ``transform`` was estimated on.
    render: [S, S, 3] aligned render (float in [0, 1] or uint8), S = ``transform.size``.
    mask: [S, S] render coverage (the alpha before feathering).
    transform: the photo's ``data.alignment.AlignTransform``.
    feather: feather width in aligned pixels (see :func:`feather_alpha`).

  Returns:
    [H, W, 3] uint8.

  Raises:
    ValueError: sizes that do not match the transform.
  """
  photo = as_rgb_uint8(photo, "photo")
  if tuple(photo.shape[:2]) != tuple(transform.source_shape):
    raise ValueError(f"photo is {photo.shape[0]}x{photo.shape[1]} but the alignment was made "
                     f"for {transform.source_shape[0]}x{transform.source_shape[1]}")
  size = transform.size
  render = np.asarray(render)
  if render.shape[:2] != (size, size):
    raise ValueError(f"render must be {size}x{size} (the aligned size), got {render.shape[:2]}")
  rgba = render_to_rgba(render, feather_alpha(mask, feather))
  # Composite only the photo region under the crop (paste_onto works on whole images).
  height, width = photo.shape[:2]
  corners = transform.to_original(np.array([[-1.0, -1.0], [size, -1.0], [-1.0, size],
                                            [size, size]]))
  x0, y0 = np.clip(np.floor(corners.min(axis=0)).astype(int) - 1, 0, [width, height])
  x1, y1 = np.clip(np.ceil(corners.max(axis=0)).astype(int) + 2, 0, [width, height])
  out = photo.copy()
  if x1 <= x0 or y1 <= y0:
    return out
  matrix = np.array(transform.matrix, dtype=np.float64)
  matrix[:, 2] += matrix[:, :2] @ np.array([x0, y0], dtype=np.float64)  # ROI -> aligned
  roi_transform = dataclasses.replace(transform, matrix=matrix,
                                      inverse=cv2.invertAffineTransform(matrix),
                                      source_shape=(int(y1 - y0), int(x1 - x0)))
  out[y0:y1, x0:x1] = paste_onto(photo[y0:y1, x0:x1], rgba, roi_transform)
  return out


def paste_faces(photo: np.ndarray, faces: Sequence[AlignedRenders],
                transforms: Sequence[AlignTransform],
                feather: float = DEFAULT_FEATHER) -> np.ndarray:
  """Every face's fine render pasted onto one copy of the photo (`paste_back` in turn).

  Args:
    photo: [H, W, 3] uint8 RGB.
    faces: the faces' aligned panels (their `fine` render and replaced-pixel `mask`).
    transforms: each face's alignment to `photo`.
    feather: see `paste_back`.

  Returns:
    [H, W, 3] uint8: the photo with all faces replaced (occluders kept in front).
  """
  if len(faces) != len(transforms):
    raise ValueError(f"{len(faces)} faces but {len(transforms)} transforms")
  out = as_rgb_uint8(photo, "photo")
  for renders, transform in zip(faces, transforms):
    out = paste_back(out, renders.fine, renders.mask, transform, feather=feather)
  return out


def composite(render: np.ndarray, mask: np.ndarray, background: np.ndarray) -> np.ndarray:
  """``render * mask + background * (1 - mask)`` as uint8 (same-sized images)."""
  render = as_rgb_uint8(render, "render").astype(np.float32)
  background = as_rgb_uint8(background, "background").astype(np.float32)
  mask = np.asarray(mask, dtype=np.float32)
  if render.shape != background.shape or mask.shape != render.shape[:2]:
    raise ValueError(f"render {render.shape}, background {background.shape} and mask "
                     f"{mask.shape} must have the same size")
  out = render * mask[..., None] + background * (1.0 - mask[..., None])
  return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def comparison_strip(photo_crop: np.ndarray, coarse: np.ndarray, fine: np.ndarray,
                     shape_render: np.ndarray,
                     labels: Optional[Sequence[str]] = DEFAULT_LABELS) -> np.ndarray:
  """Panels side by side, each under its label.

  Args:
    photo_crop, coarse, fine, shape_render: [S, S', 3] images of one size (uint8, or float
      in [0, 1]).
    labels: 4 labels, or None for no banner.

  Returns:
    [banner + S, 4 * S', 3] uint8; the banner is ``round(0.12 * S')`` pixels high
    (at least 14), white text on dark gray.
  """
  panels = [as_rgb_uint8(p, f"panel {i}") for i, p in
            enumerate((photo_crop, coarse, fine, shape_render))]
  shape = panels[0].shape
  for i, p in enumerate(panels):
    if p.shape != shape:
      raise ValueError(f"panel {i} is {p.shape[:2]}, panel 0 is {shape[:2]}: sizes must match")
  body = np.concatenate(panels, axis=1)
  if labels is None:
    return body
  labels = [str(label) for label in labels]
  if len(labels) != len(panels):
    raise ValueError(f"{len(labels)} labels for {len(panels)} panels")
  width = shape[1]
  banner_height = max(14, int(round(0.12 * width)))
  banner = np.full((banner_height, body.shape[1], 3), 40, np.uint8)
  font = cv2.FONT_HERSHEY_SIMPLEX
  scale = banner_height / 40.0
  thickness = max(1, int(round(banner_height / 20)))
  for i, label in enumerate(labels):
    (text_w, text_h), _ = cv2.getTextSize(label, font, scale, thickness)
    x = i * width + max(2, (width - text_w) // 2)
    y = (banner_height + text_h) // 2
    cv2.putText(banner, label, (x, y), font, scale, (255, 255, 255), thickness, cv2.LINE_AA)
  return np.concatenate([banner, body], axis=0)
