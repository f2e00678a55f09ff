"""BFM 2009: converter (01_MorphableModel.mat + Exp_Pca.bin -> BFM_model_front.mat) and loader.

BFM cannot be shipped, so the inputs are small synthetic files with the real
keys and layouts, generated here: a face-like height field of 33 x 33
vertices hidden among extra "full model" vertices, in shuffled order.
"""

import pathlib
import subprocess
import sys

import numpy as np
import pytest
import scipy.io

from facegcn_tf import assets
from facegcn_tf import morphable
from facegcn_tf.errors import AssetNotFoundError
from facegcn_tf.morphable import bfm
from facegcn_tf.morphable import bfm_convert

REPO = pathlib.Path(__file__).resolve().parent.parent


def canonical_landmarks_xy():
  """A symmetric 68-point iBUG layout in decimetres (subject's right at -x)."""
  p = np.zeros((68, 2))
  phi = np.linspace(-np.pi / 2, np.pi / 2, 17)
  p[0:17] = np.stack([0.65 * np.sin(phi), 0.3 - 0.95 * np.cos(phi)], 1)
  t = np.linspace(0, 1, 5)
  p[17:22] = np.stack([-0.55 + 0.45 * t, 0.55 + 0.05 * np.sin(np.pi * t)], 1)
  p[22:27] = p[21:16:-1] * [-1, 1]
  p[27:31] = np.stack([np.zeros(4), [0.4, 0.3, 0.2, 0.1]], 1)
  p[31:36] = np.stack([[-0.12, -0.06, 0, 0.06, 0.12], [-0.02, -0.04, -0.05, -0.04, -0.02]], 1)
  p[36:42] = [[-0.42, 0.4], [-0.34, 0.44], [-0.26, 0.44],
              [-0.18, 0.4], [-0.26, 0.36], [-0.34, 0.36]]
  p[42:48] = p[[39, 38, 37, 36, 41, 40]] * [-1, 1]
  theta = np.pi - np.arange(12) * np.pi / 6
  p[48:60] = np.stack([0.22 * np.cos(theta), -0.3 + 0.08 * np.sin(theta)], 1)
  theta = np.pi - np.arange(8) * np.pi / 4
  p[60:68] = np.stack([0.15 * np.cos(theta), -0.3 + 0.02 * np.sin(theta)], 1)
  return p


def synthetic_face(n=33):
  """Height-field face in dm: vertices [n*n, 3], CCW triangles, landmark indices [68]."""
  x, y = np.meshgrid(np.linspace(-0.8, 0.8, n), np.linspace(-0.8, 0.8, n))
  x, y = x.ravel(), y.ravel()
  z = (0.6 * np.sqrt(np.maximum(1 - x ** 2 / 0.81, 0)) +
       0.25 * np.exp(-x ** 2 / 0.0128 - (y - 0.1) ** 2 / 0.045))  # head + nose
  v = np.stack([x, y, z], 1)
  i = np.arange(n * n).reshape(n, n)
  a, b, c, d = i[:-1, :-1].ravel(), i[:-1, 1:].ravel(), i[1:, 1:].ravel(), i[1:, :-1].ravel()
  tri = np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])
  lm_xy = canonical_landmarks_xy()
  landmarks = np.argmin(((v[None, :, :2] - lm_xy[:, None]) ** 2).sum(-1), axis=1)
  return v, tri, landmarks


