"""FaceRenderer: coefficients -> images, on the ICT face and on hand-made meshes."""

import numpy as np
import pytest
import tensorflow as tf

from facegcn_tf.morphable.ict import load_ict
from facegcn_tf.morphable.model import CoeffLayout, MorphableModel
from facegcn_tf.render.camera import Camera
from facegcn_tf.render.renderer import FaceRenderer


@pytest.fixture(scope="module")
def ict():
  return load_ict(subdivide=True)


@pytest.fixture(scope="module")
def ict_coarse():
  return load_ict(subdivide=False)


def coeffs_with(renderer, batch=1, **parts):
  c = np.zeros((batch, renderer.layout.total), np.float32)
  slices = renderer.layout.slices()
  for name, value in parts.items():
    c[:, slices[name]] = value
  return tf.constant(c)


def test_zero_coefficients_put_landmarks_where_the_camera_says(ict):
  renderer = FaceRenderer(ict)
  coeffs = renderer.zero_coefficients()
  geometry = renderer.geometry(coeffs)
  # Independent pinhole projection of the mean shape's landmark vertices.
  lm3d = ict.mean_shape[ict.landmarks68]
  depth = 10.0 - lm3d[:, 2]
  expected = np.stack([111.5 + 1015.0 * lm3d[:, 0] / depth,
                       111.5 - 1015.0 * lm3d[:, 1] / depth], -1)
  np.testing.assert_allclose(renderer.landmarks(geometry).numpy()[0], expected, atol=1e-3)
  # And the rendered surface at those pixels IS the landmark's 3D point: render the
  # world-space positions as colours and read them back at the landmark pixels.
  out = renderer.render(coeffs, vertex_colors=geometry.vertices, lit=False, background=np.nan)
  image = out.image.numpy()[0]
  rows, cols = np.round(expected[:, 1]).astype(int), np.round(expected[:, 0]).astype(int)
  seen = image[rows, cols]
  visible = np.isfinite(seen[:, 0])
  assert visible.sum() >= 50, visible.sum()  # eyelid landmarks may sit on the eye holes
  # One pixel is ~0.01 dm at this distance: x and y agree to about a pixel everywhere; depth
  # too where the surface faces the camera (at grazing jaw points it changes fast per pixel).
  np.testing.assert_allclose(seen[visible, :2], lm3d[visible, :2], atol=0.02)
  frontal = visible & (geometry.normals.numpy()[0, ict.landmarks68, 2] > 0.5)
  assert frontal.sum() >= 30
  np.testing.assert_allclose(seen[frontal, 2], lm3d[frontal, 2], atol=0.03)


def test_flipping_yaw_mirrors_the_image(ict_coarse):
  renderer = FaceRenderer(ict_coarse)
  coeffs = coeffs_with(renderer, batch=2, angles=[0, 0, 0])
  coeffs = coeffs.numpy()
  coeffs[0, renderer.layout.slices()["angles"]] = [0.0, 0.4, 0.0]
  coeffs[1, renderer.layout.slices()["angles"]] = [0.0, -0.4, 0.0]
  mask = renderer.render(tf.constant(coeffs)).mask.numpy() > 0
  mirrored = mask[1, :, ::-1]
  iou = (mask[0] & mirrored).sum() / (mask[0] | mirrored).sum()
  assert iou > 0.97, iou
  unflipped = (mask[0] & mask[1]).sum() / (mask[0] | mask[1]).sum()
  assert unflipped < iou - 0.05  # the test would notice a yaw that did nothing


def test_gradients_reach_colours_shape_pose_and_lighting(ict_coarse):
  renderer = FaceRenderer(ict_coarse)
  coeffs = tf.Variable(coeffs_with(renderer, gamma=np.r_[0.1, np.zeros(26)]))
  colors = tf.Variable(tf.fill([1, ict_coarse.num_vertices, 3], 0.6))
  target = tf.random.uniform([1, 224, 224, 3], seed=1)
  with tf.GradientTape() as tape:
    out = renderer.render(coeffs, vertex_colors=colors)
    loss = tf.reduce_mean(tf.square(out.image - target) * out.mask[..., None])
  g_coeffs, g_colors = tape.gradient(loss, [coeffs, colors])
  g = renderer.layout.split(g_coeffs.numpy())
  assert np.abs(g_colors.numpy()).max() > 0
  for part in ("id", "exp", "angles", "gamma", "trans"):
    assert np.abs(g[part]).max() > 0, part
    assert np.all(np.isfinite(g[part])), part


