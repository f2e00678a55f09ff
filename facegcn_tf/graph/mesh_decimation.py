"""QSlim-style quadric edge-collapse decimation, as CoMA builds its hierarchy.

Written here rather than taken from a library: the pipeline needs a
*subsampling* decimator (each coarse vertex is one of the fine vertices, so the
down-sampling matrix D is a 0/1 selection), with CoMA's exact collapse rule and
stopping count. Open3D / pyfqmr / trimesh move vertices to optimal positions
and do not report which input vertex survives, so D could not be built from
them.

Algorithm (Garland & Heckbert quadrics, CoMA's variant):
  * Every face contributes the outer product `p pᵀ` of its plane
    `p = [n, -n·v0]` (unit normal n) to the quadric of each of its corners.
  * Collapsing edge (a, b) onto endpoint a costs `ãᵀ (Q_a + Q_b) ã`
    (`ã = [a, 1]`); an edge's cost is the cheaper of its two endpoints and the
    collapse keeps that endpoint. The survivor's quadric becomes `Q_a + Q_b`.
  * Edges sit in a binary heap. Entries are invalidated lazily: on pop, an
    entry whose edge no longer exists is dropped, and one whose cost went up
    (quadrics only grow, so costs never fall) is pushed back with the new cost.
  * Collapses go on until at most `ceil(n / factor)` vertices are in use.
    Faces that become degenerate are removed; a vertex left without faces is
    dropped as well.
Per collapse the work is O(degree) (vertex->faces and vertex->neighbours
sets), plus the heap operations.
"""

import heapq
import math
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

from facegcn_tf.graph import mesh_validation
from facegcn_tf.morphable.subdivision import unique_edges


class Decimation(NamedTuple):
  """Result of one decimation step from n to m vertices.

  Attributes:
    kept: `int64 [m]`, ascending indices of the surviving input vertices.
    faces: `int64 [f, 3]`, triangles of the coarse mesh, indexing `kept`.
    down: `scipy.sparse.csr_matrix [m, n]` float32 0/1 selection matrix with
      `down[i, kept[i]] = 1`, so `down @ vertices == vertices[kept]`.
  """
  kept: np.ndarray
  faces: np.ndarray
  down: sp.csr_matrix


def vertex_quadrics(vertices, faces):
  """Per-vertex error quadrics: sums of incident face-plane outer products.

  Args:
    vertices: `float [V, 3]`.
    faces: `int [F, 3]`.

  Returns:
    `float64 [V, 4, 4]` symmetric PSD matrices. Zero-area faces contribute
    nothing (they have no plane).
  """
  v = np.asarray(vertices, dtype=np.float64)
  f = np.asarray(faces, dtype=np.int64)
  v0, v1, v2 = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
  normals = np.cross(v1 - v0, v2 - v0)
  norms = np.linalg.norm(normals, axis=1, keepdims=True)
  normals = np.divide(normals, norms, out=np.zeros_like(normals), where=norms > 0)
  planes = np.concatenate([normals, -np.sum(normals * v0, axis=1, keepdims=True)], axis=1)
  face_q = (planes[:, :, None] * planes[:, None, :]).reshape(-1, 16)  # [F, 16]
  num_faces = f.shape[0]
  incidence = sp.csr_matrix(
      (np.ones(3 * num_faces), (f.ravel(), np.repeat(np.arange(num_faces), 3))),
      shape=(v.shape[0], num_faces))
  return np.asarray(incidence @ face_q).reshape(-1, 4, 4)


def target_vertex_count(num_vertices, factor):
  """`ceil(num_vertices / factor)`: CoMA's vertex count after one step."""
  if not isinstance(factor, (int, float, np.integer, np.floating)) or not factor >= 1:
    raise ValueError(f"decimation factor must be a number >= 1, got {factor!r}")
  return int(math.ceil(num_vertices / factor))


