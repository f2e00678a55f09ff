"""ICT Face Model Light loader: units, topology, subdivision, landmarks, regions, albedo."""

import numpy as np
import pytest
import scipy.sparse
import scipy.spatial
import trimesh

from facegcn_tf import assets
from facegcn_tf import morphable
from facegcn_tf.errors import AssetNotFoundError
from facegcn_tf.morphable import ict

COARSE_V, QUADS = 9409, 9230


@pytest.fixture(scope="module")
def raw():
  path = assets.find_asset(ict.ICT_RELATIVE_PATH)
  with np.load(path) as data:
    return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def coarse():
  return morphable.load_model("ict_coarse")


@pytest.fixture(scope="module")
def fine():
  return morphable.load_model("ict")


def test_counts_and_layout(raw, coarse, fine):
  quads = raw["quads"]
  quad_edges = np.sort(np.stack([quads, np.roll(quads, -1, axis=1)], -1).reshape(-1, 2), axis=1)
  n_edges = len(np.unique(quad_edges, axis=0)) + QUADS  # plus one diagonal per quad
  assert coarse.name == "ict_coarse" and fine.name == "ict"
  assert (coarse.num_vertices, coarse.num_triangles) == (COARSE_V, 2 * QUADS)
  assert (fine.num_vertices, fine.num_triangles) == (COARSE_V + n_edges, 8 * QUADS)
  assert 35_000 < fine.num_vertices < 40_000 and 70_000 < fine.num_triangles < 80_000
  for m in (coarse, fine):
    assert m.layout == morphable.CoeffLayout(100, 53, 80) and m.layout.total == 266
    assert m.id_basis.shape == (100, m.num_vertices, 3)
    assert m.exp_names == tuple(raw["exp_names"]) and m.exp_names[0] == "browDown_L"


def test_units_are_decimetres_and_centred(raw, coarse, fine):
  offset = coarse.mean_shape - raw["neutral"] * 0.1
  # A pure shift of the raw neutral in decimetres.
  np.testing.assert_allclose(offset, np.broadcast_to(offset[0], offset.shape), atol=1e-5)
  np.testing.assert_allclose(coarse.id_basis, raw["id_basis"] * 0.1, rtol=1e-6)
  np.testing.assert_allclose(coarse.exp_basis, raw["exp_basis"] * 0.1, rtol=1e-6)
  width = np.ptp(coarse.mean_shape[:, 0])
  assert 1.5 < width < 2.2  # ~18 cm wide face area incl. ears, in dm
  # Both resolutions are centred on the same (surface) centroid.
  for m in (coarse, fine):
    tm = trimesh.Trimesh(m.mean_shape, m.triangles, process=False)
    np.testing.assert_allclose(tm.triangles_center.T @ tm.area_faces / tm.area, 0, atol=1e-5)


def test_subdivided_model_reproduces_coarse_model_at_shared_vertices(coarse, fine):
  rng = np.random.default_rng(0)
  alpha, beta, delta = rng.standard_normal(100), rng.uniform(0, 1, 53), rng.standard_normal(80)
  for key in ("mean_shape", "id_basis", "exp_basis"):
    np.testing.assert_array_equal(getattr(fine, key)[..., :COARSE_V, :], getattr(coarse, key))
  # Same positions up to float32 summation order (BLAS blocks differ with V).
  np.testing.assert_allclose(fine.shape(alpha, beta)[:COARSE_V], coarse.shape(alpha, beta),
                             atol=1e-6)
  albedo_c, albedo_f = coarse.albedo(delta, clip=False), fine.albedo(delta, clip=False)
  np.testing.assert_allclose(albedo_f[:COARSE_V], albedo_c, atol=1e-6)
  # Every new vertex is the midpoint of one coarse edge, for any coefficients.
  tri = coarse.triangles
  edges = np.unique(np.sort(np.stack([tri, np.roll(tri, -1, 1)], -1).reshape(-1, 2), 1), axis=0)
  assert len(edges) == fine.num_vertices - COARSE_V
  dist, edge_of_new = scipy.spatial.cKDTree(
      0.5 * (coarse.mean_shape[edges[:, 0]] + coarse.mean_shape[edges[:, 1]])).query(
          fine.mean_shape[COARSE_V:])
  assert dist.max() < 1e-6 and len(np.unique(edge_of_new)) == len(edges)  # one-to-one
  ends = edges[edge_of_new]
  for a, b in ((alpha, beta), (-alpha, 1 - beta)):
    shape = coarse.shape(a, b)
    np.testing.assert_allclose(fine.shape(a, b)[COARSE_V:],
                               0.5 * (shape[ends[:, 0]] + shape[ends[:, 1]]), atol=1e-5)
  np.testing.assert_allclose(albedo_f[COARSE_V:],
                             0.5 * (albedo_c[ends[:, 0]] + albedo_c[ends[:, 1]]), atol=1e-5)
  assert fine.landmarks68.tolist() == coarse.landmarks68.tolist()


