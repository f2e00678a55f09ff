"""Synthetic occluders drawn onto real faces, each with its known mask (issue #11's dev set).

Every occluder is placed from the face's 68 iBUG landmarks (any pixel grid: the full photo
or the aligned crop), drawn with a little texture noise so it is not a flat colour, and
returned with the exact set of pixels it covers:

* ``sunglasses``: two dark filled lenses over the eyes and a bridge;
* ``frames``: glasses frames (lens outlines, bridge, temples towards the ears);
* ``hand``: a palm and four fingers in a skin tone unlike the face's, over a cheek and the
  mouth;
* ``surgical_mask``: a light blue / white mask from the nose bridge to below the chin,
  cheek to cheek, with pleats;
* ``hair``: dark or blond strands falling from above the forehead over the brows.

`augment_photo` makes variants of a photo (mirror, rotation, scale, colour), so a
development set built on a few photos is not those photos alone. Everything takes a
`numpy.random.Generator` (or a seed): the set is regenerated exactly from its seed.
"""

import dataclasses
from typing import Sequence, Tuple, Union

import cv2
import numpy as np
from scipy import ndimage

from facegcn_tf.data import image_io

KINDS = ("sunglasses", "frames", "hand", "surgical_mask", "hair")

_RIGHT_EYE = tuple(range(36, 42))   # image-left eye
_LEFT_EYE = tuple(range(42, 48))
_BROWS = tuple(range(17, 27))
_JAW = tuple(range(0, 17))
_NOSE_BRIDGE = 27
_NOSE_TIP = 30
_CHIN = 8
_MOUTH = tuple(range(48, 68))
_SHIFT = 4  # cv2 sub-pixel bits


@dataclasses.dataclass(frozen=True)
class Occluded:
  """A photo with an occluder drawn on it.

  Attributes:
    image: [H, W, 3] uint8 the occluded photo.
    mask: [H, W] bool the pixels the occluder covers.
    kind: one of `KINDS`.
  """
  image: np.ndarray
  mask: np.ndarray
  kind: str


def _rng(rng: Union[int, np.random.Generator]) -> np.random.Generator:
  return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _fixed(points) -> np.ndarray:
  return np.rint(np.asarray(points, np.float64) * (1 << _SHIFT)).astype(np.int32)


def _geometry(landmarks68: np.ndarray):
  points = np.asarray(landmarks68, np.float64)
  if points.shape != (68, 2) or not np.all(np.isfinite(points)):
    raise ValueError(f"landmarks68 must be finite [68, 2], got shape {points.shape}")
  right = points[list(_RIGHT_EYE)].mean(axis=0)
  left = points[list(_LEFT_EYE)].mean(axis=0)
  ocular = float(np.linalg.norm(left - right))
  if ocular <= 1.0:
    raise ValueError("landmarks too small to draw an occluder on (eyes < 1 px apart)")
  across = (left - right) / ocular
  down = np.array([-across[1], across[0]])  # image y grows down
  return points, right, left, ocular, across, down


def _ellipse(mask, center, axes, angle_deg, thickness=-1):
  cv2.ellipse(mask, tuple(int(v) for v in _fixed(center)),
              tuple(int(max(1, v)) for v in _fixed(axes)), angle_deg, 0, 360, 1,
              thickness=thickness, lineType=cv2.LINE_8, shift=_SHIFT)


def _line(mask, a, b, width):
  cv2.line(mask, tuple(int(v) for v in _fixed(a)), tuple(int(v) for v in _fixed(b)), 1,
           thickness=max(1, int(round(width))), lineType=cv2.LINE_8, shift=_SHIFT)


def _polyline(mask, points, width):
  cv2.polylines(mask, [_fixed(points)], False, 1, thickness=max(1, int(round(width))),
                lineType=cv2.LINE_8, shift=_SHIFT)


def _lenses(mask, right, left, ocular, across, rng, thickness=-1):
  angle = float(np.degrees(np.arctan2(across[1], across[0])))
  axes = (ocular * rng.uniform(0.30, 0.38), ocular * rng.uniform(0.22, 0.30))
  lift = -0.05 * ocular * np.array([-across[1], across[0]])
  for eye in (right, left):
    _ellipse(mask, eye + lift, axes, angle, thickness)
  return axes


def sunglasses_mask(landmarks68, shape, rng) -> np.ndarray:
  points, right, left, ocular, across, _ = _geometry(landmarks68)
  mask = np.zeros(shape[:2], np.uint8)
  axes = _lenses(mask, right, left, ocular, across, rng)
  _line(mask, right + across * axes[0] * 0.9, left - across * axes[0] * 0.9, 0.06 * ocular)
  return mask.astype(bool)


