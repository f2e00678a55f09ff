"""Atomic file writes: a reader sees the old file or the complete new one, never a part.

Every write goes to a temporary file in the destination's directory (same file system, so
the final rename is atomic), is flushed and ``fsync``-ed, then ``os.replace``-d onto the
destination; the directory entry is fsync-ed too where the platform allows it. If anything
fails before the rename (an exception inside the ``with`` block, a full disk, an encoder
error), the temporary file is removed and an existing destination is left untouched.

Temporary names are ``.<name>.<random>.tmp`` (hidden, so a batch run's directory listing
and ``writer.outputs_complete`` never mistake one for an output). New files get the usual
permissions (``0o666`` minus the umask) rather than ``mkstemp``'s ``0o600``.
"""

import contextlib
import json
import os
import pathlib
import tempfile
from typing import Any, Iterator, Union

import cv2
import numpy as np

PathLike = Union[str, os.PathLike]

# Extensions cv2.imencode is asked to write.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def _umask() -> int:
  # os.umask can only be read by setting it; set it back at once.
  mask = os.umask(0o022)
  os.umask(mask)
  return mask


def fsync_path(path) -> None:
  """Flushes a local file or folder to disk (best effort: errors are ignored)."""
  try:
    fd = os.open(path, os.O_RDONLY)
  except OSError:  # e.g. platforms without directory file descriptors
    return
  try:
    os.fsync(fd)
  except OSError:
    pass
  finally:
    os.close(fd)


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[pathlib.Path]:
  """Yields a temporary path to write; it replaces ``path`` when the block ends cleanly.

  For libraries that insist on writing to a path themselves. The caller's writer must
  have closed the file when the block ends; the temporary file is fsync-ed before the
  rename.

  Raises:
    FileNotFoundError: the destination directory does not exist.
  """
  path = pathlib.Path(path)
  directory = path.parent if str(path.parent) else pathlib.Path(".")
  if not directory.is_dir():
    raise FileNotFoundError(f"cannot write {path}: directory {directory} does not exist")
  fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
  os.close(fd)
  tmp = pathlib.Path(tmp_name)
  try:
    yield tmp
    os.chmod(tmp, 0o666 & ~_umask())
    with open(tmp, "rb+") as f:
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(FileNotFoundError):
      tmp.unlink()
    raise
  fsync_path(directory)


@contextlib.contextmanager
def atomic_write(path: PathLike, mode: str = "wb", encoding: str = "utf-8") -> Iterator[Any]:
  """``with atomic_write(p, "w") as f: f.write(...)``: an atomic ``open(p, mode)``.

  Args:
    path: destination file.
    mode: ``"wb"`` (bytes) or ``"w"`` (text).
    encoding: text encoding for ``"w"``.
  """
  if mode not in ("w", "wb"):
    raise ValueError(f"atomic_write mode must be 'w' or 'wb', got {mode!r}")
  with atomic_path(path) as tmp:
    kwargs = {"encoding": encoding, "newline": ""} if mode == "w" else {}
    with open(tmp, mode, **kwargs) as f:
      yield f
      f.flush()
      os.fsync(f.fileno())


def write_bytes(path: PathLike, data: bytes) -> pathlib.Path:
  """Writes ``data`` atomically; returns the path."""
  if not isinstance(data, (bytes, bytearray, memoryview)):
    raise ValueError(f"write_bytes needs bytes, got {type(data).__name__}")
  with atomic_write(path, "wb") as f:
    f.write(data)
  return pathlib.Path(path)


def write_text(path: PathLike, text: str, encoding: str = "utf-8") -> pathlib.Path:
  """Writes ``text`` atomically (newlines written as given); returns the path."""
  if not isinstance(text, str):
    raise ValueError(f"write_text needs str, got {type(text).__name__}")
  with atomic_write(path, "w", encoding=encoding) as f:
    f.write(text)
  return pathlib.Path(path)


def write_json(path: PathLike, obj: Any, indent: int = 2) -> pathlib.Path:
  """Writes ``obj`` as strict JSON (no NaN/Infinity) atomically; returns the path.

  Convert numpy/TF values first (``export.report.to_json_safe``): anything ``json`` cannot
  encode raises ``ValueError`` / ``TypeError`` before the destination is touched.
  """
  text = json.dumps(obj, indent=indent, allow_nan=False, ensure_ascii=False)
  return write_text(path, text + "\n")


def encode_image(image: np.ndarray, extension: str = ".png") -> bytes:
  """RGB / RGBA / gray image -> encoded bytes (``cv2.imencode``).

  Args:
    image: ``[H, W]``, ``[H, W, 1]``, ``[H, W, 3]`` (RGB) or ``[H, W, 4]`` (RGBA); uint8,
      uint16 (PNG/TIFF), or float in [0, 1] (clipped, rounded to uint8).
    extension: e.g. ``".png"``.

  Raises:
    ValueError: bad shape, dtype, non-finite floats or an unsupported extension.
  """
  extension = extension.lower()
  if extension not in IMAGE_EXTENSIONS:
    raise ValueError(f"unsupported image extension {extension!r} (use one of {IMAGE_EXTENSIONS})")
  image = np.asarray(image)
  if image.ndim == 3 and image.shape[-1] == 1:
    image = image[..., 0]
  if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] not in (3, 4)):
    raise ValueError(f"image must be [H, W], [H, W, 3] or [H, W, 4], got shape {image.shape}")
  if image.shape[0] == 0 or image.shape[1] == 0:
    raise ValueError(f"image is empty: shape {image.shape}")
  if np.issubdtype(image.dtype, np.floating):
    if not np.all(np.isfinite(image)):
      raise ValueError("image contains NaN or Inf")
    image = np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
  elif image.dtype == np.bool_:
    image = image.astype(np.uint8) * 255
  elif image.dtype not in (np.uint8, np.uint16):
    raise ValueError(f"image dtype must be uint8, uint16, bool or float, got {image.dtype}")
  if image.ndim == 3:
    code = cv2.COLOR_RGB2BGR if image.shape[-1] == 3 else cv2.COLOR_RGBA2BGRA
    image = cv2.cvtColor(np.ascontiguousarray(image), code)
  ok, buffer = cv2.imencode(extension, image)
  if not ok:
    raise ValueError(f"OpenCV could not encode a {image.shape} {image.dtype} image as {extension}")
  return buffer.tobytes()


def write_image(path: PathLike, image: np.ndarray) -> pathlib.Path:
  """Encodes ``image`` (see :func:`encode_image`) by the path's extension, atomically."""
  path = pathlib.Path(path)
  return write_bytes(path, encode_image(image, path.suffix))
