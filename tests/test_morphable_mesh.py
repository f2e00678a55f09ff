"""Generic mesh pieces of facegcn_tf.morphable on small hand-made meshes."""

import numpy as np
import pytest
import scipy.spatial

from facegcn_tf.morphable import laplacian
from facegcn_tf.morphable import normals
from facegcn_tf.morphable import regions
from facegcn_tf.morphable import subdivision
from facegcn_tf.morphable import symmetry
from facegcn_tf.morphable import uv as uv_lib


def grid(nx, ny, width=1.0, height=1.0, z=None):
  """Regular grid in the z=0 plane (or z = z(x, y)), CCW triangles seen from +z."""
  x, y = np.meshgrid(np.linspace(0, width, nx), np.linspace(0, height, ny))
  v = np.stack([x.ravel(), y.ravel(), np.zeros(x.size)], 1)
  if z is not None:
    v[:, 2] = z(v[:, 0], v[:, 1])
  i = np.arange(nx * ny).reshape(ny, nx)
  quads = np.stack([i[:-1, :-1], i[:-1, 1:], i[1:, 1:], i[1:, :-1]], -1).reshape(-1, 4)
  return v, quads


def signed_areas_2d(points, triangles):
  a, b, c = (points[triangles[:, k]] for k in range(3))
  ab, ac = b - a, c - a
  return 0.5 * (ab[:, 0] * ac[:, 1] - ab[:, 1] * ac[:, 0])


def test_quads_split_keeps_winding_both_ways():
  v, quads = grid(3, 3)
  for split in (True, False):
    tri = subdivision.quads_to_triangles(quads, split)
    assert tri.shape == (8, 3) and tri.dtype == np.int32
    assert np.all(signed_areas_2d(v, tri) > 0)
    # The two halves of each quad cover it exactly.
    np.testing.assert_allclose(signed_areas_2d(v, tri).reshape(-1, 2).sum(1), 0.25)
  np.testing.assert_array_equal(subdivision.quads_to_triangles([[0, 1, 2, 3]], False),
                                [[0, 1, 3], [1, 2, 3]])


def test_shorter_diagonal_choice():
  v = np.array([[0, 0, 0], [2, 0, 0], [3, 1, 0], [1, 1, 0]], float)  # parallelogram
  # |02| = sqrt(10) > |13| = sqrt(2).
  assert not subdivision.shorter_diagonal_is_02([[0, 1, 2, 3]], v)[0]
  assert subdivision.shorter_diagonal_is_02([[1, 2, 3, 0]], v)[0]


def test_midpoint_subdivision_of_one_triangle():
  v = np.array([[0, 0, 0], [2, 0, 0], [0, 2, 0]], np.float32)
  tri, edges = subdivision.midpoint_subdivide(np.array([[0, 1, 2]]), 3)
  assert tri.shape == (4, 3) and len(edges) == 3
  fine = subdivision.interpolate_midpoints(v, edges)
  assert fine.shape == (6, 3)
  np.testing.assert_array_equal(fine[:3], v)
  midpoints = {(1.0, 0.0, 0.0), (1.0, 1.0, 0.0), (0.0, 1.0, 0.0)}
  assert {tuple(p) for p in fine[3:].tolist()} == midpoints
  np.testing.assert_allclose(signed_areas_2d(fine, tri), 0.5)  # 4 equal children, same winding


def test_midpoint_subdivision_topology_on_a_grid():
  v, quads = grid(5, 4)
  tri = subdivision.quads_to_triangles(quads)
  edges, _ = subdivision.unique_edges(tri)
  fine_tri, fine_edges = subdivision.midpoint_subdivide(tri, len(v))
  np.testing.assert_array_equal(fine_edges, edges)
  fine_v = subdivision.interpolate_midpoints(v, fine_edges)
  assert len(fine_v) == len(v) + len(edges) and len(fine_tri) == 4 * len(tri)
  # Euler characteristic is kept; every new edge is a half edge or a midpoint-midpoint edge.
  new_edges, _ = subdivision.unique_edges(fine_tri)
  assert len(new_edges) == 2 * len(edges) + 3 * len(tri)
  assert len(fine_v) - len(new_edges) + len(fine_tri) == len(v) - len(edges) + len(tri)
  # No two vertices coincide, area and winding are kept, each midpoint is an average.
  assert scipy.spatial.cKDTree(fine_v).query(fine_v, k=2)[0][:, 1].min() > 1e-6
  np.testing.assert_allclose(signed_areas_2d(fine_v, fine_tri).sum(), 1.0)
  assert np.all(signed_areas_2d(fine_v, fine_tri) > 0)
  np.testing.assert_allclose(fine_v[len(v):], 0.5 * (v[edges[:, 0]] + v[edges[:, 1]]))


