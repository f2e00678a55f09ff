"""Robust photo loading: any common file -> ``[H, W, 3] uint8 RGB``.

Pillow decodes (JPEG, PNG, WebP, BMP, TIFF, GIF, ...); OpenCV is the fallback
for files Pillow cannot open (e.g. 3-channel float32 TIFF). Conversions:

* EXIF orientation is applied (``ImageOps.exif_transpose``), so a portrait
  photo stored sideways comes back upright with the rotated size.
* An embedded ICC profile (RGB or CMYK) is converted to sRGB with LittleCMS
  (``PIL.ImageCms``); without a profile CMYK uses Pillow's plain conversion.
* Alpha (RGBA, LA, PA, palette transparency) is **composited on white**, not
  dropped: cut-out portraits usually hide undefined colours (often black)
  under transparent pixels, and white is the neutral background.
* 16-bit data is scaled to 8 bit by ``round(v / 257)`` (65535 -> 255); 32-bit
  integer data is treated as 16-bit when it lies in [0, 65535], else stretched
  linearly from its minimum to its maximum; float data in [0, 1] is scaled by
  255, other float ranges are stretched from ``min(0, lo)`` to ``hi``. NaN/inf
  become 0.
* Grayscale, 1-bit and palette images are expanded to 3 channels.

Any failure is an :class:`~facegcn_tf.errors.ImageLoadError` whose one-line
message names the file. The input file is only ever opened for reading.
"""

import dataclasses
import io
import logging
import os
import pathlib
import re
from typing import Tuple, Union

import cv2
import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from facegcn_tf import storage
from facegcn_tf.errors import ImageLoadError

PathLike = Union[str, os.PathLike]

MIN_SIDE = 32  # Smaller images cannot hold a usable face (MTCNN's minimum face is 20 px).
DETECTION_MAX_SIDE = 1024

_log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class LoadedImage:
  """A decoded photo.

  Attributes:
    rgb: [H, W, 3] uint8 RGB at full resolution, EXIF orientation applied.
    path: the file it came from (``"<bytes>"`` for in-memory data).
    original_size: (height, width) of ``rgb``: the full-resolution size that
      exports and paste-backs must produce.
    stored_size: (height, width) as stored in the file, before EXIF rotation.
    source_mode: how the file was stored (Pillow mode such as ``"RGB"``,
      ``"I;16"``, ``"CMYK"``, or ``"cv2:float32x3"`` for the OpenCV fallback).
  """
  rgb: np.ndarray
  path: str
  original_size: Tuple[int, int]
  stored_size: Tuple[int, int]
  source_mode: str


def _one_line(text: str, limit: int = 200) -> str:
  text = re.sub(r"\s+", " ", str(text)).strip()
  return text if len(text) <= limit else text[:limit - 3] + "..."


def _error(name: str, reason: str) -> ImageLoadError:
  return ImageLoadError(f"{name}: cannot load image: {_one_line(reason)}")