def test_triangles_are_consistently_wound_and_face_outward(coarse, fine):
  for m in (coarse, fine):
    tm = trimesh.Trimesh(m.mean_shape, m.triangles, process=False)
    assert tm.is_winding_consistent
    normals = tm.vertex_normals
    lm = m.landmarks68
    assert normals[lm[30], 2] > 0.8  # nose tip
    assert normals[lm[8], 2] > 0.5  # chin
    # Forehead: the front-most vertex on the centre line well above the nasion (27).
    v = m.mean_shape
    band = np.flatnonzero((np.abs(v[:, 0]) < 0.03) & (v[:, 1] > v[lm[27], 1] + 0.3) &
                          (v[:, 1] < v[lm[27], 1] + 0.5))
    forehead = band[np.argmax(v[band, 2])]
    assert normals[forehead, 2] > 0.8
    assert tm.face_normals[:, 2].dot(tm.area_faces) > 0


def test_landmarks_are_plausible(coarse):
  p = coarse.mean_shape[coarse.landmarks68]
  assert np.argmax(p[:, 2]) == 30  # nose tip is the front-most landmark
  assert p[36, 0] < p[39, 0] < 0 < p[42, 0] < p[45, 0]  # subject's right eye at -x
  np.testing.assert_allclose(p[36] * [-1, 1, 1], p[45], atol=1e-3)  # mirrored outer eye corners
  np.testing.assert_allclose(p[48] * [-1, 1, 1], p[54], atol=1e-3)  # mirrored mouth corners
  assert p[8, 1] == p[:17, 1].min()  # chin is the lowest jaw point
  # Brow above eye above nose tip above lips above chin.
  assert p[19, 1] > p[37, 1] > p[30, 1] > p[51, 1] > p[57, 1] > p[8, 1]
  assert abs(p[[8, 27, 30, 33, 51, 57, 62, 66], 0]).max() < 1e-3  # centre-line points


def test_symmetry_pairs_mirror_each_other(coarse, fine):
  for m in (coarse, fine):
    pairs = m.symmetry_pairs
    assert pairs.min() >= 0 and pairs.max() < m.num_vertices
    assert len(np.unique(pairs)) == pairs.size  # each vertex at most once
    left, right = m.mean_shape[pairs[:, 0]], m.mean_shape[pairs[:, 1]]
    assert np.all(left[:, 0] > 0)
    assert np.abs(left[:, 0] + right[:, 0]).max() < 1e-3  # < 0.1 mm
    np.testing.assert_allclose(left[:, 1:], right[:, 1:], atol=1e-3)
    off_centre = np.sum(np.abs(m.mean_shape[:, 0]) > 1e-4)
    assert len(pairs) > 0.95 * off_centre / 2
  # The landmark pairs of the iBUG scheme are among them.
  lm = coarse.landmarks68
  found = {tuple(p) for p in coarse.symmetry_pairs.tolist()}
  for left, right in ((45, 36), (42, 39), (54, 48), (16, 0), (35, 31)):
    assert (lm[left], lm[right]) in found


def test_skin_mask_excludes_eyes_mouth_and_nostrils(coarse, fine):
  for m in (coarse, fine):
    v, lm, skin = m.mean_shape, m.landmarks68, m.skin_mask
    assert not skin[lm[36:68]].any()
    # Everything within 2 mm (frontal projection) of an eye or lip landmark is excluded.
    near = scipy.spatial.cKDTree(v[:, :2]).query_ball_point(v[lm[36:68], :2], r=0.02)
    near = np.unique(np.concatenate(near).astype(int))
    front = v[near, 2] > v[lm[36:68], 2].min() - 0.05
    assert not skin[near[front]].any()
    # Deep inside the nostrils (well behind the nose base) is excluded.
    nostril = np.flatnonzero((np.abs(np.abs(v[:, 0]) - 0.07) < 0.03) & (v[:, 1] > v[lm[33], 1]) &
                             (v[:, 1] < v[lm[30], 1]) & (v[:, 2] < v[lm[33], 2] - 0.05))
    assert len(nostril) > 10 and not skin[nostril].any()
    # Forehead, cheeks, nose bridge, chin are skin.
    for point in (v[lm[27]] + [0, 0.35, 0], 0.5 * (v[lm[2]] + v[lm[31]]),
                  0.5 * (v[lm[14]] + v[lm[35]]), v[lm[28]], 0.5 * (v[lm[8]] + v[lm[57]])):
      cand = np.flatnonzero(np.linalg.norm(v[:, :2] - point[:2], axis=1) < 0.03)
      assert skin[cand[np.argmax(v[cand, 2])]]
    assert 0.6 < skin.mean() < 0.9


