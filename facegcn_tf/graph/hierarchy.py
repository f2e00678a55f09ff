"""CoMA-style mesh hierarchy (meshes, D/U resampling, adjacency, Laplacians).

Level 0 is the input (finest) mesh; level i+1 is level i decimated by
`factors[i]`. Building the hierarchy of a 35k-vertex mesh takes seconds, and
it is cached on disk as one `.npz` per (mesh, factors) so that training,
fitting and export all see the very same matrices.
"""

import dataclasses
import hashlib
import logging
import os
import pathlib
import tempfile
import zipfile

import numpy as np
import scipy.sparse as sp

from facegcn_tf.graph import laplacian as laplacian_lib
from facegcn_tf.graph import mesh_decimation
from facegcn_tf.graph import mesh_validation
from facegcn_tf.graph import upsampling

# Bump when the algorithm or the file layout changes: old cache files are then
# simply not found (the version is part of the key).
FORMAT_VERSION = 1
_CACHE_ENV = "FACEGCN_CACHE"


@dataclasses.dataclass(frozen=True)
class MeshHierarchy:
  """Meshes and graph operators of every level (index 0 = finest).

  Attributes:
    vertices: per level `float64 [n_i, 3]`; level i+1 is a subset of level i.
    faces: per level `int64 [f_i, 3]`.
    down: per step i (L-1 entries) D_i, csr float32 `[n_{i+1}, n_i]`, 0/1 rows.
    up: per step i U_i, csr float32 `[n_i, n_{i+1}]`, rows sum to 1.
    adjacency: per level csr float64 `[n_i, n_i]`, face-count edge weights.
    laplacians: per level normalised Laplacian `I - D^-1/2 W D^-1/2`, csr
      float64 `[n_i, n_i]` (not rescaled; ChebConv rescales).
  """
  vertices: tuple
  faces: tuple
  down: tuple
  up: tuple
  adjacency: tuple
  laplacians: tuple

  @property
  def num_levels(self):
    return len(self.vertices)

  @property
  def num_vertices(self):
    """Vertex count per level, e.g. (35709, 8928, 2232, 558, 140)."""
    return tuple(int(v.shape[0]) for v in self.vertices)


def default_cache_dir():
  """`$FACEGCN_CACHE/hierarchy` if set, else `~/.cache/facegcn_tf/hierarchy`."""
  root = os.environ.get(_CACHE_ENV)
  if root:
    return pathlib.Path(root).expanduser() / "hierarchy"
  return pathlib.Path.home() / ".cache" / "facegcn_tf" / "hierarchy"


def _check_factors(factors):
  try:
    factors = tuple(factors)
  except TypeError:
    raise ValueError(f"factors must be a sequence of numbers >= 1, got {factors!r}") from None
  for fac in factors:
    if isinstance(fac, bool) or not isinstance(fac, (int, float, np.integer, np.floating)) \
        or not fac >= 1:
      raise ValueError(f"factors must be numbers >= 1, got {factors!r}")
  return tuple(int(f) if float(f).is_integer() else float(f) for f in factors)


def cache_key(vertices, faces, factors):
  """sha256 hex of format version, factors and the canonical mesh bytes."""
  v = np.ascontiguousarray(vertices, dtype=np.float64)
  f = np.ascontiguousarray(faces, dtype=np.int64)
  h = hashlib.sha256()
  h.update(f"facegcn_tf.graph.hierarchy v{FORMAT_VERSION}\n".encode())
  h.update(f"factors={','.join(repr(x) for x in _check_factors(factors))}\n".encode())
  h.update(f"V={v.shape} F={f.shape}\n".encode())
  h.update(v.tobytes())
  h.update(f.tobytes())
  return h.hexdigest()


def cache_path(vertices, faces, factors=(4, 4, 4, 4), cache_dir=None):
  """Where `build_hierarchy` stores this mesh's hierarchy."""
  root = pathlib.Path(cache_dir) if cache_dir is not None else default_cache_dir()
  return root / f"hierarchy_{cache_key(vertices, faces, factors)[:32]}.npz"


