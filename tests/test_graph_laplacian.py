"""Tests for facegcn_tf.graph.laplacian (adjacency, normalised Laplacian, SparseTensor)."""

import numpy as np
import pytest
import scipy.sparse as sp
import tensorflow as tf
import trimesh

from facegcn_tf.graph import laplacian


def test_adjacency_counts_faces_per_edge():
  # two triangles sharing edge (1, 2): that edge has weight 2, the rim weight 1
  faces = np.array([[0, 1, 2], [2, 1, 3]])
  w = laplacian.adjacency_matrix(faces, 5).toarray()
  expected = np.zeros((5, 5))
  for i, j, val in [(0, 1, 1), (0, 2, 1), (1, 2, 2), (1, 3, 1), (2, 3, 1)]:
    expected[i, j] = expected[j, i] = val
  np.testing.assert_array_equal(w, expected)
  # orientation does not matter
  flipped = laplacian.adjacency_matrix(np.array([[0, 1, 2], [1, 2, 3]]), 5).toarray()
  np.testing.assert_array_equal(flipped, expected)


def test_normalized_laplacian_properties_on_sphere():
  s = trimesh.creation.icosphere(subdivisions=2)
  w = laplacian.adjacency_matrix(s.faces, len(s.vertices))
  assert set(np.unique(w.data)) == {2.0}  # closed manifold: every edge has 2 faces
  lap = laplacian.normalized_laplacian(w)
  dense = lap.toarray()
  np.testing.assert_allclose(dense, dense.T, atol=1e-12)
  np.testing.assert_allclose(np.diag(dense), 1.0)
  eig = np.linalg.eigvalsh(dense)
  assert eig.min() > -1e-10 and eig.max() < 2.0 + 1e-10
  # null vector is D^{1/2} 1; one connected component -> one zero eigenvalue
  deg = np.asarray(w.sum(axis=1)).ravel()
  np.testing.assert_allclose(dense @ np.sqrt(deg), 0.0, atol=1e-12)
  assert np.sum(eig < 1e-9) == 1
  # off-diagonals are -w_ij / sqrt(d_i d_j)
  i, j = w.nonzero()
  np.testing.assert_allclose(dense[i, j], -w.toarray()[i, j] / np.sqrt(deg[i] * deg[j]))


def test_laplacian_of_bipartite_graph_reaches_two_and_regular_graph_kills_ones():
  # 4-cycle: bipartite and 2-regular -> spectrum {0, 1, 1, 2}, L 1 = 0
  ring = sp.csr_matrix(np.array([[0, 1, 0, 1], [1, 0, 1, 0], [0, 1, 0, 1], [1, 0, 1, 0]], float))
  lap = laplacian.normalized_laplacian(ring).toarray()
  np.testing.assert_allclose(np.linalg.eigvalsh(lap), [0, 1, 1, 2], atol=1e-12)
  np.testing.assert_allclose(lap @ np.ones(4), 0.0, atol=1e-12)


def test_isolated_vertex_gets_unit_diagonal():
  w = laplacian.adjacency_matrix(np.array([[0, 1, 2]]), 4)
  lap = laplacian.normalized_laplacian(w).toarray()
  assert lap[3, 3] == 1.0 and np.all(lap[3, :3] == 0)


def test_rescale_laplacian():
  lap = laplacian.normalized_laplacian(
      laplacian.adjacency_matrix(trimesh.creation.icosphere(subdivisions=1).faces, 42))
  scaled = laplacian.rescale_laplacian(lap).toarray()
  np.testing.assert_allclose(scaled, lap.toarray() - np.eye(42), atol=1e-12)
  eig = np.linalg.eigvalsh(scaled)
  assert eig.min() >= -1 - 1e-10 and eig.max() <= 1 + 1e-10
  np.testing.assert_allclose(laplacian.rescale_laplacian(lap, lmax=4.0).toarray(),
                             0.5 * lap.toarray() - np.eye(42), atol=1e-12)
  with pytest.raises(ValueError, match="lmax"):
    laplacian.rescale_laplacian(lap, lmax=0)


def test_to_sparse_tensor_roundtrip():
  rng = np.random.default_rng(0)
  dense = rng.random((6, 9)) * (rng.random((6, 9)) < 0.3)
  m = sp.csc_matrix(dense)  # column-major storage: must come out row-major ordered
  st = laplacian.to_sparse_tensor(m)
  assert st.dtype == tf.float32
  assert st.dense_shape.numpy().tolist() == [6, 9]
  idx = st.indices.numpy()
  assert np.all(np.diff(idx[:, 0] * 9 + idx[:, 1]) > 0)  # canonical order
  np.testing.assert_allclose(tf.sparse.to_dense(st).numpy(), dense.astype(np.float32))
  with pytest.raises(ValueError, match="scipy.sparse"):
    laplacian.to_sparse_tensor(dense)


def test_bad_inputs():
  with pytest.raises(ValueError, match="faces"):
    laplacian.adjacency_matrix(np.array([[0, 1]]), 3)
  with pytest.raises(ValueError, match=r"\[0, 3\)"):
    laplacian.adjacency_matrix(np.array([[0, 1, 3]]), 3)
  with pytest.raises(ValueError, match="symmetric"):
    laplacian.normalized_laplacian(sp.csr_matrix(np.array([[0, 1.0], [0, 0]])))
  with pytest.raises(ValueError, match="non-negative"):
    laplacian.normalized_laplacian(sp.csr_matrix(np.array([[0, -1.0], [-1.0, 0]])))
  with pytest.raises(ValueError, match="square"):
    laplacian.normalized_laplacian(sp.csr_matrix(np.ones((2, 3))))
