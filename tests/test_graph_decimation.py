"""Tests for facegcn_tf.graph.mesh_decimation (quadric edge-collapse subsampling)."""

import math

import numpy as np
import pytest
import trimesh

from facegcn_tf.graph import mesh_decimation
from facegcn_tf.morphable import subdivision


def _grid(n, bump=True):
  """Height-field grid, n*n vertices, 2*(n-1)^2 consistently oriented triangles."""
  x, y = np.meshgrid(np.linspace(-1, 1, n), np.linspace(-1, 1, n))
  z = 0.3 * np.sin(3 * x) * np.cos(2 * y) + 0.2 * x * x if bump else np.zeros_like(x)
  v = np.stack([x.ravel(), y.ravel(), z.ravel()], axis=1)
  idx = np.arange(n * n).reshape(n, n)
  a, b = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel()
  c, d = idx[1:, :-1].ravel(), idx[1:, 1:].ravel()
  f = np.concatenate([np.stack([a, b, d], 1), np.stack([a, d, c], 1)])
  return v, f


def _check_result(result, n_in):
  kept, faces, down = result
  m = kept.size
  assert np.all(np.diff(kept) > 0) and kept.min() >= 0 and kept.max() < n_in
  assert faces.ndim == 2 and faces.shape[1] == 3 and faces.min() >= 0 and faces.max() < m
  assert not np.any((faces[:, 0] == faces[:, 1]) | (faces[:, 1] == faces[:, 2])
                    | (faces[:, 0] == faces[:, 2]))
  # every kept vertex is used by a face; no triangle listed twice
  assert np.unique(faces).size == m
  assert np.unique(np.sort(faces, axis=1), axis=0).shape[0] == faces.shape[0]
  # D is a 0/1 selection with a single one per row, at the kept vertex
  dense = down.toarray()
  assert down.shape == (m, n_in)
  assert set(np.unique(dense)) <= {0.0, 1.0}
  np.testing.assert_array_equal(dense.sum(axis=1), np.ones(m))
  np.testing.assert_array_equal(dense.argmax(axis=1), kept)
  assert dense.sum(axis=0).max() == 1.0  # no fine vertex selected twice


@pytest.mark.parametrize("subdivisions", [3, 4])
def test_icosphere_levels_follow_ceil_rule(subdivisions):
  s = trimesh.creation.icosphere(subdivisions=subdivisions)
  v, f = np.asarray(s.vertices), np.asarray(s.faces)
  for _ in range(3):
    n = v.shape[0]
    result = mesh_decimation.decimate(v, f, 4)
    assert result.kept.size == math.ceil(n / 4)
    _check_result(result, n)
    np.testing.assert_array_equal(result.down @ v, v[result.kept])
    v, f = v[result.kept], result.faces
  # a closed sphere stays closed: Euler characteristic V - E + F = 2
  e = subdivision.unique_edges(f)[0].shape[0]
  assert v.shape[0] - e + f.shape[0] == 2


def test_grid_levels_follow_ceil_rule_with_odd_counts_and_factor_3():
  v, f = _grid(37)  # 1369 vertices
  expected = [1369]
  for factor in (4, 3, 4):
    expected.append(math.ceil(expected[-1] / factor))
    result = mesh_decimation.decimate(v, f, factor)
    _check_result(result, v.shape[0])
    v, f = v[result.kept], result.faces
    assert v.shape[0] == expected[-1]
  assert expected == [1369, 343, 115, 29]


def test_face_model_counts_rule():
  counts = [35709]
  for _ in range(4):
    counts.append(mesh_decimation.target_vertex_count(counts[-1], 4))
  assert counts == [35709, 8928, 2232, 558, 140]


def test_quadric_cost_keeps_a_sharp_spike():
  # Flat grid with one tall spike: every flat collapse is free, so a quadric
  # decimator must keep the spike tip (an arbitrary decimator would drop it
  # about half the time).
  v, f = _grid(21, bump=False)
  tip = 10 * 21 + 10
  v[tip, 2] = 1.0
  result = mesh_decimation.decimate(v, f, 2)
  assert tip in set(result.kept.tolist())
  # and it is still connected to the rest of the coarse mesh
  new_tip = int(np.flatnonzero(result.kept == tip)[0])
  assert np.any(result.faces == new_tip)


def test_vertex_quadrics_match_plane_sums():
  v, f = _grid(5)
  q = mesh_decimation.vertex_quadrics(v, f)
  vh = np.concatenate([v, np.ones((v.shape[0], 1))], axis=1)
  # each vertex lies on all its incident planes -> zero error at itself
  np.testing.assert_allclose(np.einsum("vi,vij,vj->v", vh, q, vh), 0.0, atol=1e-12)
  # explicit sum for one vertex
  i = 12
  expected = np.zeros((4, 4))
  for tri in f[np.any(f == i, axis=1)]:
    p0, p1, p2 = v[tri]
    nrm = np.cross(p1 - p0, p2 - p0)
    nrm /= np.linalg.norm(nrm)
    plane = np.append(nrm, -nrm @ p0)
    expected += np.outer(plane, plane)
  np.testing.assert_allclose(q[i], expected, atol=1e-12)
  # PSD and symmetric
  np.testing.assert_allclose(q, np.transpose(q, (0, 2, 1)), atol=1e-12)
  assert np.linalg.eigvalsh(q).min() > -1e-10


def test_factor_one_keeps_everything():
  v, f = _grid(6)
  result = mesh_decimation.decimate(v, f, 1)
  np.testing.assert_array_equal(result.kept, np.arange(36))
  assert result.faces.shape == f.shape


@pytest.mark.parametrize("vertices,faces,factor,message", [
    (np.zeros((4, 2)), [[0, 1, 2]], 4, "shape"),
    (np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0.0]]), [[0, 1, 3]], 4, "indices"),
    (np.array([[0, 0, 0], [1, 0, 0], [0, 1, np.nan]]), [[0, 1, 2]], 4, "NaN"),
    (np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0.0]]), [[0, 1, 1]], 4, "repeat"),
    (np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [5, 5, 5.0]]), [[0, 1, 2]], 4, "not used"),
    (np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0.0]]), [[0.0, 1, 2]], 4, "integer"),
])
def test_bad_meshes_raise_value_error(vertices, faces, factor, message):
  with pytest.raises(ValueError, match=message):
    mesh_decimation.decimate(vertices, faces, factor)


def test_bad_factor_and_too_small_target():
  v, f = _grid(5)
  with pytest.raises(ValueError, match="factor"):
    mesh_decimation.decimate(v, f, 0.5)
  with pytest.raises(ValueError, match="< 3"):
    mesh_decimation.decimate(v, f, 20)
