"""Light presets and turntables (render.light_presets, render.turntable) on the ICT mean face."""

import numpy as np
import pytest
import tensorflow as tf

from facegcn_tf.morphable.ict import load_ict
from facegcn_tf.render import light_presets
from facegcn_tf.render import turntable
from facegcn_tf.render.camera import Camera
from facegcn_tf.render.renderer import FaceRenderer


@pytest.fixture(scope="module")
def renderer():
  """The 9,409-vertex ICT face rendered at 64 px (fast enough for a handful of frames)."""
  return FaceRenderer(load_ict(subdivide=False), Camera().resized(64))


def test_presets_are_finite_white_lights_that_shade_differently(renderer):
  model = renderer.model
  front = tf.constant([[0.0, 0.0, 1.0]])
  shades = {}
  for name in light_presets.preset_names():
    gamma = light_presets.preset(name).numpy()
    assert gamma.shape == (27,) and gamma.dtype == np.float32 and np.isfinite(gamma).all()
    np.testing.assert_array_equal(gamma[:9], gamma[9:18])  # white: the same for R, G, B
    np.testing.assert_array_equal(gamma[:9], gamma[18:])
    coeffs = light_presets.with_light(tf.zeros([1, model.layout.total]), model.layout, gamma)
    image = renderer.render(coeffs).image.numpy()
    assert np.isfinite(image).all()
    shades[name] = image
  names = list(shades)
  for i, a in enumerate(names):
    for b in names[i + 1:]:
      assert np.abs(shades[a] - shades[b]).max() > 0.05, (a, b)
  # The directions mean what their names say: "side" lights the right-facing normals more.
  from facegcn_tf.render import lighting
  right, left = tf.constant([[[1.0, 0.0, 0.0]]]), tf.constant([[[-1.0, 0.0, 0.0]]])
  side = light_presets.preset("side")[tf.newaxis]
  assert lighting.irradiance(right, side).numpy().min() > lighting.irradiance(left, side).numpy().max()
  top = light_presets.sh_light(0.0, top=0.5)[tf.newaxis]
  up, down = tf.constant([[[0.0, 1.0, 0.0]]]), tf.constant([[[0.0, -1.0, 0.0]]])
  assert lighting.irradiance(up, top).numpy().min() > lighting.irradiance(down, top).numpy().max()
  facing = light_presets.sh_light(0.0, front=0.5)[tf.newaxis]
  assert (lighting.irradiance(front[tf.newaxis], facing).numpy().min()
          > lighting.irradiance(-front[tf.newaxis], facing).numpy().max())
  with pytest.raises(ValueError, match="unknown light preset"):
    light_presets.preset("disco")


def test_with_light_replaces_only_the_lighting(renderer):
  layout = renderer.layout
  coeffs = tf.random.normal([2, layout.total])
  gamma = tf.stack([light_presets.preset("studio"), light_presets.preset("side")])
  lit = light_presets.with_light(coeffs, layout, gamma).numpy()
  s = layout.slices()["gamma"]
  np.testing.assert_array_equal(lit[:, s], gamma.numpy())
  keep = np.ones(layout.total, bool)
  keep[s] = False
  np.testing.assert_array_equal(lit[:, keep], coeffs.numpy()[:, keep])
  default = light_presets.with_light(coeffs, layout).numpy()
  np.testing.assert_array_equal(default[:, s], np.tile(light_presets.preset("studio"), [2, 1]))


def test_turntable_of_the_mean_face_turns_and_is_symmetric(renderer):
  layout = renderer.layout
  yaws = (-60.0, -30.0, 0.0, 30.0, 60.0)
  coeffs = np.zeros(layout.total, np.float32)
  s = layout.slices()
  coeffs[s["trans"]] = [0.3, -0.2, 0.5]   # moved off-centre: the turntable re-centres it
  coeffs[s["angles"]] = [0.2, 0.4, 0.1]   # and any pose is replaced by the yaw
  frames_coeffs = turntable.turntable_coefficients(coeffs, layout, yaws).numpy()
  assert frames_coeffs.shape == (5, layout.total)
  np.testing.assert_allclose(frames_coeffs[:, s["angles"]],
                             [[0.0, np.radians(y), 0.0] for y in yaws], atol=1e-6)
  np.testing.assert_array_equal(frames_coeffs[:, s["trans"]], 0.0)

  out = turntable.render_turntable(renderer, coeffs, yaws)
  image, mask = out.image.numpy(), out.mask.numpy()
  assert image.shape == (5, 64, 64, 3) and mask.shape == (5, 64, 64)
  coverage = mask.mean(axis=(1, 2))
  assert (coverage > 0.2).all(), coverage
  # Uncovered pixels show the white background; covered ones are lit skin, not white.
  assert np.allclose(image[mask == 0], 1.0)
  assert image[mask > 0].mean() < 0.95
  # The face turns: consecutive frames differ, and the nose moves to the right with yaw.
  for a, b in zip(mask[:-1], mask[1:]):
    assert (a != b).mean() > 0.01
  nose = renderer.landmarks(out.geometry).numpy()[:, 30, 0]
  assert (np.diff(nose) > 1.0).all(), nose
  # 0°: the mean face is left-right symmetric; ±60° are mirror images of each other.
  front = mask[2]
  assert (front != front[:, ::-1]).mean() < 0.01
  assert (mask[0] != mask[4][:, ::-1]).mean() < 0.01
  columns = np.arange(64)
  assert abs((front * columns).sum() / front.sum() - 31.5) < 0.5

  strip = turntable.side_by_side(out.image).numpy()
  assert strip.shape == (64, 5 * 64, 3) and strip.min() >= 0.0 and strip.max() <= 1.0
  np.testing.assert_allclose(strip[:, 128:192], np.clip(image[2], 0, 1))


def test_turntable_shows_given_vertex_colours(renderer):
  model = renderer.model
  red = np.tile([[1.0, 0.0, 0.0]], [model.num_vertices, 1]).astype(np.float32)
  out = turntable.render_turntable(renderer, np.zeros(model.layout.total, np.float32), (0.0,),
                                   vertex_colors=red, gamma=light_presets.preset("ambient"))
  face = out.image.numpy()[0][out.mask.numpy()[0] > 0]
  assert face[:, 0].min() > 0.1 and np.abs(face[:, 1:]).max() < 1e-6