class Fixture:
  """Synthetic BFM release files in ``dir`` plus the ground truth they encode."""

  def __init__(self, root: pathlib.Path, flip_triangles=False):
    rng = np.random.default_rng(7)
    self.face, self.tri, self.landmarks = synthetic_face()
    nf = len(self.face)
    n_full, n_exp = nf + 11, nf + 5
    self.bfm_of_face = rng.permutation(n_full)[:nf]  # face vertex f is BFM vertex bfm_of_face[f]
    positions = rng.uniform(-3, 3, size=(n_full, 3))
    positions[self.bfm_of_face] = self.face
    others = np.setdiff1d(np.arange(n_full), self.bfm_of_face)[:5]
    exp_vertices = rng.permutation(np.concatenate([self.bfm_of_face, others]))  # trimIndex - 1
    position = np.full(n_full, -1)
    position[exp_vertices] = np.arange(n_exp)
    self.exp_of_face = position[self.bfm_of_face]
    assert np.all(exp_vertices[self.exp_of_face] == self.bfm_of_face)
    f32 = np.float32
    self.mm = {
        "shapeMU": (positions.reshape(-1, 1) * 1e5).astype(f32),
        "shapePC": rng.standard_normal((3 * n_full, 199)).astype(f32),
        "shapeEV": rng.uniform(1e3, 1e4, (199, 1)).astype(f32),
        "texMU": rng.uniform(40, 220, (3 * n_full, 1)).astype(f32),
        "texPC": rng.standard_normal((3 * n_full, 199)).astype(f32),
        "texEV": rng.uniform(1, 20, (199, 1)).astype(f32),
    }
    self.exp_mu = rng.standard_normal(3 * n_exp).astype(f32)
    self.exp_pc = rng.standard_normal((3 * n_exp, 79)).astype(f32)
    self.std_exp = rng.uniform(1e3, 5e3, 79)
    tri = self.tri[:, [0, 2, 1]] if flip_triangles else self.tri
    self.info = {"tri": (tri + 1).astype(np.float64),
                 "keypoints": (self.landmarks + 1)[None].astype(np.float64),
                 "point_buf": np.ones((nf, 8)), "skinmask": np.ones((1, nf)),
                 "frontmask2_idx": np.arange(1, 11)[:, None].astype(np.float64),
                 "tri_mask2": (tri[:5] + 1).astype(np.float64)}
    self.dir = root
    root.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(root / "01_MorphableModel.mat", self.mm)
    with open(root / "Exp_Pca.bin", "wb") as f:
      f.write(np.array([79], "<i4").tobytes())
      f.write(self.exp_mu.astype("<f4").tobytes())
      # Component after component.
      f.write(np.ascontiguousarray(self.exp_pc.T).astype("<f4").tobytes())
    np.savetxt(root / "std_exp.txt", self.std_exp)
    scipy.io.savemat(root / "BFM_exp_idx.mat",
                     {"trimIndex": (exp_vertices + 1)[:, None].astype(np.float64)})
    scipy.io.savemat(root / "BFM_front_idx.mat",
                     {"idx": (self.exp_of_face + 1)[:, None].astype(np.float64)})
    scipy.io.savemat(root / "facemodel_info.mat", self.info)

  def expected(self):
    """BFM_model_front.mat computed straight from the formulas with the known vertex maps."""
    rows_bfm = (3 * self.bfm_of_face[:, None] + np.arange(3)).ravel()
    rows_exp = (3 * self.exp_of_face[:, None] + np.arange(3)).ravel()
    mm = {k: v.astype(np.float64) for k, v in self.mm.items()}
    return {
        "meanshape": mm["shapeMU"][rows_bfm].T / 1e5,
        "meantex": mm["texMU"][rows_bfm].T,
        "idBase": mm["shapePC"][rows_bfm, :80] * mm["shapeEV"][:80, 0] / 1e5,
        "exBase": self.exp_pc.astype(np.float64)[rows_exp, :64] * self.std_exp[:64] / 1e5,
        "texBase": mm["texPC"][rows_bfm, :80] * mm["texEV"][:80, 0],
    }


@pytest.fixture(scope="module")
def fixture(tmp_path_factory):
  return Fixture(tmp_path_factory.mktemp("bfm_release"))


@pytest.fixture(scope="module")
def converted(fixture, tmp_path_factory):
  out = tmp_path_factory.mktemp("out") / "BFM_model_front.mat"
  return bfm_convert.convert(fixture.dir, output=out)