def compute_hierarchy(vertices, faces, factors=(4, 4, 4, 4)):
  """Builds the hierarchy (no caching).

  Args:
    vertices: `float [V, 3]`; faces: `int [F, 3]` (every vertex used).
    factors: one decimation factor (>= 1) per coarser level.

  Returns:
    `MeshHierarchy` with `len(factors) + 1` levels.
  """
  factors = _check_factors(factors)
  v, f = mesh_validation.check_mesh(vertices, faces)
  verts, faces_, down, up = [v], [f], [], []
  for level, factor in enumerate(factors):
    try:
      dec = mesh_decimation.decimate(v, f, factor)
    except ValueError as err:
      raise ValueError(f"level {level + 1}: {err}") from None
    coarse = v[dec.kept]
    down.append(dec.down)
    up.append(upsampling.upsampling_matrix(v, coarse, dec.faces, kept=dec.kept))
    v, f = coarse, dec.faces
    verts.append(v)
    faces_.append(f)
  adjacency = [laplacian_lib.adjacency_matrix(fc, vc.shape[0]) for vc, fc in zip(verts, faces_)]
  laps = [laplacian_lib.normalized_laplacian(a) for a in adjacency]
  return MeshHierarchy(
      vertices=tuple(verts), faces=tuple(faces_), down=tuple(down), up=tuple(up),
      adjacency=tuple(adjacency), laplacians=tuple(laps))


def _pack(h, key):
  arrays = {"key": np.array(key), "format_version": np.array(FORMAT_VERSION),
            "num_levels": np.array(h.num_levels)}
  for i, (v, f) in enumerate(zip(h.vertices, h.faces)):
    arrays[f"vertices_{i}"] = v
    arrays[f"faces_{i}"] = f
  for name in ("down", "up", "adjacency", "laplacians"):
    for i, m in enumerate(getattr(h, name)):
      m = sp.csr_matrix(m)
      arrays[f"{name}_{i}_data"] = m.data
      arrays[f"{name}_{i}_indices"] = m.indices
      arrays[f"{name}_{i}_indptr"] = m.indptr
      arrays[f"{name}_{i}_shape"] = np.asarray(m.shape, dtype=np.int64)
  return arrays


def _unpack(z, key):
  if str(z["key"]) != key or int(z["format_version"]) != FORMAT_VERSION:
    raise ValueError("cache file belongs to another mesh or format")
  levels = int(z["num_levels"])

  def mats(name, count):
    return tuple(
        sp.csr_matrix((z[f"{name}_{i}_data"], z[f"{name}_{i}_indices"], z[f"{name}_{i}_indptr"]),
                      shape=tuple(z[f"{name}_{i}_shape"]))
        for i in range(count))

  return MeshHierarchy(
      vertices=tuple(z[f"vertices_{i}"] for i in range(levels)),
      faces=tuple(z[f"faces_{i}"] for i in range(levels)),
      down=mats("down", levels - 1), up=mats("up", levels - 1),
      adjacency=mats("adjacency", levels), laplacians=mats("laplacians", levels))


def load_cached(path, key):
  """Reads a cache file; None if it is missing, unreadable or for another key."""
  path = pathlib.Path(path)
  if not path.is_file():
    return None
  try:
    with np.load(path, allow_pickle=False) as z:
      return _unpack(z, key)
  except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as err:
    logging.warning("ignoring unreadable hierarchy cache %s (%s); rebuilding", path, err)
    return None


def save_cached(path, hierarchy, key):
  """Writes the cache atomically (temp file in the same folder + os.replace)."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix=path.stem + ".", suffix=".tmp", dir=path.parent)
  try:
    with os.fdopen(fd, "wb") as fh:
      np.savez(fh, **_pack(hierarchy, key))
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise


def build_hierarchy(vertices, faces, factors=(4, 4, 4, 4), cache_dir=None, use_cache=True):
  """Mesh hierarchy of a template mesh, loaded from / saved to a disk cache.

  Args:
    vertices: `float [V, 3]`; faces: `int [F, 3]` (every vertex used by a face).
    factors: decimation factor per coarser level; a 35,709-vertex mesh with
      (4, 4, 4, 4) gives 35709 -> 8928 -> 2232 -> 558 -> 140 vertices.
    cache_dir: folder of the `.npz` cache files (default: `default_cache_dir()`).
    use_cache: False to always compute and never touch the disk.

  Returns:
    `MeshHierarchy`.

  Raises:
    ValueError: bad mesh or factors, or a level would have no triangles left.
  """
  factors = _check_factors(factors)
  v, f = mesh_validation.check_mesh(vertices, faces)
  if not use_cache:
    return compute_hierarchy(v, f, factors)
  key = cache_key(v, f, factors)
  path = cache_path(v, f, factors, cache_dir)
  cached = load_cached(path, key)
  if cached is not None:
    return cached
  hierarchy = compute_hierarchy(v, f, factors)
  try:
    save_cached(path, hierarchy, key)
  except OSError as err:
    logging.warning("could not write hierarchy cache %s (%s); continuing without", path, err)
  return hierarchy