def decimate(vertices, faces, factor=4):
  """Quadric edge-collapse subsampling of a triangle mesh.

  Args:
    vertices: `float [n, 3]`.
    faces: `int [F, 3]`; every vertex must be used by a face and no face may
      repeat a vertex.
    factor: number >= 1; the result has at most `ceil(n / factor)` vertices
      (exactly that many unless a collapse leaves a vertex without faces).

  Returns:
    A `Decimation` (kept, faces, down). Faces that end up with the same three
    vertices as an earlier face are removed, so each edge is shared by the
    faces that really border it.

  Raises:
    ValueError: bad mesh or factor, or nothing would be left of the mesh.
  """
  v, f = mesh_validation.check_mesh(vertices, faces)
  n = v.shape[0]
  target = target_vertex_count(n, factor)
  if target < 3:
    raise ValueError(
        f"decimating {n} vertices by {factor} would leave {target} (< 3) vertices")

  q = vertex_quadrics(v, f)
  vh = np.concatenate([v, np.ones((n, 1))], axis=1)  # homogeneous [n, 4]

  edges, _ = unique_edges(f)
  a, b = edges[:, 0], edges[:, 1]
  qsum = q[a] + q[b]
  cost_a = np.einsum("ei,eij,ej->e", vh[a], qsum, vh[a])
  cost_b = np.einsum("ei,eij,ej->e", vh[b], qsum, vh[b])
  heap = list(zip(np.minimum(cost_a, cost_b).tolist(), a.tolist(), b.tolist()))
  heapq.heapify(heap)

  face_list = f.tolist()
  face_alive = [True] * len(face_list)
  vert_faces = [set() for _ in range(n)]
  for fi, (i, j, k) in enumerate(face_list):
    vert_faces[i].add(fi)
    vert_faces[j].add(fi)
    vert_faces[k].add(fi)
  neighbours = [set() for _ in range(n)]
  for i, j in edges.tolist():
    neighbours[i].add(j)
    neighbours[j].add(i)
  alive = [True] * n
  num_alive = n

  def collapse_costs(i, j):
    qs = q[i] + q[j]
    pi, pj = vh[i], vh[j]
    return float(pi @ qs @ pi), float(pj @ qs @ pj), qs

  def drop_orphan(u):
    nonlocal num_alive
    alive[u] = False
    num_alive -= 1
    for w in neighbours[u]:
      neighbours[w].discard(u)
    neighbours[u] = set()

  while num_alive > target and heap:
    cost, i, j = heapq.heappop(heap)
    if not (alive[i] and alive[j]) or j not in neighbours[i]:
      continue  # stale entry: an endpoint was collapsed or the edge vanished
    cost_i, cost_j, qs = collapse_costs(i, j)
    current = min(cost_i, cost_j)
    if current > cost:
      heapq.heappush(heap, (current, i, j))  # quadrics grew since the push
      continue
    keep, drop = (i, j) if cost_i <= cost_j else (j, i)

    q[keep] = qs
    alive[drop] = False
    num_alive -= 1
    touched = {keep}
    for fi in vert_faces[drop]:
      tri = face_list[fi]
      if keep in tri:  # the face had edge (keep, drop): it collapses to a line
        face_alive[fi] = False
        for u in tri:
          if u != drop:
            vert_faces[u].discard(fi)
            touched.add(u)
      else:
        tri[tri.index(drop)] = keep
        vert_faces[keep].add(fi)
    vert_faces[drop] = set()

    for u in neighbours[drop]:
      neighbours[u].discard(drop)
      if u != keep:
        neighbours[u].add(keep)
        neighbours[keep].add(u)
        c_keep, c_u, _ = collapse_costs(keep, u)
        heapq.heappush(heap, (min(c_keep, c_u), keep, u))
    neighbours[drop] = set()

    for u in touched:
      if alive[u] and not vert_faces[u]:
        drop_orphan(u)

  kept = np.flatnonzero(np.asarray(alive))
  new_faces = np.asarray([t for t, ok in zip(face_list, face_alive) if ok], dtype=np.int64)
  if kept.size < 3 or new_faces.size == 0:
    raise ValueError(f"decimation by {factor} left no triangles (mesh too small or broken)")
  remap = np.full(n, -1, dtype=np.int64)
  remap[kept] = np.arange(kept.size)
  new_faces = remap[new_faces.reshape(-1, 3)]
  # Drop repeated triangles (same vertex set, either orientation), keep order.
  _, first = np.unique(np.sort(new_faces, axis=1), axis=0, return_index=True)
  new_faces = new_faces[np.sort(first)]

  down = selection_matrix(kept, n)
  return Decimation(kept=kept, faces=new_faces, down=down)


def selection_matrix(kept, num_vertices):
  """0/1 matrix `[len(kept), num_vertices]` with a one in `(i, kept[i])` (csr, float32)."""
  kept = np.asarray(kept, dtype=np.int64)
  m = kept.size
  return sp.csr_matrix(
      (np.ones(m, dtype=np.float32), (np.arange(m), kept)), shape=(m, num_vertices))