def test_read_exp_pca(fixture):
  data = bfm_convert.read_exp_pca(fixture.dir / "Exp_Pca.bin")
  np.testing.assert_array_equal(data["expMU"], fixture.exp_mu)
  np.testing.assert_array_equal(data["expPC"], fixture.exp_pc)


def test_read_exp_pca_rejects_wrong_size(tmp_path):
  path = tmp_path / "Exp_Pca.bin"
  path.write_bytes(np.array([79], "<i4").tobytes() + np.zeros(3 * 80 * 2 + 1, "<f4").tobytes())
  with pytest.raises(ValueError, match="do not fit"):
    bfm_convert.read_exp_pca(path)


def test_converter_output_equals_the_formulas(fixture, converted):
  out = scipy.io.loadmat(converted)
  for key, value in fixture.expected().items():
    assert out[key].shape == value.shape, key
    np.testing.assert_allclose(out[key], value, rtol=2e-6, atol=1e-9, err_msg=key)
  for key, value in fixture.info.items():
    np.testing.assert_array_equal(out[key], value)
  assert out["idBase"].shape == (3 * len(fixture.face), 80)


def test_loader_shapes_units_and_indices(fixture, converted):
  model = morphable.load_model("bfm", converted)
  nf = len(fixture.face)
  assert model.name == "bfm" and model.layout == morphable.BFM_LAYOUT and model.layout.total == 257
  assert model.num_vertices == nf and model.num_triangles == len(fixture.tri)
  # Decimetres, centred on the vertex mean (Deep3DFace), xyz de-interleaved.
  np.testing.assert_allclose(model.mean_shape, fixture.face - fixture.face.mean(0), atol=1e-6)
  expected = fixture.expected()
  np.testing.assert_allclose(model.id_basis[7, 100], expected["idBase"][300:303, 7], rtol=1e-5)
  np.testing.assert_allclose(model.exp_basis[63, 5], expected["exBase"][15:18, 63], rtol=1e-5)
  np.testing.assert_allclose(model.albedo_basis[2, 9], expected["texBase"][27:30, 2] / 255,
                             rtol=1e-5)
  np.testing.assert_allclose(model.mean_albedo, expected["meantex"].reshape(-1, 3) / 255, rtol=1e-6)
  np.testing.assert_array_equal(model.triangles, fixture.tri)  # 0-based, already CCW
  np.testing.assert_array_equal(model.landmarks68, fixture.landmarks)
  np.testing.assert_array_equal(model.triangle_uv, model.triangles)
  assert model.uv.shape == (nf, 2) and model.uv.min() >= 0 and model.uv.max() <= 1
  rng = np.random.default_rng(0)
  alpha = rng.standard_normal(80)
  np.testing.assert_allclose(model.shape(alpha),
                             model.mean_shape + np.einsum("k,kvc->vc", alpha, model.id_basis),
                             atol=1e-5)


def test_loader_regions_and_symmetry(fixture, converted):
  model = bfm.load_bfm(converted)
  pairs = model.symmetry_pairs
  v = model.mean_shape
  np.testing.assert_allclose(v[pairs[:, 0]] * [-1, 1, 1], v[pairs[:, 1]], atol=1e-6)
  assert len(pairs) == (len(v) - 33) // 2  # every off-centre grid vertex, centre column dropped
  assert not model.skin_mask[model.landmarks68[36:68]].any()
  forehead = np.argmin(np.linalg.norm(v[:, :2] - [0, 0.65], axis=1))
  cheek = np.argmin(np.linalg.norm(v[:, :2] - [0.45, 0.05], axis=1))
  assert model.skin_mask[forehead] and model.skin_mask[cheek]


