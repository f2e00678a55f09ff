"""The tf_mesh_renderer op through our wrapper, against an independent NumPy rasterizer."""

import numpy as np
import pytest
import tensorflow as tf

from facegcn_tf.errors import RasterizerNotBuiltError
from facegcn_tf.render import rasterizer
from facegcn_tf.render.interpolate import interpolate_attributes

H, W = 18, 22


def reference_rasterize(clip, tris, height, width):
  """Brute-force perspective-correct rasterization, image convention (row 0 = top)."""
  clip = np.asarray(clip, np.float64)
  ids = np.zeros((height, width), np.int64)
  bary = np.zeros((height, width, 3))
  zbuf = np.ones((height, width))
  xs = (np.arange(width) + 0.5) / (width / 2) - 1.0
  ys = 1.0 - (np.arange(height) + 0.5) / (height / 2)
  px, py = np.meshgrid(xs, ys)
  for t, (a, b, c) in enumerate(tris):
    w = clip[[a, b, c], 3]
    ndc = clip[[a, b, c], :2] / w[:, None]
    (x0, y0), (x1, y1), (x2, y2) = ndc
    area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
    if area == 0:
      continue
    l0 = ((x1 - px) * (y2 - py) - (x2 - px) * (y1 - py)) / area
    l1 = ((x2 - px) * (y0 - py) - (x0 - px) * (y2 - py)) / area
    l2 = 1.0 - l0 - l1
    lam = np.stack([l0, l1, l2], -1)
    inside = np.all(lam >= 0, -1)
    persp = lam / w
    persp /= persp.sum(-1, keepdims=True)
    z = (persp @ clip[[a, b, c], 2]) / (persp @ w)
    take = inside & (z >= -1) & (z <= 1) & (z <= zbuf)
    ids[take], bary[take], zbuf[take] = t, persp[take], z[take]
  return ids, bary, zbuf


def tri_scene():
  """Two overlapping triangles (near one drawn first) plus a separate one; w = 1."""
  v = np.array([
      [-0.83, -0.71, 0.5, 1], [0.61, -0.77, 0.5, 1], [-0.12, 0.79, 0.5, 1],   # far
      [-0.43, -0.27, -0.2, 1], [0.87, 0.13, -0.2, 1], [0.07, 0.93, -0.2, 1],  # near
      [0.57, -0.93, 0.0, 1], [0.97, -0.91, 0.0, 1], [0.93, -0.41, 0.0, 1],
  ], np.float32)
  t = np.array([[3, 4, 5], [0, 1, 2], [6, 8, 7]], np.int32)  # last one wound the other way
  return v, t


def perspective_scene():
  """A quad in 3D seen by a pinhole camera: clip w varies across the surface."""
  cam = np.array([[-0.6, -0.5, -3.0], [0.7, -0.6, -4.5], [0.6, 0.7, -4.0], [-0.5, 0.6, -2.6]])
  f = 2.0
  near, far = 1.0, 10.0
  x, y, z = cam.T
  clip = np.stack([f * x, f * y,
                   (far + near) / (near - far) * z + 2 * far * near / (near - far), -z], -1)
  return clip.astype(np.float32), np.array([[0, 1, 2], [0, 2, 3]], np.int32)


@pytest.mark.parametrize("scene", [tri_scene, perspective_scene])
def test_matches_reference(scene):
  v, t = scene()
  out = rasterizer.rasterize(v[None], t, (H, W))
  ids, bary, z = reference_rasterize(v, t, H, W)
  covered = bary.sum(-1) > 0
  assert covered.sum() > 20 and (~covered).sum() > 20
  np.testing.assert_array_equal(out.mask[0].numpy() > 0, covered)
  np.testing.assert_array_equal(out.triangle_ids[0].numpy()[covered], ids[covered])
  np.testing.assert_allclose(out.barycentrics[0].numpy(), bary, atol=2e-5)
  np.testing.assert_allclose(out.z_buffer[0].numpy(), z, atol=2e-5)
  # Barycentrics sum to one where covered and are zero on the background.
  sums = out.barycentrics[0].numpy().sum(-1)
  np.testing.assert_allclose(sums[covered], 1.0, atol=1e-5)
  np.testing.assert_array_equal(sums[~covered], 0.0)
  np.testing.assert_array_equal(out.z_buffer[0].numpy()[~covered], 1.0)


