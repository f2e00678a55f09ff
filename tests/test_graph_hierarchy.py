"""Tests for facegcn_tf.graph.hierarchy (multi-level build and on-disk cache)."""

import math
import pathlib

import numpy as np
import pytest
import trimesh

from facegcn_tf.graph import hierarchy
from facegcn_tf.graph import laplacian


@pytest.fixture(scope="module")
def sphere():
  s = trimesh.creation.icosphere(subdivisions=4)  # 2562 vertices
  return np.asarray(s.vertices), np.asarray(s.faces)


def _same_matrix(a, b):
  return a.shape == b.shape and (a != b).nnz == 0 and a.dtype == b.dtype


def _assert_identical(h1, h2):
  assert h1.num_vertices == h2.num_vertices
  for a, b in zip(h1.vertices + h1.faces, h2.vertices + h2.faces):
    np.testing.assert_array_equal(a, b)
  for name in ("down", "up", "adjacency", "laplacians"):
    for a, b in zip(getattr(h1, name), getattr(h2, name)):
      assert _same_matrix(a, b), name


def test_levels_shapes_and_operators(sphere, tmp_path):
  v, f = sphere
  h = hierarchy.build_hierarchy(v, f, factors=(4, 4, 4), cache_dir=tmp_path)
  expected = [2562]
  for _ in range(3):
    expected.append(math.ceil(expected[-1] / 4))
  assert h.num_vertices == tuple(expected) == (2562, 641, 161, 41)
  assert h.num_levels == 4
  assert len(h.down) == len(h.up) == 3 and len(h.laplacians) == len(h.adjacency) == 4
  for i in range(3):
    n_fine, n_coarse = h.num_vertices[i], h.num_vertices[i + 1]
    assert h.down[i].shape == (n_coarse, n_fine)
    assert h.up[i].shape == (n_fine, n_coarse)
    # level i+1 vertices are exactly the rows D_i selects
    np.testing.assert_array_equal(h.down[i] @ h.vertices[i], h.vertices[i + 1])
    # U_i D_i reproduces the kept vertices and rows of U sum to one
    ud = (h.up[i] @ h.down[i]).toarray()
    kept = h.down[i].indices
    np.testing.assert_allclose(ud[kept, kept], 1.0)
    np.testing.assert_allclose(np.asarray(h.up[i].sum(axis=1)).ravel(), 1.0, atol=1e-6)
  for i in range(4):
    n = h.num_vertices[i]
    assert h.faces[i].max() < n
    ref_w = laplacian.adjacency_matrix(h.faces[i], n)
    assert (h.adjacency[i] != ref_w).nnz == 0
    ref_l = laplacian.normalized_laplacian(ref_w)
    np.testing.assert_allclose(h.laplacians[i].toarray(), ref_l.toarray(), atol=1e-12)
    # normalised, not rescaled: unit diagonal
    np.testing.assert_allclose(h.laplacians[i].diagonal(), 1.0)


def test_second_build_loads_the_cache_file(sphere, tmp_path):
  v, f = sphere
  factors = (4, 4)
  path = hierarchy.cache_path(v, f, factors, cache_dir=tmp_path)
  assert not path.exists()
  h1 = hierarchy.build_hierarchy(v, f, factors=factors, cache_dir=tmp_path)
  assert path.is_file()
  assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left
  stat1 = path.stat()
  h2 = hierarchy.build_hierarchy(v, f, factors=factors, cache_dir=tmp_path)
  stat2 = path.stat()
  # not rewritten (an atomic rewrite would change the inode and mtime)
  assert (stat1.st_ino, stat1.st_mtime_ns) == (stat2.st_ino, stat2.st_mtime_ns)
  _assert_identical(h1, h2)
  uncached = hierarchy.build_hierarchy(v, f, factors=factors, use_cache=False)
  _assert_identical(h1, uncached)

  # Prove the data really comes from the file: tamper with one array in it.
  with np.load(path) as z:
    arrays = dict(z)
  arrays["vertices_1"] = arrays["vertices_1"] + 123.0
  with open(path, "wb") as fh:
    np.savez(fh, **arrays)
  h3 = hierarchy.build_hierarchy(v, f, factors=factors, cache_dir=tmp_path)
  np.testing.assert_allclose(h3.vertices[1], h1.vertices[1] + 123.0)


def test_corrupt_cache_is_rebuilt(sphere, tmp_path):
  v, f = sphere
  path = hierarchy.cache_path(v, f, (4,), cache_dir=tmp_path)
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_bytes(b"not a zip file")
  h = hierarchy.build_hierarchy(v, f, factors=(4,), cache_dir=tmp_path)
  assert h.num_vertices == (2562, 641)
  with np.load(path) as z:  # replaced by a valid file
    assert int(z["num_levels"]) == 2


def test_cache_key_changes_with_mesh_and_factors(sphere, tmp_path):
  v, f = sphere
  base = hierarchy.cache_key(v, f, (4, 4))
  assert hierarchy.cache_key(v.copy(), f.copy(), [4, 4]) == base
  assert hierarchy.cache_key(v.astype(np.float32).astype(np.float64), f, (4, 4)) != base
  moved = v.copy()
  moved[7, 0] += 1e-9
  assert hierarchy.cache_key(moved, f, (4, 4)) != base
  assert hierarchy.cache_key(v, f[:, [0, 2, 1]], (4, 4)) != base
  assert hierarchy.cache_key(v, f, (4, 3)) != base
  assert hierarchy.cache_key(v, f, (4, 4, 4)) != base
  assert (hierarchy.cache_path(moved, f, (4, 4), tmp_path)
          != hierarchy.cache_path(v, f, (4, 4), tmp_path))


def test_default_cache_dir_follows_env(monkeypatch, tmp_path):
  monkeypatch.setenv("FACEGCN_CACHE", str(tmp_path))
  assert hierarchy.default_cache_dir() == tmp_path / "hierarchy"
  s = trimesh.creation.icosphere(subdivisions=2)
  h = hierarchy.build_hierarchy(s.vertices, s.faces, factors=(4,))
  assert h.num_vertices == (162, 41)
  assert len(list((tmp_path / "hierarchy").glob("hierarchy_*.npz"))) == 1
  monkeypatch.delenv("FACEGCN_CACHE")
  assert hierarchy.default_cache_dir() == (
      pathlib.Path.home() / ".cache" / "facegcn_tf" / "hierarchy")


def test_hierarchy_is_frozen(sphere):
  s = trimesh.creation.icosphere(subdivisions=1)
  h = hierarchy.build_hierarchy(s.vertices, s.faces, factors=(2,), use_cache=False)
  with pytest.raises(AttributeError):
    h.vertices = ()


def test_bad_arguments(sphere, tmp_path):
  v, f = sphere
  with pytest.raises(ValueError, match="factors"):
    hierarchy.build_hierarchy(v, f, factors=(4, 0), cache_dir=tmp_path)
  with pytest.raises(ValueError, match="factors"):
    hierarchy.build_hierarchy(v, f, factors=4, cache_dir=tmp_path)
  with pytest.raises(ValueError, match="shape"):
    hierarchy.build_hierarchy(v[:, :2], f, cache_dir=tmp_path)
  # 2562 -> 641 -> 161 -> 41 -> 11 -> 3 -> 1 (< 3): the sixth level fails
  with pytest.raises(ValueError, match="level 6"):
    hierarchy.build_hierarchy(v, f, factors=(4,) * 6, cache_dir=tmp_path)
  assert not any(tmp_path.iterdir())  # nothing cached for failed builds
