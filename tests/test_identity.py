"""The identity interface: aligned crops -> features, distances, FaceNet loader.

Real photos (skimage astronaut, matplotlib Grace Hopper) are aligned here with
real MTCNN points and a Deep3DFace-style POS scale+translation warp, so these
tests do not depend on the data stage.
"""

import cv2
import numpy as np
import pytest
import tensorflow as tf

from facegcn_tf import assets
from facegcn_tf import metrics
from facegcn_tf.assets import identity_weights
from facegcn_tf.assets import loaders
from facegcn_tf.errors import AssetNotFoundError
from facegcn_tf.networks import facenet
from facegcn_tf.networks import identity

MTCNN_ORDER = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


def _d3d_align(image, points5, shift=(0.0, 0.0)):
  """Deep3DFace alignment: POS fit to the BFM template, 102 px/unit, crop 224."""
  h = image.shape[0]
  up = np.stack([points5[:, 0], h - 1 - points5[:, 1]], axis=1)
  t = identity.D3D_TEMPLATE5
  a = np.zeros((10, 8))
  a[0::2, :3], a[0::2, 3], a[1::2, 4:7], a[1::2, 7] = t, 1, t, 1
  k = np.linalg.lstsq(a, up.reshape(-1), rcond=None)[0]
  zoom = 102.0 / ((np.linalg.norm(k[:3]) + np.linalg.norm(k[4:7])) / 2)
  cx, cy = k[3], h - 1 - k[7]
  m = np.array([[zoom, 0, 112 - zoom * cx + shift[0]], [0, zoom, 112 - zoom * cy + shift[1]]])
  return cv2.warpAffine(image, m, (224, 224), flags=cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_REFLECT).astype(np.float32)


def _mtcnn_points(detector, image):
  face = max(detector.detect_faces(image), key=lambda f: f["confidence"])
  return np.array([face["keypoints"][n] for n in MTCNN_ORDER], np.float64)


@pytest.fixture(scope="module")
def crops(astronaut, grace_hopper):
  """[astronaut, astronaut mirrored, astronaut shifted 6 px, Grace Hopper], [4, 224, 224, 3]."""
  from mtcnn import MTCNN
  detector = MTCNN(device="CPU:0")
  pa = _mtcnn_points(detector, astronaut)
  ph = _mtcnn_points(detector, grace_hopper)
  mirrored = np.ascontiguousarray(astronaut[:, ::-1])
  pm = pa[[1, 0, 2, 4, 3]].copy()
  pm[:, 0] = astronaut.shape[1] - 1 - pm[:, 0]
  return np.stack([_d3d_align(astronaut, pa), _d3d_align(mirrored, pm),
                   _d3d_align(astronaut, pa, shift=(6.0, 0.0)), _d3d_align(grace_hopper, ph)])


@pytest.fixture(scope="module")
def encoder():
  try:
    path = assets.find_asset(f"identity/{identity_weights.WEIGHTS_FILE}")
  except AssetNotFoundError:
    pytest.skip("converted dlib weights absent: run "
                "`python scripts/prepare_assets.py --steps=identity`")
  return identity.dlib_encoder(identity_weights.load_weights(path))


@pytest.fixture(scope="module")
def embeddings(encoder, crops):
  return encoder(crops).numpy()


# --- dlib encoder on real aligned photos ---

def test_output_shape_and_feature_dim(encoder, embeddings):
  assert encoder.feature_dim == 128 and encoder.kind == "dlib"
  assert embeddings.shape == (4, 128)
  norms = np.linalg.norm(embeddings, axis=1)
  assert np.all((norms > 1.0) & (norms < 2.0)), norms     # dlib descriptors: ~1.4


def test_same_person_is_below_threshold(embeddings):
  d = metrics.identity_distance(embeddings[0], embeddings[1:3]).numpy()
  assert np.all(d < identity.SAME_PERSON_THRESHOLD), d      # mirrored, shifted