def test_occlusion_independent_of_draw_order():
  v, t = tri_scene()
  a = rasterizer.rasterize(v[None], t, (H, W))
  b = rasterizer.rasterize(v[None], t[[1, 0, 2]], (H, W))
  ids_a, ids_b = a.triangle_ids[0].numpy(), b.triangle_ids[0].numpy()
  covered = a.mask[0].numpy() > 0
  np.testing.assert_array_equal(covered, b.mask[0].numpy() > 0)
  near_a = (ids_a == 0) & covered
  assert near_a.sum() > 10
  # The near triangle (index 0 in a, 1 in b) wins everywhere it covers, in both orders.
  np.testing.assert_array_equal(near_a, (ids_b == 1) & covered)
  assert np.all(a.z_buffer[0].numpy()[near_a] < 0)


def test_both_windings_and_image_orientation():
  v = np.array([[-0.5, 0.1, 0, 1], [0.5, 0.1, 0, 1], [0.0, 0.9, 0, 1]], np.float32)
  ccw = rasterizer.rasterize(v[None], [[0, 1, 2]], (H, W))
  cw = rasterizer.rasterize(v[None], [[0, 2, 1]], (H, W))
  np.testing.assert_array_equal(ccw.mask.numpy(), cw.mask.numpy())
  np.testing.assert_allclose(ccw.barycentrics.numpy()[..., [0, 2, 1]], cw.barycentrics.numpy(),
                             atol=1e-6)
  # The triangle has y > 0 (upper half of NDC): it must appear in the top rows.
  rows = np.nonzero(ccw.mask[0].numpy().any(-1))[0]
  assert rows.max() < H // 2


def test_batches_of_one_and_three_different_meshes():
  v1, t1 = tri_scene()
  v2, t2 = perspective_scene()
  v2 = np.concatenate([v2, np.tile(v2[:1], (5, 1))])  # pad to 9 vertices
  t2 = np.concatenate([t2, np.zeros((1, 3), np.int32)])  # pad with a degenerate triangle
  v3 = v1 * np.array([0.8, -0.7, 1, 1], np.float32)
  verts = np.stack([v1, v2, v3])
  tris = np.stack([t1, t2, t1])
  out = rasterizer.rasterize(verts, tris, (H, W))
  assert out.barycentrics.shape == (3, H, W, 3)
  for i in range(3):
    ids, bary, _ = reference_rasterize(verts[i], tris[i], H, W)
    np.testing.assert_allclose(out.barycentrics[i].numpy(), bary, atol=2e-5)
    single = rasterizer.rasterize(verts[i:i + 1], tris[i], (H, W))
    np.testing.assert_array_equal(single.triangle_ids.numpy()[0], out.triangle_ids.numpy()[i])


def test_dynamic_batch_in_tf_function():
  v, t = tri_scene()

  @tf.function(input_signature=[tf.TensorSpec([None, 9, 4], tf.float32)])
  def render(verts):
    out = rasterizer.rasterize(verts, t, (H, W))
    return out.mask

  m1 = render(v[None])
  m3 = render(np.stack([v, v, v]))
  assert m1.shape == (1, H, W) and m3.shape == (3, H, W)
  np.testing.assert_array_equal(m3.numpy()[2], m1.numpy()[0])
  assert render.experimental_get_tracing_count() == 1


def test_barycentric_gradient_matches_finite_differences():
  v, t = perspective_scene()
  weights = tf.constant(np.random.RandomState(1).randn(1, H, W, 3), tf.float32)

  def f(verts):
    return tf.reduce_sum(rasterizer.rasterize(verts, t, (H, W)).barycentrics * weights)

  theoretical, numerical = tf.test.compute_gradient(f, [tf.constant(v[None])], delta=1e-3)
  theoretical, numerical = theoretical[0], numerical[0]
  assert np.abs(theoretical).max() > 1.0
  np.testing.assert_allclose(theoretical, numerical, atol=0.05 * np.abs(numerical).max())