def frames_mask(landmarks68, shape, rng) -> np.ndarray:
  points, right, left, ocular, across, _ = _geometry(landmarks68)
  mask = np.zeros(shape[:2], np.uint8)
  width = max(2.0, ocular * rng.uniform(0.04, 0.07))
  axes = _lenses(mask, right, left, ocular, across, rng, thickness=int(round(width)))
  _line(mask, right + across * axes[0], left - across * axes[0], width)
  # Temples: from the lenses' outer edges to the ears (jaw points 0 and 16, raised a bit).
  _line(mask, right - across * axes[0], points[0] + 0.2 * (points[0] - points[_CHIN]) * 0.3,
        width)
  _line(mask, left + across * axes[0], points[16] + 0.2 * (points[16] - points[_CHIN]) * 0.3,
        width)
  return mask.astype(bool)


def hand_mask(landmarks68, shape, rng) -> np.ndarray:
  points, right, left, ocular, across, down = _geometry(landmarks68)
  mask = np.zeros(shape[:2], np.uint8)
  side = rng.choice([-1.0, 1.0])
  mouth = points[list(_MOUTH)].mean(axis=0)
  # The palm sits on one cheek at mouth height; fingers reach across the mouth and nose.
  palm = mouth + side * across * ocular * rng.uniform(0.7, 1.0) + down * ocular * 0.1
  tilt = rng.uniform(-0.5, 0.5)
  towards = -side * across * np.cos(tilt) + down * np.sin(tilt)
  normal = np.array([-towards[1], towards[0]])
  angle = float(np.degrees(np.arctan2(towards[1], towards[0])))
  _ellipse(mask, palm, (ocular * 0.45, ocular * 0.55), angle)
  finger_width = ocular * rng.uniform(0.16, 0.2)
  for k, length in enumerate((0.9, 1.0, 0.95, 0.75)):
    base = palm + towards * ocular * 0.3 + normal * ocular * (k - 1.5) * 0.22
    tip = base + towards * ocular * length * rng.uniform(0.85, 1.05)
    _line(mask, base, tip, finger_width)
  return mask.astype(bool)


def surgical_mask_mask(landmarks68, shape, rng) -> np.ndarray:
  points, right, left, ocular, across, down = _geometry(landmarks68)
  mask = np.zeros(shape[:2], np.uint8)
  top = points[_NOSE_BRIDGE] + (points[_NOSE_TIP] - points[_NOSE_BRIDGE]) * rng.uniform(0.3, 0.5)
  jaw = points[list(range(2, 15))]
  # The mask hangs below the jaw line, most at the chin.
  chin_drop = down * ocular * rng.uniform(0.1, 0.25)
  lower = jaw + chin_drop[None, :] * (1.0 - np.abs(np.linspace(-1, 1, len(jaw))))[:, None]
  upper_right = points[2] + (top - points[2]) * 0.1 - down * ocular * 0.05
  upper_left = points[14] + (top - points[14]) * 0.1 - down * ocular * 0.05
  polygon = np.concatenate([lower, [upper_left, top, upper_right]])
  cv2.fillPoly(mask, [_fixed(polygon)], 1, lineType=cv2.LINE_8, shift=_SHIFT)
  return mask.astype(bool)


def hair_mask(landmarks68, shape, rng) -> np.ndarray:
  points, right, left, ocular, across, down = _geometry(landmarks68)
  mask = np.zeros(shape[:2], np.uint8)
  brows = points[list(_BROWS)]
  brow_y = brows.mean(axis=0)
  count = int(rng.integers(6, 12))
  start_side = rng.choice([-1.0, 1.0])
  for _ in range(count):
    offset = rng.uniform(-1.1, 1.1) * ocular
    root = brow_y + across * offset - down * ocular * rng.uniform(0.7, 1.0)
    drift = across * start_side * ocular * rng.uniform(0.2, 0.8)
    end = brow_y + across * offset + drift + down * ocular * rng.uniform(0.0, 0.45)
    bend = (root + end) / 2 + across * start_side * ocular * rng.uniform(-0.2, 0.3)
    t = np.linspace(0, 1, 16)[:, None]
    curve = (1 - t) ** 2 * root + 2 * (1 - t) * t * bend + t ** 2 * end
    _polyline(mask, curve, ocular * rng.uniform(0.05, 0.12))
  return mask.astype(bool)


_MASKERS = {"sunglasses": sunglasses_mask, "frames": frames_mask, "hand": hand_mask,
            "surgical_mask": surgical_mask_mask, "hair": hair_mask}


