"""Camera, rotation, normals and SH lighting against closed forms and independent code."""

import math

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_graphics.math import spherical_harmonics as tfg_sh

from facegcn_tf.render import geometry as geo
from facegcn_tf.render import lighting
from facegcn_tf.render.camera import Camera

SQRT_PI = math.sqrt(math.pi)


def random_unit(n, seed=0):
  v = np.random.RandomState(seed).randn(n, 3)
  return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def test_fov_matches_deep3dface_constant():
  assert math.degrees(Camera().fov_y) == pytest.approx(12.5936, abs=1e-4)


def test_projection_is_the_pinhole_formula_and_agrees_with_clip_space():
  cam = Camera()
  pts = np.random.RandomState(1).uniform(-0.8, 0.8, (1, 50, 3)).astype(np.float32)
  pixels = cam.project(tf.constant(pts)).numpy()[0]
  depth = 10.0 - pts[0, :, 2]
  np.testing.assert_allclose(pixels[:, 0], 111.5 + 1015.0 * pts[0, :, 0] / depth, atol=1e-3)
  np.testing.assert_allclose(pixels[:, 1], 111.5 - 1015.0 * pts[0, :, 1] / depth, atol=1e-3)
  clip = cam.to_clip(tf.constant(pts)).numpy()[0]
  ndc = clip[:, :2] / clip[:, 3:]
  np.testing.assert_allclose((ndc[:, 0] + 1) * 112 - 0.5, pixels[:, 0], atol=1e-3)
  np.testing.assert_allclose((1 - ndc[:, 1]) * 112 - 0.5, pixels[:, 1], atol=1e-3)
  np.testing.assert_allclose(clip[:, 3], depth, atol=1e-5)
  ndc_z = clip[:, 2] / clip[:, 3]
  np.testing.assert_allclose(cam.linear_depth(tf.constant(ndc_z)).numpy(), depth, atol=1e-3)


def test_resized_camera_keeps_the_field_of_view():
  cam = Camera()
  assert cam.resized(512).fov_y == pytest.approx(cam.fov_y)
  with pytest.raises(ValueError):
    Camera(near=5.0, far=1.0)


def test_rotation_is_rz_ry_rx():
  angles = np.array([[0.3, -0.5, 0.2]], np.float32)
  x, y, z = angles[0]
  rx = np.array([[1, 0, 0], [0, np.cos(x), -np.sin(x)], [0, np.sin(x), np.cos(x)]])
  ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
  rz = np.array([[np.cos(z), -np.sin(z), 0], [np.sin(z), np.cos(z), 0], [0, 0, 1]])
  np.testing.assert_allclose(geo.rotation_matrices(tf.constant(angles)).numpy()[0],
                             rz @ ry @ rx, atol=1e-6)
  pts = np.random.RandomState(2).randn(1, 5, 3).astype(np.float32)
  moved = geo.rigid_transform(tf.constant(pts), tf.constant(angles), tf.constant([[1., 2, 3]]))
  np.testing.assert_allclose(moved.numpy()[0], pts[0] @ (rz @ ry @ rx).T + [1, 2, 3], atol=1e-5)


def icosphere(subdivisions=2):
  import trimesh
  mesh = trimesh.creation.icosphere(subdivisions=subdivisions)
  return np.asarray(mesh.vertices, np.float32), np.asarray(mesh.faces, np.int32)


def test_vertex_normals_of_a_sphere_are_radial_and_batched():
  verts, faces = icosphere(3)
  batch = np.stack([verts, 2.0 * verts + 1.0])
  normals = geo.vertex_normals(tf.constant(batch), faces).numpy()
  np.testing.assert_allclose(normals[0], verts / np.linalg.norm(verts, axis=1, keepdims=True),
                             atol=0.02)
  np.testing.assert_allclose(normals[1], normals[0], atol=1e-5)
  flipped = geo.vertex_normals(tf.constant(batch), faces[:, ::-1]).numpy()
  np.testing.assert_allclose(flipped, -normals, atol=1e-6)


def test_sh_basis_matches_tensorflow_graphics_up_to_band_factor_and_sign():
  n = random_unit(200)
  ours = lighting.sh_basis(tf.constant(n)).numpy()
  theta = np.arccos(np.clip(n[:, 2], -1, 1))
  phi = np.arctan2(n[:, 1], n[:, 0])
  l, m = tfg_sh.generate_l_m_permutations(2)
  ref = tfg_sh.evaluate_spherical_harmonics(
      tf.broadcast_to(l, [200, 9]), tf.broadcast_to(m, [200, 9]),
      tf.constant(theta[:, None].astype(np.float32)),
      tf.constant(phi[:, None].astype(np.float32))).numpy()
  band_factor = np.array([math.pi] + [2 * math.pi / math.sqrt(3)] * 3
                         + [2 * math.pi / math.sqrt(8)] * 5)
  ratio = ours / ref
  for k in range(9):
    assert np.abs(ratio[:, k]).std() < 1e-3, k
    assert np.abs(ratio[:, k]).mean() == pytest.approx(band_factor[k], rel=1e-3), k


def test_sphere_shading_closed_form():
  n = random_unit(100, seed=3)
  albedo = np.full((1, 100, 3), 0.5, np.float32)
  gamma = np.zeros((1, 3, 9), np.float32)
  gamma[0, 0, 2] = 1.0   # red: linear in nz
  gamma[0, 1, 0] = 0.2   # green: more ambient
  gamma[0, 2, 8] = 1.0   # blue: nx^2 - ny^2
  out = lighting.shade(tf.constant(albedo), tf.constant(n[None]),
                       tf.constant(gamma.reshape(1, 27))).numpy()[0]
  a2c2 = 3.0 * math.sqrt(5.0 * math.pi) / (2.0 * math.sqrt(6.0))
  ambient = 0.8 * SQRT_PI / 2
  np.testing.assert_allclose(out[:, 0], 0.5 * (ambient + SQRT_PI * n[:, 2]), atol=1e-5)
  np.testing.assert_allclose(out[:, 1], 0.5 * (1.0 * SQRT_PI / 2) * np.ones(100), atol=1e-5)
  np.testing.assert_allclose(out[:, 2], 0.5 * (ambient + a2c2 * 0.5 * (n[:, 0]**2 - n[:, 1]**2)),
                             atol=1e-5)


def test_lighting_gradients_reach_gamma_and_normals():
  n = tf.constant(random_unit(10)[None])
  gamma = tf.Variable(tf.random.normal([1, 27], stddev=0.1))
  with tf.GradientTape(persistent=True) as tape:
    tape.watch(n)
    out = tf.reduce_sum(lighting.shade(tf.ones([1, 10, 3]) * 0.7, n, gamma))
  assert np.abs(tape.gradient(out, gamma).numpy()).min() > 0
  assert np.abs(tape.gradient(out, n).numpy()).max() > 0