def _scale_to_uint8(array: np.ndarray) -> np.ndarray:
  """Maps integer / float pixel data of any range to uint8 (rules in the module doc)."""
  if array.dtype == np.uint8:
    return array
  if array.dtype == np.bool_:
    return array.astype(np.uint8) * 255
  if np.issubdtype(array.dtype, np.floating):
    data = np.nan_to_num(array.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(data.min()), float(data.max())
    if lo >= 0.0 and hi <= 1.0:
      scaled = data * 255.0
    else:
      lo = min(lo, 0.0)
      scaled = (data - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(data)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
  if np.issubdtype(array.dtype, np.integer):
    if array.dtype in (np.uint16, np.int16) and array.min() >= 0:
      return np.rint(array.astype(np.float64) / 257.0).astype(np.uint8)
    data = array.astype(np.float64)
    lo, hi = float(data.min()), float(data.max())
    if lo >= 0 and hi <= 65535:
      return np.rint(data / 257.0).astype(np.uint8)
    scaled = (data - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(data)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
  raise ValueError(f"unsupported pixel type {array.dtype}")


def _composite_on_white(rgba: np.ndarray) -> np.ndarray:
  """[H, W, 4] uint8 -> [H, W, 3] uint8, alpha-blended over white."""
  alpha = rgba[..., 3:4].astype(np.float32) / 255.0
  rgb = rgba[..., :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
  return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def _to_srgb(img: Image.Image) -> Image.Image:
  """Applies an embedded ICC profile (RGB/RGBA/CMYK); returns ``img`` unchanged otherwise."""
  icc = img.info.get("icc_profile")
  if not icc or img.mode not in ("RGB", "RGBA", "CMYK"):
    return img
  try:
    source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    target = ImageCms.createProfile("sRGB")
    out_mode = "RGBA" if img.mode == "RGBA" else "RGB"
    return ImageCms.profileToProfile(img, source, target, outputMode=out_mode)
  except (ImageCms.PyCMSError, OSError, ValueError) as err:
    _log.warning("ignoring unusable ICC profile (%s)", _one_line(err))
    return img


def _pil_to_rgb(img: Image.Image) -> np.ndarray:
  """Any Pillow mode -> [H, W, 3] uint8 RGB."""
  img = _to_srgb(img)
  mode = img.mode
  if mode == "RGB":
    return np.asarray(img, dtype=np.uint8)
  if mode == "P":
    img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    mode = img.mode
  if mode in ("RGBA", "LA", "La", "PA", "RGBa"):
    return _composite_on_white(np.asarray(img.convert("RGBA"), dtype=np.uint8))
  if mode in ("1", "L"):
    gray = np.asarray(img.convert("L"), dtype=np.uint8)
    return np.repeat(gray[..., None], 3, axis=-1)
  if mode.startswith("I") or mode == "F":
    gray = _scale_to_uint8(np.asarray(img))
    return np.repeat(gray[..., None], 3, axis=-1)
  # CMYK, YCbCr, LAB, HSV and anything else Pillow knows how to convert.
  return np.asarray(img.convert("RGB"), dtype=np.uint8)


def _cv2_to_rgb(array: np.ndarray) -> np.ndarray:
  """OpenCV ``IMREAD_UNCHANGED`` output (BGR/BGRA/gray, any depth) -> RGB uint8."""
  if array.ndim == 2:
    array = array[..., None]
  channels = array.shape[-1]
  data = _scale_to_uint8(array)
  if channels == 1:
    return np.repeat(data, 3, axis=-1)
  if channels == 3:
    return np.ascontiguousarray(data[..., ::-1])
  if channels == 4:
    return _composite_on_white(np.ascontiguousarray(data[..., [2, 1, 0, 3]]))
  raise ValueError(f"unsupported channel count {channels}")


def _decode_with_cv2(data: bytes) -> Tuple[np.ndarray, str]:
  buf = np.frombuffer(data, dtype=np.uint8)
  array = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
  if array is None:
    raise ValueError("not a recognised image format")
  channels = 1 if array.ndim == 2 else array.shape[-1]
  return _cv2_to_rgb(array), f"cv2:{array.dtype}x{channels}"


def decode_image(data: bytes, name: str = "<bytes>", min_side: int = MIN_SIDE) -> LoadedImage:
  """Decodes encoded image bytes; see :func:`load_image` for the rules."""
  if not data:
    raise _error(name, "file is empty")
  stored_size = None
  try:
    with Image.open(io.BytesIO(data)) as img:
      img.load()  # Raises on truncated data (LOAD_TRUNCATED_IMAGES stays False).
      stored_size = (img.height, img.width)
      source_mode = img.mode
      try:
        oriented = ImageOps.exif_transpose(img)
      except (ValueError, TypeError, KeyError, OSError, SyntaxError) as err:
        _log.warning("%s: ignoring unreadable EXIF orientation (%s)", name, _one_line(err))
        oriented = img
      rgb = _pil_to_rgb(oriented)
  except UnidentifiedImageError:
    try:
      rgb, source_mode = _decode_with_cv2(data)
    except (ValueError, cv2.error) as err:
      raise _error(name, f"unrecognised or corrupt image data ({_one_line(err, 80)})") from None
    stored_size = rgb.shape[:2]
  except Image.DecompressionBombError as err:
    raise _error(name, f"image too large to decode safely ({err})") from None
  except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as err:
    reason = str(err)
    if "truncated" in reason.lower() or isinstance(err, EOFError):
      reason = f"truncated file ({reason or 'unexpected end of data'})"
    raise _error(name, reason) from None
  height, width = rgb.shape[:2]
  if min(height, width) < min_side:
    raise _error(name, f"image is {width}x{height} px; at least {min_side} px per side is needed")
  return LoadedImage(rgb=np.ascontiguousarray(rgb), path=name,
                     original_size=(int(height), int(width)),
                     stored_size=(int(stored_size[0]), int(stored_size[1])),
                     source_mode=source_mode)


def load_image(path: PathLike, min_side: int = MIN_SIDE) -> LoadedImage:
  """Loads a photo file as full-resolution ``[H, W, 3] uint8`` RGB.

  Args:
    path: image file (JPEG/PNG/WebP/BMP/TIFF/GIF/...).
    min_side: smallest accepted height/width in pixels.

  Returns:
    A :class:`LoadedImage` (pixels plus original and stored sizes).

  Raises:
    ImageLoadError: missing path, a directory, empty, truncated, not an image,
      unsupported pixel format, or smaller than ``min_side``.
  """
  name = str(path)
  if storage.is_remote(name):   # gs://... (see `storage`)
    try:
      data = storage.read_bytes(name)
    except OSError as err:
      raise _error(name, _one_line(err)) from None
    return decode_image(data, name=name, min_side=min_side)
  p = pathlib.Path(path)
  if p.is_dir():
    raise _error(name, "is a directory, not an image file")
  try:
    data = p.read_bytes()
  except OSError as err:
    raise _error(name, err.strerror or str(err)) from None
  return decode_image(data, name=name, min_side=min_side)


def ensure_rgb_uint8(image: np.ndarray, name: str = "image") -> np.ndarray:
  """Checks that ``image`` is a ``[H, W, 3] uint8`` array; returns it contiguous.

  Raises:
    ValueError: wrong rank, channel count or dtype.
  """
  image = np.asarray(image)
  if image.ndim != 3 or image.shape[-1] != 3:
    raise ValueError(f"{name} must be [H, W, 3] RGB, got shape {image.shape}")
  if image.dtype != np.uint8:
    raise ValueError(f"{name} must be uint8, got {image.dtype}")
  if min(image.shape[:2]) < 1:
    raise ValueError(f"{name} is empty: shape {image.shape}")
  return np.ascontiguousarray(image)


def downscale_for_detection(image: np.ndarray,
                            max_side: int = DETECTION_MAX_SIDE) -> Tuple[np.ndarray, float]:
  """A reduced copy of a large photo for detection; the original stays untouched.

  Args:
    image: [H, W, C] array.
    max_side: the longer side of the copy (images already that small are
      returned as they are, with scale 1).

  Returns:
    (small, scale): ``small`` is [h, w, C] with ``h = round(H * scale)``;
    a point maps back with :func:`to_original_coords` (pixel centres at
    integer coordinates).
  """
  if max_side < 1:
    raise ValueError(f"max_side must be positive, got {max_side}")
  height, width = image.shape[:2]
  longest = max(height, width)
  if longest <= max_side:
    return image, 1.0
  scale = max_side / float(longest)
  # With dsize=None OpenCV keeps fx/fy as the exact sampling ratio.
  small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
  return small, scale


def to_original_coords(points: np.ndarray, scale: float) -> np.ndarray:
  """Maps [..., 2] (x, y) pixel coordinates of a ``downscale_for_detection`` copy back."""
  points = np.asarray(points, dtype=np.float64)
  return (points + 0.5) / scale - 0.5


def is_grayscale(image: np.ndarray, mask: np.ndarray = None, tolerance: float = 3.0) -> bool:
  """Whether an RGB image (inside `mask`) carries no colour.

  Args:
    image: [H, W, 3] RGB 0..255.
    mask: optional [H, W] pixels to judge (default: all).
    tolerance: the 95th percentile of the per-pixel channel spread (max - min, 8-bit
      levels) must not exceed it; JPEG chroma noise in a grey photo stays below ~3.

  Returns:
    True for a grey-level photo.
  """
  image = np.asarray(image, np.float32)
  spread = image.max(axis=-1) - image.min(axis=-1)
  if mask is not None:
    spread = spread[np.asarray(mask) > 0.5]
  return bool(spread.size == 0 or np.percentile(spread, 95) <= tolerance)