def _colour(kind: str, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """[3] float RGB base colour of an occluder."""
  if kind == "sunglasses":
    return rng.uniform(10, 45) + rng.uniform(-8, 8, 3)
  if kind == "frames":
    return (np.array([rng.uniform(5, 40)] * 3) if rng.random() < 0.7
            else np.array([150.0, 120.0, 60.0]) + rng.uniform(-20, 20, 3))
  if kind == "hand":  # a skin tone far from the photo's mean colour
    tones = np.array([[235, 190, 160], [200, 140, 100], [140, 90, 60], [90, 60, 40]], float)
    mean = image.reshape(-1, 3).mean(axis=0)
    return tones[int(np.argmax(np.linalg.norm(tones - mean, axis=1)))] + rng.uniform(-10, 10, 3)
  if kind == "surgical_mask":
    return (np.array([150.0, 195.0, 225.0]) if rng.random() < 0.6
            else np.array([235.0, 235.0, 235.0])) + rng.uniform(-10, 10, 3)
  if kind == "hair":
    return (np.array([35.0, 25.0, 20.0]) if rng.random() < 0.6
            else np.array([200.0, 170.0, 110.0])) + rng.uniform(-10, 10, 3)
  raise ValueError(f"unknown occluder '{kind}'; choose from {KINDS}")


def occluder_mask(kind: str, landmarks68: np.ndarray, shape: Tuple[int, int],
                  rng: Union[int, np.random.Generator] = 0) -> np.ndarray:
  """[H, W] bool the pixels an occluder of `kind` covers on the face of `landmarks68`.

  Args:
    kind: one of `KINDS`.
    landmarks68: [68, 2] iBUG points (x, y) in the grid's pixels.
    shape: (H, W) of the grid.
    rng: a generator, or a seed for one (the occluder's size, place and strands).
  """
  if kind not in _MASKERS:
    raise ValueError(f"unknown occluder '{kind}'; choose from {KINDS}")
  return _MASKERS[kind](landmarks68, tuple(shape[:2]), _rng(rng))


def draw_occluder(image: np.ndarray, landmarks68: np.ndarray, kind: str,
                  rng: Union[int, np.random.Generator] = 0) -> Occluded:
  """Draws an occluder of `kind` onto a copy of `image`.

  Args:
    image: [H, W, 3] uint8 RGB.
    landmarks68: [68, 2] the face's iBUG points in `image`'s pixels.
    kind: one of `KINDS`.
    rng: a generator, or a seed for one.

  Returns:
    `Occluded`: the image changed exactly on `mask` (shading and noise on the occluder).
    On a grey-level image (`image_io.is_grayscale`) the occluder is grey too, as it would
    be in a grey photo; the random draws are the same either way.
  """
  image = np.asarray(image)
  if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
    raise ValueError(f"image must be [H, W, 3] uint8, got {image.shape} {image.dtype}")
  rng = _rng(rng)
  mask = occluder_mask(kind, landmarks68, image.shape[:2], rng)
  colour = _colour(kind, image, rng)
  height, width = image.shape[:2]
  # Low-frequency shading plus fine noise; pleats (mask) and strands (hair) get stripes.
  shading = cv2.resize(rng.normal(0.0, 1.0, (4, 4)).astype(np.float32), (width, height),
                       interpolation=cv2.INTER_CUBIC)
  fill = colour[None, None, :] * (1.0 + 0.08 * shading[..., None])
  fill = fill + rng.normal(0.0, 4.0, (height, width, 1))
  if kind == "surgical_mask":
    _, _, _, ocular, _, down = _geometry(landmarks68)
    ys, xs = np.mgrid[0:height, 0:width]
    phase = (xs * down[0] + ys * down[1]) / max(ocular * 0.25, 1.0)
    fill = fill * (1.0 - 0.06 * (np.sin(2 * np.pi * phase) > 0.6))[..., None]
  if image_io.is_grayscale(image):   # a grey photo shows its occluders grey too
    fill = np.repeat(cv2.cvtColor(fill.astype(np.float32), cv2.COLOR_RGB2GRAY)[..., None], 3, -1)
  out = image.copy()
  out[mask] = np.clip(np.rint(fill[mask]), 0, 255).astype(np.uint8)
  # Some pixels may get exactly their old value: the mask says where the occluder is.
  return Occluded(image=out, mask=mask, kind=kind)


# Tints of see-through lenses (per-channel transmission before the overall one): clear,
# grey, brown, amber, blue, green, rose.
_LENS_TINTS = np.array([[1.0, 1.0, 1.0], [0.92, 0.92, 0.92], [1.0, 0.85, 0.68],
                        [1.0, 0.9, 0.6], [0.8, 0.9, 1.0], [0.85, 1.0, 0.85], [1.0, 0.85, 0.9]])


def lens_interiors(frames: np.ndarray) -> np.ndarray:
  """[H, W] bool the pixels enclosed by a frames mask's closed rims (the lenses), rims
  excluded."""
  frames = np.asarray(frames, bool)
  return ndimage.binary_fill_holes(frames) & ~frames


def see_through_lenses(occluded: Occluded, rng: Union[int, np.random.Generator] = 0,
                       max_darkening: float = 0.4, max_glare: float = 60.0) -> Occluded:
  """Puts tinted, see-through lenses into drawn frames: the eye stays visible through them.

  Inside the rims (`lens_interiors`) the photo is multiplied by a tint and an overall
  transmission in [1 - max_darkening, 1], and a soft glare band (up to `max_glare` levels,
  a reflection across each lens) is added. The mask is unchanged: a see-through lens shows
  the face, so it is face, not occluder, the way the fitter should treat real glasses.

  Args:
    occluded: a `draw_occluder(..., "frames", ...)` result.
    rng: a generator, or a seed for one.
    max_darkening: the darkest lens keeps 1 - max_darkening of the light.
    max_glare: the brightest reflection, 0..255 levels.
  """
  if occluded.kind != "frames":
    raise ValueError(f"see-through lenses go into frames, not '{occluded.kind}'")
  rng = _rng(rng)
  inside = lens_interiors(occluded.mask)
  tint = _LENS_TINTS[int(rng.integers(len(_LENS_TINTS)))]
  transmission = tint * rng.uniform(1.0 - max_darkening, 1.0)
  if image_io.is_grayscale(occluded.image):
    transmission = np.full(3, transmission.mean())
  height, width = inside.shape
  ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
  angle = rng.uniform(0.0, np.pi)
  along = (xs * np.cos(angle) + ys * np.sin(angle)) / max(height, width)
  centre, spread = rng.uniform(along.min(), along.max()), rng.uniform(0.02, 0.08)
  glare = rng.uniform(0.0, max_glare) * np.exp(-0.5 * ((along - centre) / spread) ** 2)
  lit = occluded.image.astype(np.float64) * transmission[None, None, :] + glare[..., None]
  out = occluded.image.copy()
  out[inside] = np.clip(np.rint(lit[inside]), 0, 255).astype(np.uint8)
  return Occluded(image=out, mask=occluded.mask, kind=occluded.kind)


@dataclasses.dataclass(frozen=True)
class Augmentation:
  """One photo variant: mirrored, rotated (degrees) and scaled about the centre, colour gain."""
  mirror: bool = False
  rotation: float = 0.0
  scale: float = 1.0
  gain: Tuple[float, float, float] = (1.0, 1.0, 1.0)
  gamma: float = 1.0


def random_augmentation(rng: Union[int, np.random.Generator]) -> Augmentation:
  """A random variant: mirror half the time, +-12 degrees, 0.8..1.15 scale, colour and gamma."""
  rng = _rng(rng)
  return Augmentation(mirror=bool(rng.random() < 0.5), rotation=float(rng.uniform(-12, 12)),
                      scale=float(rng.uniform(0.8, 1.15)),
                      gain=tuple(float(g) for g in rng.uniform(0.85, 1.15, 3)),
                      gamma=float(rng.uniform(0.8, 1.25)))


def augment_photo(image: np.ndarray, augmentation: Augmentation) -> np.ndarray:
  """[H, W, 3] uint8 -> the same-sized variant (borders replicated)."""
  image = np.asarray(image)
  if augmentation.mirror:
    image = image[:, ::-1]
  height, width = image.shape[:2]
  matrix = cv2.getRotationMatrix2D(((width - 1) / 2.0, (height - 1) / 2.0),
                                   augmentation.rotation, augmentation.scale)
  image = cv2.warpAffine(np.ascontiguousarray(image), matrix, (width, height),
                         flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
  unit = (image.astype(np.float32) / 255.0) ** augmentation.gamma
  unit = unit * np.asarray(augmentation.gain, np.float32)[None, None, :]
  return np.clip(np.rint(unit * 255.0), 0, 255).astype(np.uint8)


def occluder_set(image: np.ndarray, landmarks68: np.ndarray, kinds: Sequence[str] = KINDS,
                 seed: int = 0):
  """Every occluder of `kinds` on one photo: [`Occluded`], one per kind, seeded by `seed`."""
  rng = np.random.default_rng(seed)
  return [draw_occluder(image, landmarks68, kind, rng) for kind in kinds]


__all__ = ["Augmentation", "KINDS", "Occluded", "augment_photo", "draw_occluder",
           "lens_interiors", "occluder_mask", "occluder_set", "random_augmentation",
           "see_through_lenses"]