def test_image_loss_gradient_moves_vertices_through_tf_function():
  # A quad covering most of the image with a colour ramp: the image loss is driven by
  # interior barycentrics, which is what the op differentiates (not silhouettes).
  v = np.array([[-0.9, -0.9, 0, 1], [0.9, -0.9, 0, 1], [0.9, 0.9, 0, 1], [-0.9, 0.9, 0, 1]],
               np.float32)
  t = np.array([[0, 1, 2], [0, 2, 3]], np.int32)
  colours = tf.constant([[[0.0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]]], tf.float32)
  size = (32, 32)
  target_vertices = v + np.array([[0.1, 0.05, 0, 0]] * 2 + [[-0.05, 0.1, 0, 0]] * 2, np.float32)
  target = interpolate_attributes(
      colours, t, rasterizer.rasterize(target_vertices[None], t, size))

  @tf.function
  def loss_and_grad(verts):
    with tf.GradientTape() as tape:
      tape.watch(verts)
      image = interpolate_attributes(colours, t, rasterizer.rasterize(verts, t, size))
      loss = tf.reduce_mean(tf.square(image - target))
    return loss, tape.gradient(loss, verts)

  verts = tf.constant(v[None])
  loss0, _ = loss_and_grad(verts)
  for _ in range(20):
    loss, grad = loss_and_grad(verts)
    assert np.all(np.isfinite(grad.numpy())) and np.abs(grad.numpy()[..., :2]).max() > 0
    verts = verts - 2.0 * grad
  assert loss < 0.5 * loss0


def test_interpolation_reproduces_linear_attribute():
  v, t = perspective_scene()
  out = rasterizer.rasterize(v[None], t, (H, W))
  attr = tf.constant(v[None, :, :3], tf.float32)  # clip-space xyz is affine in object space
  image = interpolate_attributes(attr, t, out, background=-7.0).numpy()[0]
  _, bary, _ = reference_rasterize(v, t, H, W)
  covered = bary.sum(-1) > 0
  np.testing.assert_array_equal(image[~covered], -7.0)
  # Perspective-correct interpolation of clip x / clip w equals the pixel's NDC x.
  ndc_x = image[..., 0] / interpolate_attributes(
      tf.constant(v[None, :, 3:]), t, out).numpy()[0, ..., 0].clip(1e-6)
  xs = (np.arange(W) + 0.5) / (W / 2) - 1.0
  np.testing.assert_allclose(ndc_x[covered], np.broadcast_to(xs, (H, W))[covered], atol=1e-4)


@pytest.mark.parametrize("verts, tris, size, error", [
    (np.zeros((3, 4), np.float32), [[0, 1, 2]], (4, 4), ValueError),            # rank 2
    (np.zeros((1, 3, 3), np.float32), [[0, 1, 2]], (4, 4), ValueError),         # xyz, not xyzw
    (np.zeros((1, 3, 4), np.int32), [[0, 1, 2]], (4, 4), ValueError),           # int vertices
    (np.zeros((1, 3, 4), np.float32), [[0.0, 1.0, 2.0]], (4, 4), ValueError),   # float tris
    (np.zeros((1, 3, 4), np.float32), [[0, 1]], (4, 4), ValueError),            # not triples
    (np.zeros((1, 3, 4), np.float32), [[0, 1, 2]], (0, 4), ValueError),         # zero size
    (np.zeros((1, 3, 4), np.float32), [[0, 1, 2]], (4,), ValueError),           # bad size
    (np.zeros((1, 3, 4), np.float32), [[0, 1, 3]], (4, 4), tf.errors.InvalidArgumentError),
    (np.zeros((1, 3, 4), np.float32), [[0, -1, 2]], (4, 4), tf.errors.InvalidArgumentError),
    (np.full((1, 3, 4), np.nan, np.float32), [[0, 1, 2]], (4, 4),
     tf.errors.InvalidArgumentError),
    (np.zeros((2, 3, 4), np.float32), np.zeros((3, 1, 3), np.int32), (4, 4),
     tf.errors.InvalidArgumentError),
])
def test_bad_inputs_raise_clear_errors(verts, tris, size, error):
  with pytest.raises(error):
    rasterizer.rasterize(verts, tris, size)


def test_out_of_range_index_caught_inside_tf_function():
  @tf.function
  def render(tris):
    return rasterizer.rasterize(tf.zeros([1, 3, 4]), tris, (4, 4)).mask

  with pytest.raises(tf.errors.InvalidArgumentError, match="number of vertices"):
    render(tf.constant([[0, 1, 1000000]]))


def test_missing_library_says_how_to_build(tmp_path, monkeypatch):
  monkeypatch.delenv(rasterizer.ENV_VAR, raising=False)
  monkeypatch.setattr(rasterizer, "BAZEL_OUTPUT", tmp_path / "nope.so")
  with pytest.raises(RasterizerNotBuiltError, match="bazel build //third_party:rasterizer"):
    rasterizer.find_op_library()


def test_library_found_through_environment(monkeypatch):
  built = rasterizer.find_op_library()
  monkeypatch.setattr(rasterizer, "BAZEL_OUTPUT", built.parent / "missing.so")
  monkeypatch.setenv(rasterizer.ENV_VAR, str(built))
  assert rasterizer.find_op_library() == built
