"""The assets/setup layer: where model files are found, fetched and converted.

This package sits above :mod:`facegcn_tf.networks`: networks are handed arrays
or an explicit file path, and everything that knows about files lives here
(:mod:`loaders` locates weights and builds the networks from them,
:mod:`identity_weights` fetches and converts the dlib weights at setup time).

Search path, first hit wins:

1. an explicit directory or file given by the caller (usually a command-line flag);
2. the directories in the environment variable ``FACEGCN_ASSETS`` (``os.pathsep``-separated);
3. ``<repo>/assets`` — filled by ``scripts/setup.sh`` (converted weights, examples);
4. ``<repo>/../shared/models`` — the development/CI checkout's shared folder.

Only the setup steps (:mod:`identity_weights`) fetch anything; a missing asset
raises :class:`facegcn_tf.errors.AssetNotFoundError` whose message says what is
missing and where it goes.
"""

import os
import pathlib
from typing import Optional, Sequence, Union

from facegcn_tf.errors import AssetNotFoundError

ENV_VAR = "FACEGCN_ASSETS"
REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
REPO_ASSETS = REPO_ROOT / "assets"
SHARED_MODELS = REPO_ROOT.parent / "shared" / "models"

PathLike = Union[str, os.PathLike]


def search_dirs(explicit: Optional[PathLike] = None) -> list:
  """Returns the asset directories in search order (existing or not)."""
  dirs = []
  if explicit:
    dirs.append(pathlib.Path(explicit).expanduser())
  env = os.environ.get(ENV_VAR, "")
  dirs.extend(pathlib.Path(p).expanduser() for p in env.split(os.pathsep) if p)
  dirs.extend([REPO_ASSETS, SHARED_MODELS])
  return dirs


def find_asset(relative_path: PathLike,
               explicit: Optional[PathLike] = None,
               how_to_get: str = "",
               alternatives: Sequence[PathLike] = ()) -> pathlib.Path:
  """Finds ``relative_path`` (or one of ``alternatives``) on the search path.

  Args:
    relative_path: path of the asset relative to an asset directory, e.g.
      ``"ict_face_light/ict_face_area.npz"``.
    explicit: a user-given file or directory. A file is returned as is if it
      exists; a directory is searched first.
    how_to_get: one sentence appended to the error saying how to obtain it.
    alternatives: other relative paths accepted in the same directories.

  Returns:
    The absolute path of the first match.

  Raises:
    AssetNotFoundError: nothing matched; the message lists where it looked.
  """
  if explicit and pathlib.Path(explicit).expanduser().is_file():
    return pathlib.Path(explicit).expanduser().resolve()
  names = [pathlib.Path(relative_path)] + [pathlib.Path(a) for a in alternatives]
  dirs = search_dirs(explicit)
  for d in dirs:
    for name in names:
      candidate = d / name
      if candidate.exists():
        return candidate.resolve()
  looked = ", ".join(str(d) for d in dirs)
  message = f"asset '{relative_path}' not found (looked in: {looked})."
  if how_to_get:
    message += " " + how_to_get
  raise AssetNotFoundError(message)


def writable_asset_dir(subdir: str = "") -> pathlib.Path:
  """Directory where setup steps write converted assets (first env dir, else <repo>/assets)."""
  env = [p for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p]
  base = pathlib.Path(env[0]).expanduser() if env else REPO_ASSETS
  out = base / subdir if subdir else base
  out.mkdir(parents=True, exist_ok=True)
  return out
