"""Mesh adjacency, normalised graph Laplacian, and scipy -> tf.SparseTensor.

Conventions follow CoMA / the official GCN code: the edge weight between two
vertices is the number of faces sharing that edge (1 on the border, 2 inside a
manifold mesh), and `L = I - D^{-1/2} W D^{-1/2}`.
"""

import numpy as np
import scipy.sparse as sp
import tensorflow as tf


def adjacency_matrix(faces, num_vertices):
  """Face-count weighted vertex adjacency.

  Args:
    faces: `int [F, 3]` indices in `[0, num_vertices)`.
    num_vertices: V.

  Returns:
    `scipy.sparse.csr_matrix [V, V]` float64, symmetric, zero diagonal;
    `W[i, j]` = number of faces containing edge (i, j).

  Raises:
    ValueError: malformed faces.
  """
  f = np.asarray(faces)
  if f.ndim != 2 or f.shape[1] != 3 or not np.issubdtype(f.dtype, np.integer):
    raise ValueError(f"faces must be an integer array [F, 3], got {f.dtype} {f.shape}")
  if f.size and (f.min() < 0 or f.max() >= num_vertices):
    raise ValueError(f"face indices must lie in [0, {num_vertices})")
  f = f.astype(np.int64)
  i = np.concatenate([f[:, 0], f[:, 1], f[:, 2]])
  j = np.concatenate([f[:, 1], f[:, 2], f[:, 0]])
  off = i != j
  i, j = i[off], j[off]
  w = sp.coo_matrix((np.ones(i.size), (i, j)), shape=(num_vertices, num_vertices)).tocsr()
  # Each face adds its edge once in one direction; W + Wᵀ counts faces per edge.
  w = (w + w.T).tocsr()
  w.sum_duplicates()
  return w


def normalized_laplacian(adjacency):
  """`L = I - D^{-1/2} W D^{-1/2}` for a symmetric non-negative W.

  Args:
    adjacency: `[V, V]` scipy sparse (or dense) symmetric weights.

  Returns:
    `scipy.sparse.csr_matrix [V, V]` float64; symmetric PSD with eigenvalues
    in [0, 2]. An isolated vertex (degree 0) gets `L[i, i] = 1`.

  Raises:
    ValueError: non-square, negative or non-symmetric weights.
  """
  w = sp.csr_matrix(adjacency, dtype=np.float64)
  if w.shape[0] != w.shape[1]:
    raise ValueError(f"adjacency must be square, got {w.shape}")
  if w.nnz and w.data.min() < 0:
    raise ValueError("adjacency weights must be non-negative")
  if w.nnz and abs(w - w.T).max() > 1e-12 * max(abs(w).max(), 1.0):
    raise ValueError("adjacency must be symmetric")
  deg = np.asarray(w.sum(axis=1)).ravel()
  inv_sqrt = np.zeros_like(deg)
  np.divide(1.0, np.sqrt(deg), out=inv_sqrt, where=deg > 0)
  d = sp.diags(inv_sqrt)
  lap = sp.identity(w.shape[0], format="csr") - d @ w @ d
  lap = sp.csr_matrix(lap)
  lap.sum_duplicates()
  lap.eliminate_zeros()
  return lap


def rescale_laplacian(laplacian, lmax=2.0):
  """`L̃ = 2 L / lmax - I`, mapping the spectrum [0, lmax] onto [-1, 1].

  Args:
    laplacian: `[V, V]` scipy sparse.
    lmax: largest eigenvalue (2 bounds every normalised Laplacian).

  Returns:
    `scipy.sparse.csr_matrix [V, V]`.
  """
  if not lmax > 0:
    raise ValueError(f"lmax must be positive, got {lmax}")
  lap = sp.csr_matrix(laplacian)
  if lap.shape[0] != lap.shape[1]:
    raise ValueError(f"laplacian must be square, got {lap.shape}")
  out = sp.csr_matrix((2.0 / lmax) * lap - sp.identity(lap.shape[0], format="csr"))
  out.eliminate_zeros()
  return out


def to_sparse_tensor(matrix, dtype=tf.float32):
  """scipy sparse `[R, C]` -> canonically ordered `tf.SparseTensor` (float32)."""
  if not sp.issparse(matrix):
    raise ValueError(f"expected a scipy.sparse matrix, got {type(matrix).__name__}")
  coo = sp.coo_matrix(matrix)
  coo.sum_duplicates()
  indices = np.stack([coo.row, coo.col], axis=1).astype(np.int64)
  st = tf.SparseTensor(
      indices=indices,
      values=tf.constant(coo.data, dtype=dtype),
      dense_shape=np.asarray(coo.shape, dtype=np.int64))
  return tf.sparse.reorder(st)