def test_different_person_is_above_threshold(embeddings):
  d_diff = metrics.identity_distance(embeddings[:3], embeddings[3]).numpy()
  d_same = metrics.identity_distance(embeddings[0], embeddings[1:3]).numpy()
  assert np.all(d_diff > identity.SAME_PERSON_THRESHOLD), d_diff
  assert d_diff.min() > d_same.max() + 0.2
  cos_same = identity.cosine_distance(embeddings[0], embeddings[1]).numpy()
  cos_diff = identity.cosine_distance(embeddings[0], embeddings[3]).numpy()
  assert cos_same < cos_diff


def test_gradients_reach_the_pixels_inside_the_window(encoder, crops):
  x = tf.Variable(crops[[0, 3]])
  with tf.GradientTape() as tape:
    e = encoder(x)
    loss = identity.cosine_distance(e[0], e[1])
  g = tape.gradient(loss, x).numpy()
  assert np.isfinite(g).all()
  assert np.count_nonzero(g[0]) > 0.3 * g[0].size
  w = encoder.window
  lo = int(np.floor((w.center_y - w.side / 2) * 224)) - 1
  # Rows above the chip window cannot influence the descriptor.
  assert lo > 5 and np.all(g[:, :lo] == 0)


def test_uint8_input_is_accepted(encoder, crops):
  a = encoder(crops[:1].round().astype(np.uint8)).numpy()
  b = encoder(crops[:1].round()).numpy()
  np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("shape", [(224, 224, 3), (1, 224, 224, 4), (1, 16, 16, 3)])
def test_bad_image_shapes_are_refused(encoder, shape):
  with pytest.raises(ValueError, match="identity encoder"):
    encoder(np.zeros(shape, np.float32))


# --- crop window ---

def test_crop_window_samples_the_window_evenly():
  ramp = np.tile(np.arange(8, dtype=np.float32), (8, 1))          # value = x
  image = np.stack([ramp, ramp.T, ramp * 0], axis=-1)[None]      # [1, 8, 8, 3]
  out = identity.crop_window(tf.constant(image), identity.CropWindow(0.5, 0.5), 4).numpy()
  # The window is the continuous square [2, 6] (pixel edges); 4 samples at 2.5..5.5
  # in edge coordinates are pixel centres 2, 3, 4, 5.
  np.testing.assert_allclose(out[0, 0, :, 0], [2, 3, 4, 5], atol=1e-5)
  np.testing.assert_allclose(out[0, :, 0, 1], [2, 3, 4, 5], atol=1e-5)


def test_dlib_chip_window_follows_the_template():
  base = identity.dlib_chip_window()
  assert base == identity.DLIB_CHIP_WINDOW
  assert 0.7 < base.side < 0.9 and 0.5 < base.center_y < 0.6
  # A template 10 % larger (same face) puts the face 10 % larger in the crop.
  big = identity.dlib_chip_window(identity.D3D_TEMPLATE5 * 1.1)
  assert big.side == pytest.approx(base.side * 1.1, rel=1e-6)
  assert big.center_y - 0.5 == pytest.approx((base.center_y - 0.5) * 1.1, rel=1e-6)


def test_dlib_chip_window_for_a_template_shaped_like_the_chip():
  # A flat template with dlib's chip layout, centred on the chip centre and
  # scaled so the 150-px chip spans 0.8 of the crop: the window is exactly
  # (0.8, centred); raising the template by 0.1 unit raises the face 10.2 px.
  c = 102.0 * 150 / (224 * 0.8)                        # chip px per template unit
  xy = (identity.DLIB_CHIP_POINTS5 - 74.5) / c * [1, -1]
  flat = np.concatenate([xy, np.zeros((5, 1))], axis=1)
  w = identity.dlib_chip_window(flat)
  assert (w.side, w.center_x, w.center_y) == pytest.approx((0.8, 0.5, 0.5), abs=1e-9)
  raised = identity.dlib_chip_window(flat + [0.0, 0.1, 0.0])
  assert raised.center_y == pytest.approx(0.5 - 10.2 / 224, abs=1e-9)
  assert raised.center_x == pytest.approx(0.5, abs=1e-9)


