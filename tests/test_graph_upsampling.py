"""Tests for facegcn_tf.graph.upsampling (closest point + barycentric U)."""

import numpy as np
import pytest
import trimesh

from facegcn_tf.graph import mesh_decimation
from facegcn_tf.graph import upsampling


def _sphere_level(subdivisions=4, factor=4):
  s = trimesh.creation.icosphere(subdivisions=subdivisions)
  v, f = np.asarray(s.vertices), np.asarray(s.faces)
  dec = mesh_decimation.decimate(v, f, factor)
  return v, f, dec


def _brute_force_distance(points, vertices, faces):
  tris = vertices[faces]
  out = np.empty(points.shape[0])
  for i, p in enumerate(points):
    cp = trimesh.triangles.closest_point(tris, np.repeat(p[None], len(tris), axis=0))
    out[i] = np.linalg.norm(cp - p, axis=1).min()
  return out


def test_closest_triangles_matches_brute_force():
  rng = np.random.default_rng(1)
  s = trimesh.creation.icosphere(subdivisions=2)
  v = np.asarray(s.vertices) * (1.0 + 0.3 * rng.random((len(s.vertices), 1)))  # lumpy
  f = np.asarray(s.faces)
  # add one long sliver-ish triangle region by stretching a vertex
  v[0] *= 2.5
  points = rng.normal(size=(150, 3)) * rng.choice([0.3, 1.0, 3.0], size=(150, 1))
  face_idx, closest, dist = upsampling.closest_triangles(points, v, f)
  expected = _brute_force_distance(points, v, f)
  np.testing.assert_allclose(dist, expected, rtol=1e-9, atol=1e-12)
  np.testing.assert_allclose(np.linalg.norm(closest - points, axis=1), dist, atol=1e-12)
  # the reported point lies on the reported triangle
  on_tri = trimesh.triangles.closest_point(v[f[face_idx]], closest)
  np.testing.assert_allclose(on_tri, closest, atol=1e-9)


def test_barycentric_weights_reconstruct_points():
  rng = np.random.default_rng(2)
  tris = rng.normal(size=(50, 3, 3))
  w_true = rng.dirichlet([1, 1, 1], size=50)
  pts = np.einsum("pk,pkd->pd", w_true, tris)
  np.testing.assert_allclose(upsampling.barycentric_weights(tris, pts), w_true, atol=1e-9)
  # a degenerate (collinear) triangle puts the weight on its longest edge
  line = np.array([[[0.0, 0, 0], [1, 0, 0], [2, 0, 0]]])
  w = upsampling.barycentric_weights(line, np.array([[0.5, 0, 0]]))
  np.testing.assert_allclose(w, [[0.75, 0.0, 0.25]], atol=1e-12)


def test_upsampling_rows_and_kept_vertices():
  v, _, dec = _sphere_level()
  up = upsampling.upsampling_matrix(v, v[dec.kept], dec.faces, kept=dec.kept)
  assert up.shape == (v.shape[0], dec.kept.size)
  dense = up.toarray()
  assert dense.min() >= 0.0
  np.testing.assert_allclose(dense.sum(axis=1), 1.0, atol=1e-6)
  assert np.diff(up.indptr).max() <= 3
  # kept vertices map to themselves with weight exactly 1
  np.testing.assert_array_equal(dense[dec.kept], np.eye(dec.kept.size, dtype=np.float32))
  # U D is the identity on kept vertices, and each non-zero column of a row
  # belongs to one coarse triangle
  face_sets = {frozenset(t) for t in dec.faces.tolist()}
  for row in np.flatnonzero(np.diff(up.indptr) == 3)[:200]:
    cols = up.indices[up.indptr[row]:up.indptr[row + 1]]
    assert frozenset(cols.tolist()) in face_sets


def test_upsampling_reproduces_linear_signal_on_sphere():
  v, _, dec = _sphere_level(subdivisions=4)
  up = upsampling.upsampling_matrix(v, v[dec.kept], dec.faces, kept=dec.kept)
  coeffs = np.array([[0.7, -1.2], [0.4, 0.3], [-0.5, 2.0]])
  signal = v @ coeffs + np.array([3.0, -1.0])  # [V, 2] linear in xyz
  recon = up @ (dec.down @ signal)
  rel = np.linalg.norm(recon - signal) / np.linalg.norm(signal)
  assert rel < 0.01
  # without kept the projection alone still maps kept vertices to themselves
  up2 = upsampling.upsampling_matrix(v, v[dec.kept], dec.faces)
  np.testing.assert_allclose(up2.toarray()[dec.kept], np.eye(dec.kept.size), atol=1e-5)


def test_upsampling_is_exact_on_a_plane():
  # fine points lying inside a flat coarse triangle fan are interpolated exactly
  coarse_v = np.array([[0, 0, 0], [2, 0, 0], [2, 2, 0], [0, 2, 0], [1, 1, 0.0]])
  coarse_f = np.array([[0, 1, 4], [1, 2, 4], [2, 3, 4], [3, 0, 4]])
  rng = np.random.default_rng(3)
  fine = np.concatenate([rng.random((40, 2)) * 2, np.zeros((40, 1))], axis=1)
  up = upsampling.upsampling_matrix(fine, coarse_v, coarse_f)
  np.testing.assert_allclose(up @ coarse_v, fine, atol=1e-6)


def test_bad_inputs():
  v, _, dec = _sphere_level(subdivisions=2)
  coarse = v[dec.kept]
  with pytest.raises(ValueError, match="fine_vertices"):
    upsampling.upsampling_matrix(v[:, :2], coarse, dec.faces)
  with pytest.raises(ValueError, match="kept"):
    upsampling.upsampling_matrix(v, coarse, dec.faces, kept=dec.kept[:-1])
  with pytest.raises(ValueError, match="does not match"):
    upsampling.upsampling_matrix(v, coarse, dec.faces, kept=np.roll(dec.kept, 1))
  with pytest.raises(ValueError, match="indices"):
    upsampling.upsampling_matrix(v, coarse, dec.faces + 1000)
