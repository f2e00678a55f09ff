"""Files on the local disk or on a TensorFlow file system (``gs://``, ``s3://``, ``hdfs://``).

A path with a scheme (``gs://bucket/data/faces-00000.tfrecord``) is read and written through
`tf.io.gfile`: Google Cloud Storage works out of the box (TensorFlow's own client, with the
credentials of the environment), S3 and Azure once ``tensorflow-io`` is installed, and
``ram://`` (TensorFlow's in-memory file system) in the tests. Any other path is a local one
and keeps the local rules: writes are atomic (`atomic`), folders are made on demand.

An object store has no rename, but an object appears whole when its upload ends, so on
either kind of path a reader sees the old file or the complete new one, never a part.
"""

import contextlib
import glob as glob_lib
import os
import pathlib
import posixpath
import re
from typing import Any, Iterator, List, Optional, Union

import tensorflow as tf

from facegcn_tf import atomic

_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://")


def is_remote(path) -> bool:
  """True for a path with a scheme (``gs://...``), which `tf.io.gfile` reads and writes."""
  return bool(_SCHEME.match(str(path)))


def as_path(path) -> Union[pathlib.Path, str]:
  """A local path as a `pathlib.Path`, a URL as it is (a `pathlib.Path` folds its ``//``)."""
  return str(path) if is_remote(path) else pathlib.Path(path)


def join(base: str, *parts: str) -> str:
  """`os.path.join`, with ``/`` after a scheme."""
  return posixpath.join(base, *parts) if is_remote(base) else os.path.join(base, *parts)


def basename(path: str) -> str:
  return posixpath.basename(path) if is_remote(path) else os.path.basename(path)


def dirname(path: str) -> str:
  return posixpath.dirname(path) if is_remote(path) else os.path.dirname(path)


def absolute(path: str) -> str:
  """An absolute local path, or a URL without its trailing ``/``."""
  return path.rstrip("/") if is_remote(path) else os.path.abspath(path)


def exists(path: str) -> bool:
  return tf.io.gfile.exists(path) if is_remote(path) else os.path.exists(path)


def is_dir(path: str) -> bool:
  return tf.io.gfile.isdir(path) if is_remote(path) else os.path.isdir(path)


def is_file(path: str) -> bool:
  if is_remote(path):
    return tf.io.gfile.exists(path) and not tf.io.gfile.isdir(path)
  return os.path.isfile(path)


def size(path: str) -> Optional[int]:
  """The file's size in bytes; None when it does not exist (or is a folder)."""
  if not is_remote(path):
    return os.path.getsize(path) if os.path.isfile(path) else None
  try:
    stat = tf.io.gfile.stat(path)
  except tf.errors.NotFoundError:
    return None
  return None if stat.is_directory else int(stat.length)


def read_bytes(path: str) -> bytes:
  """The file's bytes.

  Raises:
    FileNotFoundError: no such file; OSError: it cannot be read (remote paths too).
  """
  if not is_remote(path):
    with open(path, "rb") as f:
      return f.read()
  try:
    with tf.io.gfile.GFile(path, "rb") as f:
      return f.read()
  except tf.errors.NotFoundError:
    raise FileNotFoundError(f"no such file: '{path}'") from None
  except tf.errors.OpError as err:   # permission, network: an OSError like a local one
    raise OSError(f"cannot read '{path}': {err.message}") from None


def read_text(path: str, encoding: str = "utf-8") -> str:
  return read_bytes(path).decode(encoding)


def makedirs(path: str) -> None:
  """Creates a folder and its parents (a no-op where it exists; object stores need none)."""
  if is_remote(path):
    tf.io.gfile.makedirs(path)
  else:
    os.makedirs(path, exist_ok=True)


@contextlib.contextmanager
def open_write(path: str, mode: str = "wb") -> Iterator[Any]:
  """``with open_write(p, "w") as f``: a file written atomically (a local path; `atomic`)
  or uploaded as one object when the block ends (a remote one), its folder made if needed.
  Mode ``"wb"`` or ``"w"``."""
  parent = dirname(path)
  if parent and not exists(parent):
    makedirs(parent)
  if not is_remote(path):
    with atomic.atomic_write(path, mode) as f:
      yield f
    return
  with tf.io.gfile.GFile(path, mode) as f:
    f.write(b"" if mode == "wb" else "")   # GFile makes the file at its first write
    yield f


def write_bytes(path: str, data: bytes) -> None:
  """Writes a whole file (see `open_write`)."""
  with open_write(path) as f:
    f.write(data)


def write_text(path: str, text: str, encoding: str = "utf-8") -> None:
  write_bytes(path, text.encode(encoding))


def copy(source: str, destination: str) -> None:
  """Copies one file between any two paths (local or remote), replacing the destination."""
  if not is_remote(source) and not is_remote(destination):
    atomic.write_bytes(destination, read_bytes(source))
    return
  parent = dirname(destination)
  if parent:
    makedirs(parent)
  tf.io.gfile.copy(source, destination, overwrite=True)


def rename(source: str, destination: str) -> None:
  """Moves a file, replacing the destination (atomic on a local file system; on an object
  store a copy and a delete)."""
  if is_remote(source) or is_remote(destination):
    tf.io.gfile.rename(source, destination, overwrite=True)
  else:
    os.replace(source, destination)


def remove(path: str) -> None:
  """Deletes a file (FileNotFoundError when there is none)."""
  if not is_remote(path):
    os.remove(path)
    return
  try:
    tf.io.gfile.remove(path)
  except tf.errors.NotFoundError:
    raise FileNotFoundError(f"no such file: '{path}'") from None


def escape(path: str) -> str:
  """`path` with glob's special characters escaped (a local path; URLs unchanged)."""
  return path if is_remote(path) else glob_lib.escape(path)


def glob(pattern: str) -> List[str]:
  """The paths matching a glob pattern, sorted (``*``, ``?`` and ``[...]``; no ``**``)."""
  if is_remote(pattern):
    return sorted(tf.io.gfile.glob(pattern))
  return sorted(glob_lib.glob(pattern))


def list_files(folder: str) -> List[str]:
  """Every file below `folder` (sub-folders included), as sorted ``/``-separated paths
  relative to it."""
  folder = folder.rstrip("/") if is_remote(folder) else os.path.normpath(folder)
  out = []
  walk = tf.io.gfile.walk(folder) if is_remote(folder) else os.walk(folder)
  for root, _, files in walk:
    rel = root[len(folder):].replace(os.sep, "/").strip("/")
    out.extend(f"{rel}/{name}" if rel else name for name in files)
  return sorted(out)