def test_descent_recovers_lighting_and_yaw(ict_coarse):
  renderer = FaceRenderer(ict_coarse, Camera().resized(96))
  slices = renderer.layout.slices()
  true_gamma = np.zeros(27, np.float32)
  true_gamma[[0, 9, 18]] = 0.3
  true_gamma[[2, 11, 20]] = 0.25   # light from the front (+z)
  true_gamma[[3, 12, 21]] = -0.2   # and from the side
  truth = coeffs_with(renderer, angles=[0.0, 0.15, 0.0], gamma=true_gamma)
  target = renderer.render(truth).image

  start = truth.numpy().copy()
  start[0, slices["angles"]] = [0.0, 0.0, 0.0]
  start[0, slices["gamma"]] = 0.0
  coeffs = tf.Variable(start)
  trainable = np.zeros(renderer.layout.total, np.float32)
  trainable[slices["angles"]] = 1.0
  trainable[slices["gamma"]] = 1.0
  optimizer = tf.keras.optimizers.Adam(0.02)

  @tf.function
  def step():
    with tf.GradientTape() as tape:
      out = renderer.render(coeffs)
      loss = tf.reduce_mean(tf.abs(out.image - target))
    grad = tape.gradient(loss, coeffs) * trainable
    optimizer.apply_gradients([(grad, coeffs)])
    return loss

  losses = [float(step()) for _ in range(150)]
  found = coeffs.numpy()[0]
  assert losses[-1] < 0.2 * losses[0]
  assert abs(found[slices["angles"]][1] - 0.15) < 0.02
  np.testing.assert_allclose(found[slices["gamma"]][[0, 2, 3]], true_gamma[[0, 2, 3]], atol=0.06)


def two_quads_model():
  """A front quad partly hiding a back quad; both face the camera."""
  v = np.array([[-0.3, -0.3, 0.2], [0.3, -0.3, 0.2], [0.3, 0.3, 0.2], [-0.3, 0.3, 0.2],
                [-0.6, -0.6, -0.2], [0.6, -0.6, -0.2], [0.6, 0.6, -0.2], [-0.6, 0.6, -0.2],
                [0.0, 0.0, -0.2]], np.float32)
  t = np.array([[0, 1, 2], [0, 2, 3], [4, 5, 8], [5, 6, 8], [6, 7, 8], [7, 4, 8]], np.int32)
  n = len(v)
  return MorphableModel(
      name="two_quads", mean_shape=v, id_basis=np.zeros((0, n, 3)), exp_basis=np.zeros((0, n, 3)),
      mean_albedo=np.full((n, 3), 0.5), albedo_basis=np.zeros((0, n, 3)), triangles=t,
      uv=np.zeros((1, 2)), triangle_uv=np.zeros_like(t), landmarks68=np.zeros(68, np.int32),
      skin_mask=np.ones(n, bool), symmetry_pairs=np.zeros((0, 2), np.int32),
      layout=CoeffLayout(0, 0, 0))


def test_visibility_uses_the_z_buffer():
  renderer = FaceRenderer(two_quads_model())
  coeffs = renderer.zero_coefficients()
  geometry = renderer.geometry(coeffs)
  raster = renderer.rasterize(geometry)
  vis = renderer.visibility(geometry, raster).numpy()[0]
  # The back quad's centre (8) faces the camera but is hidden; its corners stick out.
  np.testing.assert_array_equal(vis, [1, 1, 1, 1, 1, 1, 1, 1, 0])
  # A vertex facing away is never visible.
  flipped = renderer.geometry(coeffs_with(renderer, angles=[0.0, np.pi, 0.0]))
  assert renderer.visibility(flipped, renderer.rasterize(flipped)).numpy().max() == 0


def test_sampled_image_colours_match_rendered_vertex_colours(ict_coarse):
  renderer = FaceRenderer(ict_coarse)
  coeffs = coeffs_with(renderer, angles=[0.1, 0.5, 0.0])
  geometry = renderer.geometry(coeffs)
  # A smooth colour field over the face, rendered, then sampled back at the vertices.
  colors = tf.sigmoid(geometry.shape * tf.constant([4.0, 3.0, 2.0]))
  out = renderer.render(coeffs, vertex_colors=colors, lit=False, geometry=geometry)
  sampled, vis = renderer.sample_image(out.image, geometry, out.raster)
  vis = vis.numpy()[0] > 0
  assert 0.3 < vis.mean() < 0.95  # yawed: a good part of the face is hidden
  err = np.abs(sampled.numpy()[0][vis] - colors.numpy()[0][vis])
  assert np.median(err) < 0.01 and np.percentile(err, 95) < 0.05
  np.testing.assert_array_equal(sampled.numpy()[0][~vis], 0.0)