@pytest.mark.parametrize("template", [np.zeros((4, 3)), np.full((5, 3), np.nan),
                                      identity.D3D_TEMPLATE5 * [-1, 1, 1]])
def test_bad_templates_are_refused(template):
  with pytest.raises(ValueError):
    identity.dlib_chip_window(template)


# --- distances ---

def test_identity_distance_is_l2():
  a = tf.constant([[3.0, 4.0], [1.0, 1.0]])
  np.testing.assert_allclose(metrics.identity_distance(a, tf.zeros(2)).numpy(),
                             [5.0, np.sqrt(2.0)], rtol=1e-6)
  x = tf.Variable([1.0, 2.0])
  with tf.GradientTape() as tape:
    d = metrics.identity_distance(x, tf.constant([1.0, 2.0]))
  assert np.isfinite(tape.gradient(d, x).numpy()).all()


def test_cosine_distance():
  a = tf.constant([[1.0, 0.0], [1.0, 0.0], [2.0, 2.0]])
  b = tf.constant([[0.0, 3.0], [-1.0, 0.0], [1.0, 1.0]])
  np.testing.assert_allclose(identity.cosine_distance(a, b).numpy(), [1.0, 2.0, 0.0], atol=1e-6)


# --- FaceNet loader on a tiny synthetic frozen graph with FaceNet's tensor names ---

def _write_fake_facenet(path):
  """input [B,160,160,3] -> (zeros if phase_train else input) -> 20x20 AvgPool -> [B,8,8,3]."""
  graph = tf.Graph()
  with graph.as_default():
    x = tf.compat.v1.placeholder(tf.float32, [None, 160, 160, 3], name="input")
    phase = tf.compat.v1.placeholder(tf.bool, [], name="phase_train")
    y = tf.where(phase, tf.zeros_like(x), x)
    with tf.compat.v1.name_scope("InceptionResnetV1/Logits/AvgPool_1a_8x8/"):
      tf.nn.avg_pool2d(y, 20, 20, "VALID", name="AvgPool")
  path.write_bytes(graph.as_graph_def().SerializeToString())
  return path


@pytest.fixture()
def fake_facenet(tmp_path):
  return _write_fake_facenet(tmp_path / "20170512-110547.pb")


def test_facenet_preprocessing_and_feature(fake_facenet):
  enc = identity.facenet_encoder(fake_facenet)
  assert enc.kind == "facenet" and enc.feature_dim == 8 * 8 * 3
  cols = np.arange(224, dtype=np.float32)
  image = np.zeros((2, 224, 224, 3), np.float32)
  image[0] = (50 + 0.5 * cols)[None, :, None]          # ramp along x
  image[1] = (200 - 0.25 * cols)[:, None, None]        # ramp along y
  out = enc(image).numpy().reshape(2, 8, 8, 3)
  # Bilinear 224 -> 160 with half-pixel centres samples source x = (j + .5) * 1.4 - .5;
  # a 20-wide block of outputs averages j = 20c .. 20c + 19 (mean 20c + 9.5).
  src = (20 * np.arange(8) + 10) * 1.4 - 0.5
  expected0 = ((50 + 0.5 * src) - 127.5) / 128
  expected1 = ((200 - 0.25 * src) - 127.5) / 128
  np.testing.assert_allclose(out[0, 0, :, 0], expected0, atol=1e-4)
  np.testing.assert_allclose(out[0, :, 0, 2], np.full(8, expected0[0]), atol=1e-4)
  np.testing.assert_allclose(out[1, :, 3, 1], expected1, atol=1e-4)


def test_facenet_is_differentiable(fake_facenet):
  enc = identity.facenet_encoder(fake_facenet)
  x = tf.Variable(np.full((1, 224, 224, 3), 100.0, np.float32))
  with tf.GradientTape() as tape:
    y = tf.reduce_sum(enc(x))
  g = tape.gradient(y, x).numpy()
  # The 192 outputs are 20x20 means covering all 160*160*3 resized values once;
  # bilinear weights sum to 1 per resized value, and the scaling is 1/128, so
  # the gradient summed over the input is 160*160*3 / (400 * 128) = 1.5.
  assert np.isfinite(g).all() and np.all(g > 0)
  assert g.sum() == pytest.approx(160 * 160 * 3 / (400 * 128), rel=1e-4)