def test_subdivided_uvs_follow_seams_and_stay_aligned_with_triangles():
  """Each triangle carries its own affine UV map; children must keep their parent's map."""
  rng = np.random.default_rng(1)
  v, quads = grid(4, 4)
  tri = subdivision.quads_to_triangles(quads)
  # Give every triangle separate UV corners (a seam everywhere) from its own affine map.
  maps = rng.uniform(0.2, 0.5, size=(len(tri), 2, 2)) + np.eye(2) * 0.1
  offsets = rng.uniform(0, 0.3, size=(len(tri), 2))
  uv = np.einsum("fij,fkj->fki", maps, v[tri][:, :, :2]) + offsets[:, None, :]
  triangle_uv = np.arange(3 * len(tri)).reshape(-1, 3)
  uv = uv.reshape(-1, 2)
  fine_tri, edges = subdivision.midpoint_subdivide(tri, len(v))
  fine_v = subdivision.interpolate_midpoints(v, edges)
  fine_tuv, uv_edges = subdivision.midpoint_subdivide(triangle_uv, len(uv))
  fine_uv = subdivision.interpolate_midpoints(uv, uv_edges)
  parent = np.repeat(np.arange(len(tri)), 4)
  expected = (np.einsum("fij,fkj->fki", maps[parent], fine_v[fine_tri][:, :, :2]) +
              offsets[parent, None, :])
  np.testing.assert_allclose(fine_uv[fine_tuv], expected, atol=1e-12)
  # Geometry shares midpoints across the seams, UVs do not.
  assert len(fine_v) < len(fine_uv)


def test_interpolate_midpoints_on_bases_and_bad_input():
  rng = np.random.default_rng(0)
  basis = rng.standard_normal((3, 5, 2)).astype(np.float32)
  edges = np.array([[0, 4], [1, 2]])
  out = subdivision.interpolate_midpoints(basis, edges, axis=1)
  assert out.shape == (3, 7, 2) and out.dtype == np.float32
  np.testing.assert_allclose(out[:, 5], 0.5 * (basis[:, 0] + basis[:, 4]))
  with pytest.raises(ValueError, match="floating"):
    subdivision.interpolate_midpoints(np.arange(5), edges)
  with pytest.raises(ValueError, match="outside"):
    subdivision.interpolate_midpoints(basis, np.array([[0, 5]]), axis=1)
  with pytest.raises(ValueError, match="outside"):
    subdivision.midpoint_subdivide(np.array([[0, 1, 3]]), 3)


def test_cotangent_laplacian_properties():
  v, quads = grid(6, 5, z=lambda x, y: 0.3 * np.sin(3 * x) * y)
  tri = subdivision.quads_to_triangles(quads)
  lap, mass = laplacian.cotangent_laplacian(v, tri)
  dense = lap.toarray()
  np.testing.assert_allclose(dense, dense.T, atol=1e-12)
  np.testing.assert_allclose(dense.sum(1), 0, atol=1e-12)
  assert np.linalg.eigvalsh(dense).min() > -1e-10
  area = 0.5 * np.linalg.norm(normals.face_normals(v, tri, normalize=False), axis=1).sum()
  np.testing.assert_allclose(mass.diagonal().sum(), area)
  # A linear function on a flat mesh has zero Laplacian at interior vertices.
  flat_v, _ = grid(6, 5)
  flat_lap, _ = laplacian.cotangent_laplacian(flat_v, tri)
  f = 2 * flat_v[:, 0] - flat_v[:, 1]
  interior = (flat_v[:, 0] > 0) & (flat_v[:, 0] < 1) & (flat_v[:, 1] > 0) & (flat_v[:, 1] < 1)
  np.testing.assert_allclose((flat_lap @ f)[interior], 0, atol=1e-12)


def test_low_frequency_basis_matches_neumann_modes_of_the_unit_square():
  v, quads = grid(41, 41)
  tri = subdivision.quads_to_triangles(quads, subdivision.shorter_diagonal_is_02(quads, v))
  values, phi = laplacian.low_frequency_basis(v, tri, 6)
  # Neumann eigenvalues of the unit square: pi^2 (m^2 + n^2) -> 0, 1, 1, 2, 4, 4 times pi^2.
  np.testing.assert_allclose(values[1:], np.pi ** 2 * np.array([1, 1, 2, 4, 4]), rtol=0.02)
  assert abs(values[0]) < 1e-6
  np.testing.assert_allclose(phi[:, 0], 1.0, atol=1e-6)
  # Modes 1-2 span cos(pi x), cos(pi y) (RMS 1 -> amplitude sqrt 2).
  target = np.sqrt(2) * np.stack([np.cos(np.pi * v[:, 0]), np.cos(np.pi * v[:, 1])], 1)
  coef, *_ = np.linalg.lstsq(phi[:, 1:3], target, rcond=None)
  np.testing.assert_allclose(phi[:, 1:3] @ coef, target, atol=0.02)