def graph_laplacian(m):
  t = m.triangles
  i = np.concatenate([t[:, 0], t[:, 1], t[:, 2]])
  j = np.concatenate([t[:, 1], t[:, 2], t[:, 0]])
  adj = scipy.sparse.coo_matrix((np.ones(len(i)), (i, j)), shape=(m.num_vertices,) * 2).tocsr()
  adj = ((adj + adj.T) > 0).astype(float)
  return scipy.sparse.csgraph.laplacian(adj)


def test_albedo_model_is_smooth_and_plausible(coarse, fine):
  rng = np.random.default_rng(0)
  for m in (coarse, fine):
    assert m.mean_albedo.min() >= 0 and m.mean_albedo.max() <= 1
    lap = graph_laplacian(m)

    def rayleigh(f):
      return float(np.sum(f * (lap @ f)) / np.sum(f * f))

    random_energy = np.mean([rayleigh(rng.standard_normal(m.num_vertices)) for _ in range(3)])
    norms = np.linalg.norm(m.albedo_basis.reshape(80, -1), axis=1)
    assert np.all(np.diff(norms) <= 0.02 * norms[1:])  # ordered like a PCA, largest first
    modes = m.albedo_basis.transpose(0, 2, 1).reshape(-1, m.num_vertices)
    energy = np.array([rayleigh(f) for f in modes])
    assert energy.max() < 0.05 * random_energy
    # N(0, 1) coefficients give skin-like variation that stays (mostly) in range.
    samples = m.albedo(rng.standard_normal((20, 80)), clip=False)
    assert np.mean((samples < 0) | (samples > 1)) < 0.02
    std = samples.std(axis=0).mean(axis=0)
    assert np.all((0.03 < std) & (std < 0.2))
  # Lips are redder than cheeks, brows darker than forehead in the mean albedo.
  a, lm, v = coarse.mean_albedo, coarse.landmarks68, coarse.mean_shape
  assert a[lm[51], 0] - a[lm[51], 1] > a[lm[2], 0] - a[lm[2], 1]
  forehead = np.argmin(np.linalg.norm(v - (v[lm[27]] + [0, 0.35, 0.1]), axis=1))
  assert a[lm[19]].sum() < a[forehead].sum()


def test_uvs(raw, coarse, fine):
  for m in (coarse, fine):
    assert m.uv.min() >= 0 and m.uv.max() <= 1
    corners = m.uv[m.triangle_uv]
    area = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    assert np.mean(area > 0) > 0.99  # same counter-clockwise orientation in UV space
  np.testing.assert_array_equal(coarse.uv, raw["uv"])
  np.testing.assert_array_equal(fine.uv[:len(raw["uv"])], raw["uv"])
  # Seams survive subdivision: more UV points than vertices at both resolutions.
  assert len(fine.uv) - fine.num_vertices > len(coarse.uv) - coarse.num_vertices > 0


def test_missing_and_corrupt_files(tmp_path, monkeypatch):
  real = assets.find_asset(ict.ICT_RELATIVE_PATH)
  monkeypatch.setattr(assets, "REPO_ASSETS", tmp_path / "no_assets")
  monkeypatch.setattr(assets, "SHARED_MODELS", tmp_path / "no_shared")
  monkeypatch.delenv(assets.ENV_VAR, raising=False)
  with pytest.raises(AssetNotFoundError, match="ict_face_area.npz.*LICENSE"):
    ict.load_ict()
  # A folder holding the file itself is accepted.
  assert ict.load_ict(real.parent, subdivide=False, n_tex=2).num_vertices == COARSE_V
  bad = tmp_path / "bad.npz"
  bad.write_bytes(b"not a zip file")
  with pytest.raises(ValueError, match="cannot read"):
    ict.load_ict(bad)
  partial = tmp_path / "partial.npz"
  np.savez(partial, neutral=np.zeros((3, 3)))
  with pytest.raises(ValueError, match="missing keys"):
    ict.load_ict(partial)


def test_clockwise_quads_are_reoriented_with_their_uvs(raw, coarse, tmp_path):
  flipped = dict(raw)
  flipped["quads"] = raw["quads"][:, ::-1]
  flipped["quad_uv"] = raw["quad_uv"][:, ::-1]
  np.savez(tmp_path / "flipped.npz", **flipped)
  model = ict.load_ict(tmp_path / "flipped.npz", subdivide=False, n_tex=4)
  tm = trimesh.Trimesh(model.mean_shape, model.triangles, process=False)
  assert tm.vertex_normals[model.landmarks68[30], 2] > 0.8
  corners = model.uv[model.triangle_uv]
  area = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
  assert np.mean(area > 0) > 0.99
  np.testing.assert_allclose(model.mean_shape, coarse.mean_shape, atol=1e-6)