def test_facenet_given_a_missing_file_says_so(tmp_path):
  with pytest.raises(AssetNotFoundError, match="20170512-110547.pb' not found"):
    identity.facenet_encoder(tmp_path / "20170512-110547.pb")


def test_facenet_rejects_wrong_graphs(tmp_path):
  garbage = tmp_path / "garbage.pb"
  garbage.write_bytes(b"\xff\x00 not a graph")
  with pytest.raises(ValueError, match="GraphDef"):
    facenet.FaceNetFeatures(garbage)
  graph = tf.Graph()
  with graph.as_default():
    tf.compat.v1.placeholder(tf.float32, [None, 160, 160, 3], name="input")
  other = tmp_path / "other.pb"
  other.write_bytes(graph.as_graph_def().SerializeToString())
  with pytest.raises(ValueError, match="phase_train"):
    facenet.FaceNetFeatures(other)


def test_dlib_encoder_refuses_weights_that_do_not_fit():
  with pytest.raises(ValueError, match="do not fit"):
    identity.dlib_encoder({"fc": np.zeros((256, 128), np.float32)})


# --- finding the weights (facegcn_tf.assets.loaders) ---

def _no_command_lines(message):
  return "scripts/" not in message and "python " not in message and " --" not in message


def test_loader_builds_both_kinds(fake_facenet, encoder):
  enc = loaders.load_identity_encoder("facenet", weights_path=fake_facenet)
  assert enc.kind == "facenet" and enc.feature_dim == 8 * 8 * 3
  enc = loaders.load_identity_encoder("facenet", weights_path=fake_facenet.parent)
  assert enc.kind == "facenet"
  dlib = loaders.load_identity_encoder("dlib", template5=identity.D3D_TEMPLATE5)
  assert dlib.kind == "dlib" and dlib.feature_dim == 128 and dlib.window == encoder.window
  crop = np.full((1, 224, 224, 3), 120.0, np.float32)
  np.testing.assert_allclose(dlib(crop).numpy(), encoder(crop).numpy(), atol=1e-6)


def test_loader_missing_facenet_says_what_and_where_it_goes(tmp_path):
  with pytest.raises(AssetNotFoundError, match="20170512-110547") as err:
    loaders.load_identity_encoder("facenet", weights_path=tmp_path / "20170512-110547.pb")
  assert "assets/facenet/" in str(err.value) and _no_command_lines(str(err.value))


def test_loader_unknown_kind_and_missing_dlib_weights(tmp_path, monkeypatch):
  with pytest.raises(ValueError, match="unknown identity encoder kind"):
    loaders.load_identity_encoder("arcface")
  with pytest.raises(AssetNotFoundError, match="dlib identity weights") as err:
    loaders.load_identity_encoder("dlib", weights_path=tmp_path / "dlib_resnet_v1.npz")
  assert "assets/identity/" in str(err.value) and _no_command_lines(str(err.value))
  monkeypatch.setattr(assets, "REPO_ASSETS", tmp_path / "no_assets")
  monkeypatch.setattr(assets, "SHARED_MODELS", tmp_path / "no_shared")
  monkeypatch.delenv(assets.ENV_VAR, raising=False)
  with pytest.raises(AssetNotFoundError, match="identity/dlib_resnet_v1.npz") as err:
    loaders.locate_dlib_weights()
  assert "assets/identity/" in str(err.value) and _no_command_lines(str(err.value))


def test_loader_refuses_a_dlib_file_that_does_not_fit(tmp_path):
  path = tmp_path / "wrong.npz"
  np.savez(path, fc=np.zeros((256, 128), np.float32))
  with pytest.raises(ValueError, match="do not fit"):
    loaders.load_dlib_resnet(path)