def test_loader_fixes_clockwise_triangles(tmp_path):
  fx = Fixture(tmp_path / "cw", flip_triangles=True)
  model = bfm.load_bfm(bfm_convert.convert(fx.dir, output=tmp_path / "cw.mat"))
  a, b, c = (model.mean_shape[model.triangles[:, k]] for k in range(3))
  assert np.all(np.cross(b - a, c - a)[:, 2] > 0)


def test_missing_inputs_name_the_files(fixture, tmp_path):
  partial = tmp_path / "partial"
  partial.mkdir()
  (partial / "01_MorphableModel.mat").write_bytes(
      (fixture.dir / "01_MorphableModel.mat").read_bytes())
  with pytest.raises(AssetNotFoundError) as err:
    bfm_convert.find_sources(partial)
  message = str(err.value)
  for name in ("Exp_Pca.bin", "std_exp.txt", "BFM_exp_idx.mat", "BFM_front_idx.mat",
               "facemodel_info.mat"):
    assert name in message
  assert "01_MorphableModel.mat" not in message and "\n" not in message
  # The auxiliary files may live in a second folder.
  found = bfm_convert.find_sources(partial, aux_dir=fixture.dir)
  assert found["exp_pca"] == fixture.dir / "Exp_Pca.bin"
  assert found["morphable_model"] == partial / "01_MorphableModel.mat"


def test_missing_model_says_how_to_get_it(tmp_path, monkeypatch):
  monkeypatch.setattr(assets, "REPO_ASSETS", tmp_path / "no_assets")
  monkeypatch.setattr(assets, "SHARED_MODELS", tmp_path / "no_shared")
  monkeypatch.delenv(assets.ENV_VAR, raising=False)
  with pytest.raises(AssetNotFoundError) as err:
    morphable.load_model("bfm")
  message = str(err.value)
  for text in ("BFM_model_front.mat", "University of Basel", "convert_bfm.py",
               "assets/bfm/BFM_model_front.mat", "--model_path", "--face_model_path",
               "FACEGCN_ASSETS"):
    assert text in message
  assert "\n" not in message


def test_loader_finds_the_file_through_the_environment(converted, tmp_path, monkeypatch):
  (tmp_path / "bfm").mkdir()
  (tmp_path / "bfm" / "BFM_model_front.mat").symlink_to(converted)
  monkeypatch.setenv(assets.ENV_VAR, str(tmp_path))
  assert bfm.load_bfm().num_vertices == 33 * 33


def test_loader_rejects_bad_files(converted, tmp_path):
  garbage = tmp_path / "garbage.mat"
  garbage.write_bytes(b"\x00" * 300)
  with pytest.raises(ValueError, match="cannot read"):
    bfm.load_bfm(garbage)
  data = scipy.io.loadmat(converted)
  partial = {k: data[k] for k in ("meanshape", "idBase")}
  scipy.io.savemat(tmp_path / "partial.mat", partial)
  with pytest.raises(ValueError, match="missing keys"):
    bfm.load_bfm(tmp_path / "partial.mat")
  zero_based = {k: v for k, v in data.items() if not k.startswith("__")}
  zero_based["tri"] = zero_based["tri"] - 1
  scipy.io.savemat(tmp_path / "zero.mat", zero_based)
  with pytest.raises(ValueError, match="1-based"):
    bfm.load_bfm(tmp_path / "zero.mat")


def test_convert_script(fixture, tmp_path):
  out = tmp_path / "script.mat"
  script = str(REPO / "scripts" / "convert_bfm.py")
  ok = subprocess.run([sys.executable, script, f"--bfm_dir={fixture.dir}", f"--output={out}"],
                      capture_output=True, text=True, timeout=120)
  assert ok.returncode == 0, ok.stderr
  assert out.exists() and scipy.io.loadmat(out)["idBase"].shape == (3 * 33 * 33, 80)
  bad = subprocess.run([sys.executable, script, f"--bfm_dir={tmp_path}"],
                       capture_output=True, text=True, timeout=120)
  assert bad.returncode == 1
  assert "01_MorphableModel.mat" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
