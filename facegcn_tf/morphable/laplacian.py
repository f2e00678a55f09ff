"""Cotangent Laplacian, lumped mass matrix and low-frequency eigenfunctions.

The cotangent Laplacian ``L`` (positive semi-definite: ``f^T L f`` is the
Dirichlet energy of the piecewise-linear function f) with the lumped
(barycentric) mass matrix ``M`` gives the mesh's "Fourier" basis:
``L phi = lambda M phi``; small ``lambda`` = smooth ``phi``.

Written here (a few lines of numpy/scipy.sparse) because none of the pinned
libraries ships a cotangent Laplacian (trimesh only has umbrella/graph
weights; libigl is not a dependency).
"""

from typing import Tuple

import numpy as np
import scipy.sparse
import scipy.sparse.linalg
import threadpoolctl


def cotangent_laplacian(
    vertices: np.ndarray,
    triangles: np.ndarray) -> Tuple[scipy.sparse.csr_matrix, scipy.sparse.dia_matrix]:
  """Cotangent stiffness matrix and lumped mass matrix.

  Args:
    vertices: ``[V, 3]``.
    triangles: ``[F, 3]`` int.

  Returns:
    laplacian: ``[V, V]`` csr float64, symmetric, PSD, rows sum to 0, with
      ``L[i, j] = -(cot a_ij + cot b_ij) / 2`` for an edge i-j.
    mass: ``[V, V]`` diagonal float64, one third of the area of the
      triangles around each vertex.
  """
  v = np.asarray(vertices, dtype=np.float64)
  t = np.asarray(triangles, dtype=np.int64)
  if v.ndim != 2 or v.shape[1] != 3 or t.ndim != 2 or t.shape[1] != 3:
    raise ValueError(f"expected vertices [V, 3] and triangles [F, 3], got {v.shape}, {t.shape}")
  n = len(v)
  rows, cols, vals = [], [], []
  double_area = np.linalg.norm(np.cross(v[t[:, 1]] - v[t[:, 0]], v[t[:, 2]] - v[t[:, 0]]), axis=1)
  safe = np.maximum(double_area, 1e-12 * max(double_area.max(initial=0.0), 1e-30))
  for k in range(3):
    i, j, o = t[:, (k + 1) % 3], t[:, (k + 2) % 3], t[:, k]  # edge i-j, opposite corner o
    e1, e2 = v[i] - v[o], v[j] - v[o]
    half_cot = 0.5 * np.einsum("fd,fd->f", e1, e2) / safe
    rows += [i, j]
    cols += [j, i]
    vals += [-half_cot, -half_cot]
  rows, cols, vals = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
  off = scipy.sparse.coo_matrix((vals, (rows, cols)), shape=(n, n)).tocsr()
  diag = -np.asarray(off.sum(axis=1)).ravel()
  laplacian = (off + scipy.sparse.diags(diag)).tocsr()
  lumped = np.zeros(n)
  for k in range(3):
    np.add.at(lumped, t[:, k], double_area / 6.0)
  return laplacian, scipy.sparse.diags(lumped)


def low_frequency_basis(vertices: np.ndarray, triangles: np.ndarray,
                        k: int) -> Tuple[np.ndarray, np.ndarray]:
  """The ``k`` smoothest eigenfunctions of the cotangent Laplacian.

  Solves ``L phi = lambda M phi`` with ``scipy.sparse.linalg.eigsh`` in
  shift-invert mode (sigma slightly below 0, since L is singular), with
  BLAS limited to one thread for the call (``threadpoolctl``).

  Args:
    vertices: ``[V, 3]``, one connected mesh (else several constant modes).
    triangles: ``[F, 3]`` int.
    k: number of eigenfunctions, ``1 <= k < V``.

  Returns:
    eigenvalues: ``[k]`` ascending (the first is ~0).
    eigenfunctions: ``[V, k]``, each with area-weighted RMS 1
      (``phi^T M phi = total area``); the first is the constant +1, the
      others have their largest-magnitude entry positive (deterministic signs).
  """
  laplacian, mass = cotangent_laplacian(vertices, triangles)
  n = laplacian.shape[0]
  if not 1 <= k < n:
    raise ValueError(f"need 1 <= k < {n} eigenfunctions, got {k}")
  scale = float(np.mean(laplacian.diagonal() / np.maximum(mass.diagonal(), 1e-30)))
  v0 = np.random.default_rng(0).standard_normal(n)
  # ARPACK makes hundreds of tiny BLAS calls; threaded OpenBLAS only adds
  # synchronisation there (same speed on idle cores, 5-20x slower on busy ones).
  with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
    values, vectors = scipy.sparse.linalg.eigsh(laplacian, k=k, M=mass.tocsc(), sigma=-1e-6 * scale,
                                                which="LM", v0=v0)
  order = np.argsort(values)
  values, vectors = values[order], vectors[:, order]
  area = mass.diagonal().sum()
  norms = np.sqrt(np.einsum("vk,v,vk->k", vectors, mass.diagonal(), vectors) / area)
  vectors = vectors / norms
  pivot = np.argmax(np.abs(vectors), axis=0)
  vectors = vectors * np.sign(vectors[pivot, np.arange(k)])
  return np.maximum(values, 0.0), vectors