def test_mirror_pairs():
  rng = np.random.default_rng(3)
  half = rng.uniform([0.1, -1, -1], [1, 1, 1], size=(50, 3))
  centre = np.column_stack([np.zeros(5), rng.uniform(-1, 1, (5, 2))])
  mirror = half * [-1, 1, 1]
  mirror[:3] += [0, 0, 0.5]  # three partners moved far away: no pair
  rival = half[3] + [0, 0, 1e-7]  # also mirrors onto mirror[3], but less closely: not mutual
  points = np.concatenate([mirror, centre, half, [rival]])  # right side first
  pairs = symmetry.mirror_pairs(points, max_distance=1e-6)
  assert pairs.dtype == np.int32 and pairs.shape == (47, 2)
  np.testing.assert_array_equal(pairs[:, 0], np.arange(58, 105))  # left = +x side
  np.testing.assert_array_equal(pairs[:, 1], np.arange(3, 50))
  assert np.all(points[pairs[:, 0], 0] > 0) and np.all(points[pairs[:, 1], 0] < 0)
  with pytest.raises(ValueError):
    symmetry.mirror_pairs(points, max_distance=0.0)


def test_cylindrical_uv_on_a_face_like_height_field():
  v, quads = grid(30, 40, width=1.6, height=2.0,
                  z=lambda x, y: 0.9 * np.sqrt(np.maximum(1 - (x - 0.8) ** 2 / 0.9, 0.0)))
  v -= v.mean(0)
  tri = subdivision.quads_to_triangles(quads)
  uv = uv_lib.cylindrical_uv(v)
  assert uv.dtype == np.float32 and uv.min() >= 0.0 and uv.max() <= 1.0
  assert np.all(signed_areas_2d(uv.astype(float), tri) > 0)  # no folds, same winding
  # v follows height linearly; the longer side (v) spans [border, 1 - border].
  np.testing.assert_allclose(np.ptp(uv[:, 1]), 0.98, atol=1e-6)
  np.testing.assert_allclose(np.corrcoef(uv[:, 1], v[:, 1])[0, 1], 1.0, atol=1e-9)
  with pytest.raises(ValueError):
    uv_lib.cylindrical_uv(np.zeros((5, 3)))


def test_signed_distance_to_polygon():
  square = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], float)
  points = np.array([[0.5, 0.5], [0.5, 0.9], [2.0, 0.5], [1.3, 1.4]])
  np.testing.assert_allclose(regions.signed_distance_to_polygon(points, square),
                             [-0.5, -0.1, 1.0, 0.5])


def test_occluded_from_front():
  # A small plane at z = 1 over a larger plane at z = 0.
  back, back_quads = grid(9, 9, width=2.0, height=2.0)
  front, front_quads = grid(3, 3, width=1.0, height=1.0)
  front += [0.45, 0.45, 1.0]
  v = np.concatenate([back, front])
  tri = np.concatenate([subdivision.quads_to_triangles(back_quads),
                        subdivision.quads_to_triangles(front_quads + len(back))])
  hidden = regions.occluded_from_front(v, tri, np.arange(len(v)), tolerance=1e-6, chunk=7)
  under = (back[:, 0] >= 0.45) & (back[:, 0] <= 1.45) & (back[:, 1] >= 0.45) & (back[:, 1] <= 1.45)
  np.testing.assert_array_equal(hidden[:len(back)], under)
  assert under.sum() == 16 and not hidden[len(back):].any()


def test_orientation_and_surface_centroid():
  v, quads = grid(4, 4)
  tri = subdivision.quads_to_triangles(quads)
  assert normals.faces_viewer(v, tri)
  flipped = tri[:, [0, 2, 1]]
  assert not normals.faces_viewer(v, flipped)
  np.testing.assert_array_equal(normals.orient_towards_viewer(v, flipped), tri)
  np.testing.assert_allclose(normals.vertex_normals(v, flipped)[:, 2], -1.0)
  # Surface centroid is unchanged by midpoint subdivision; the vertex mean is not.
  warped = v.copy()
  warped[:, 0] = warped[:, 0] ** 2
  fine_tri, edges = subdivision.midpoint_subdivide(tri, len(v))
  fine = subdivision.interpolate_midpoints(warped, edges)
  np.testing.assert_allclose(normals.surface_centroid(fine, fine_tri),
                             normals.surface_centroid(warped, tri), atol=1e-12)
  assert abs(fine.mean(0)[0] - warped.mean(0)[0]) > 1e-3
