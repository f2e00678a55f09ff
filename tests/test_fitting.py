"""The analysis-by-synthesis fitter on synthetic faces (coarse ICT model, 112-px renders)."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from facegcn_tf.errors import AssetNotFoundError
from facegcn_tf.fitting import evaluation
from facegcn_tf.fitting import fitter as fitter_lib
from facegcn_tf.fitting import pose_init
from facegcn_tf.morphable.ict import load_ict
from facegcn_tf.morphable.model import CoeffLayout
from facegcn_tf.render import geometry as geo
from facegcn_tf.render import random_faces
from facegcn_tf.render import sampling
from facegcn_tf.render.camera import Camera
from facegcn_tf.render.renderer import FaceRenderer

SIZE = 112


@pytest.fixture(scope="module")
def model():
  return load_ict(subdivide=False)


@pytest.fixture(scope="module")
def renderer(model):
  return FaceRenderer(model, Camera().resized(SIZE))


@pytest.fixture(scope="module")
def faces(renderer):
  """Two random faces at 25 and -35 degrees of yaw over photo backgrounds."""
  rng = np.random.default_rng(7)
  coeffs = random_faces.random_coefficients(renderer.layout, 2, rng, yaw=[25.0, -35.0])
  backgrounds = random_faces.background_crops(evaluation.default_backgrounds(), 2, SIZE, rng)
  return random_faces.render_faces(renderer, coeffs, backgrounds, rng, landmark_noise=0.5)


def _yaw_only(renderer, yaw_deg, id_scale=0.5):
  coeffs = np.zeros([1, renderer.layout.total], np.float32)
  s = renderer.layout.slices()
  coeffs[0, s["id"]] = id_scale * np.random.default_rng(3).standard_normal(renderer.layout.n_id)
  coeffs[0, s["angles"]] = np.deg2rad([5.0, yaw_deg, 0.0])
  return coeffs


def test_fit_recovers_pose_and_most_of_the_shape(renderer, model, faces):
  config = fitter_lib.FitConfig(landmark_steps=150, photo_steps=300, photo_size=SIZE)
  result = fitter_lib.fit(renderer, faces.images, faces.landmarks68, faces.face_mask,
                          config=config)
  assert result.coeffs.shape == (2, renderer.layout.total)
  assert set(result.history) == {"pose", "landmarks", "photometric"}
  assert result.history["landmarks"].shape == (150, 2)
  assert result.history["photometric"].shape == (300, 2)
  assert {"photo", "landmark", "reg", "reflectance", "gamma", "total"} <= set(result.losses)
  assert result.rendering.image.shape == (2, SIZE, SIZE, 3)
  # The objective went down a lot from its first photometric step.
  first, last = result.history["photometric"][0], result.history["photometric"][-1]
  assert np.all(last < 0.5 * first), (first, last)
  s = renderer.layout.slices()
  fitted = result.coeffs.numpy()
  rotation = evaluation.rotation_error_deg(fitted[:, s["angles"]], faces.coeffs[:, s["angles"]])
  assert np.all(rotation < 3.0), rotation
  fitted_shape = renderer.shape(result.coeffs).numpy()
  true_shape = renderer.shape(tf.constant(faces.coeffs)).numpy()
  for b in range(2):
    error = evaluation.shape_error_mm(fitted_shape[b], true_shape[b])
    baseline = evaluation.shape_error_mm(model.mean_shape, true_shape[b])
    assert error < 0.45 * baseline, (b, error, baseline)   # landmarks alone reach ~0.65
  # Expressions stay blendshape weights.
  assert fitted[:, s["exp"]].min() >= 0.0 and fitted[:, s["exp"]].max() <= 1.0
  # The final photometric loss is small: the render explains the photo.
  assert np.all(result.losses["photo"] < 0.02), result.losses["photo"]


def test_landmark_fitting_converges_from_a_30_degree_yaw_error(renderer):
  truth = _yaw_only(renderer, 30.0)
  target = renderer.landmarks(renderer.geometry(tf.constant(truth))).numpy()
  config = fitter_lib.FitConfig(pose_steps=150, landmark_steps=400, photo_steps=0, init_pose=False)
  images = np.full([1, SIZE, SIZE, 3], 128.0, np.float32)
  result = fitter_lib.fit(renderer, images, target, np.zeros([1, SIZE, SIZE], np.float32),
                          config=config)
  assert np.all(result.initial_pose[0] == 0.0)   # it really started frontal
  s = renderer.layout.slices()
  angles = result.coeffs.numpy()[0, s["angles"]]
  assert abs(np.degrees(angles[1]) - 30.0) < 2.0, np.degrees(angles)
  fitted = renderer.landmarks(result.rendering.geometry).numpy()
  rmse = np.sqrt(np.mean(np.sum(np.square(fitted - target), -1)))
  assert rmse < 0.5, rmse
  history = result.history["landmarks"][:, 0]
  assert history[-1] < 0.01 * history[0]
  assert result.converged[0]


def test_pnp_start_is_close_to_the_true_pose(renderer, model):
  truth = _yaw_only(renderer, -45.0, id_scale=0.0)
  s = renderer.layout.slices()
  truth[0, s["angles"]] = np.deg2rad([-10.0, -45.0, 8.0])
  truth[0, s["trans"]] = [0.05, -0.03, 0.2]
  target = renderer.landmarks(renderer.geometry(tf.constant(truth))).numpy()[0]
  angles, trans, rms = pose_init.solve_pose(target, model.mean_shape[model.landmarks68],
                                            renderer.camera)
  np.testing.assert_allclose(angles, truth[0, s["angles"]], atol=1e-3)
  np.testing.assert_allclose(trans, truth[0, s["trans"]], atol=1e-3)
  assert rms < 0.01
  rotation = geo.rotation_matrices(tf.constant(truth[:, s["angles"]])).numpy()[0]
  np.testing.assert_allclose(pose_init.angles_from_matrix(rotation), truth[0, s["angles"]],
                             atol=1e-5)
  with pytest.raises(ValueError, match="NaN"):
    pose_init.solve_pose(np.full([68, 2], np.nan), model.mean_shape[model.landmarks68],
                         renderer.camera)


def test_fitting_is_deterministic(renderer, faces):
  config = fitter_lib.FitConfig(pose_steps=5, landmark_steps=10, photo_steps=15, photo_size=SIZE)
  args = (faces.images, faces.landmarks68, faces.face_mask)
  first = fitter_lib.Fitter(renderer, config=config)(*args)
  second = fitter_lib.Fitter(renderer, config=config)(*args)
  assert np.array_equal(first.coeffs.numpy(), second.coeffs.numpy())
  assert np.array_equal(first.history["photometric"], second.history["photometric"])


def test_images_in_a_batch_do_not_interact(renderer, faces):
  """Per-image losses and gradients are the same in a batch and alone."""
  fitter = fitter_lib.Fitter(renderer, config=fitter_lib.FitConfig(photo_size=SIZE))
  coeffs = faces.coeffs + np.random.default_rng(1).normal(0, 0.05, faces.coeffs.shape)
  data = {"landmarks": tf.constant(faces.landmarks68), "images": tf.constant(faces.images),
          "mask": tf.constant(faces.face_mask)}

  def losses_and_grads(select):
    params = renderer.split(tf.constant(coeffs[select], tf.float32))
    with tf.GradientTape() as tape:
      tape.watch(params)
      terms, _ = fitter.loss_terms(params, {k: v[select] for k, v in data.items()}, renderer)
      per_image = fitter_lib.losses.total_loss(terms, fitter.weights)
      objective = tf.reduce_sum(per_image)
    grads = tape.gradient(objective, params)
    return per_image.numpy(), {k: g.numpy() for k, g in grads.items()}

  batch_loss, batch_grads = losses_and_grads(slice(0, 2))
  alone_loss, alone_grads = losses_and_grads(slice(1, 2))
  np.testing.assert_allclose(alone_loss[0], batch_loss[1], rtol=1e-5)
  for name, grad in alone_grads.items():
    np.testing.assert_allclose(grad[0], batch_grads[name][1], rtol=1e-3,
                               atol=1e-4 * np.abs(grad).max(), err_msg=name)


def test_initial_appearance_explains_the_colours(renderer, faces):
  fitter = fitter_lib.Fitter(renderer, config=fitter_lib.FitConfig(photo_size=SIZE))
  truth = renderer.split(tf.constant(faces.coeffs))
  start = dict(truth, tex=tf.zeros_like(truth["tex"]), gamma=tf.zeros_like(truth["gamma"]))
  images, mask = tf.constant(faces.images), tf.constant(faces.face_mask)
  tex, gamma = fitter.initial_appearance(start, renderer, images, mask)

  def photo(params):
    out = renderer.render(fitter.coefficients(params))
    return fitter_lib.losses.photometric_loss(images, out.image * 255, mask * out.mask).numpy()

  before, after = photo(start), photo(dict(start, tex=tex, gamma=gamma))
  assert np.all(after < 0.25 * before), (before, after)


def test_identity_loss_is_used_when_an_encoder_is_given(renderer, faces):
  from facegcn_tf.assets import loaders
  try:
    encoder = loaders.load_identity_encoder("dlib")
  except AssetNotFoundError as err:
    pytest.skip(f"identity weights not prepared: {err}")
  config = fitter_lib.FitConfig(landmark_steps=0, photo_steps=3, photo_size=SIZE)
  result = fitter_lib.fit(renderer, faces.images[:1], faces.landmarks68[:1], faces.face_mask[:1],
                          identity_encoder=encoder, config=config)
  assert "identity" in result.losses
  assert 0.0 < result.losses["identity"][0] < 1.0


def test_known_occluders_leave_the_fit_from_the_first_step(renderer, faces):
  """A magenta patch over a face, given as a known occluder, is in the final occlusion and
  pulls the albedo less than when the fitter must find it itself (short schedule: the
  appearance start already ignores it)."""
  images = faces.images.copy()
  known = np.zeros(faces.face_mask.shape, np.float32)
  ys, xs = np.nonzero(faces.face_mask[0] > 0.5)
  cy, cx = int(np.median(ys)), int(np.median(xs))
  known[0, cy - 12:cy + 12, cx - 14:cx + 14] = 1.0
  images[0][known[0] > 0.5] = (235.0, 20.0, 235.0)
  config = fitter_lib.FitConfig(pose_steps=5, landmark_steps=10, photo_steps=6, photo_size=SIZE)
  fitter = fitter_lib.Fitter(renderer, config=config)
  args = (images, faces.landmarks68, faces.face_mask)
  told = fitter(*args, known_occluders=known)
  alone = fitter(*args)
  inside = (known[0] > 0.5) & (faces.face_mask[0] > 0.5)
  assert told.occlusion[0][inside].min() == 1.0
  truth = renderer.albedo(tf.constant(faces.coeffs)).numpy()[0]
  geometry = renderer.geometry(tf.constant(faces.coeffs))
  under = sampling.bilinear_sample(tf.constant(known[:1, ..., None]),
                                   geometry.pixels[:1]).numpy()[0, :, 0] > 0.5
  seen = renderer.visibility(geometry, renderer.rasterize(geometry)).numpy()[0] > 0.5
  under &= seen
  assert under.sum() > 20
  error = {name: np.abs(renderer.albedo(result.coeffs).numpy()[0] - truth)[under].mean()
           for name, result in (("told", told), ("alone", alone))}
  assert error["told"] < error["alone"], error
  with pytest.raises(ValueError, match="known_occluders must be"):
    fitter(*args, known_occluders=known[:, :10])
  with pytest.raises(ValueError, match="known_occluders needs"):
    fitter_lib.Fitter(renderer, config=config.replace(occlusion=None))(
        *args, known_occluders=known)


def test_bad_inputs_raise_clear_errors(renderer, faces, model):
  images, landmarks, mask = faces.images, faces.landmarks68, faces.face_mask
  with pytest.raises(ValueError, match="images must be"):
    fitter_lib.fit(renderer, images[:, :64], landmarks, mask)
  with pytest.raises(ValueError, match="landmarks68 must be"):
    fitter_lib.fit(renderer, images, landmarks[:, :5], mask)
  bad = landmarks.copy()
  bad[0, 3, 0] = np.nan
  with pytest.raises(ValueError, match="NaN"):
    fitter_lib.fit(renderer, images, bad, mask)
  with pytest.raises(ValueError, match=r"\[0, 1\] floats"):
    fitter_lib.fit(renderer, images / 255.0, landmarks, mask)
  with pytest.raises(ValueError, match="face_mask must hold"):
    fitter_lib.fit(renderer, images, landmarks, mask * 3)
  with pytest.raises(ValueError, match="photo_size"):
    fitter_lib.FitConfig(photo_size=4)
  with pytest.raises(ValueError, match="exp_range"):
    fitter_lib.FitConfig(exp_range=(1.0, 0.0))
  with pytest.raises(ValueError, match="exp_range"):
    fitter_lib.FitConfig(exp_range="bounded")
  small = dataclasses.replace(model, albedo_basis=model.albedo_basis[:10],
                              layout=CoeffLayout(model.layout.n_id, model.layout.n_exp, 10))
  with pytest.raises(ValueError, match="layout"):
    fitter_lib.Fitter(renderer, fit_renderer=FaceRenderer(small))


def test_schedule_and_convergence_flags():
  scales = [fitter_lib.lr_scale(i, 10, 0.1, 0.5) for i in range(10)]
  assert scales[:5] == [1.0] * 5
  assert scales[5] == pytest.approx(1.0) and scales[-1] == pytest.approx(0.1)
  assert all(a >= b for a, b in zip(scales, scales[1:]))
  flat = np.stack([np.linspace(2.0, 1.0, 100), np.full(100, 1.0)], axis=1)
  flat[60:, 0] = 1.0
  assert fitter_lib.converged_flags(flat, 20, 1e-3).tolist() == [True, True]
  falling = np.linspace(2.0, 1.0, 100)[:, None]
  assert fitter_lib.converged_flags(falling, 20, 1e-3).tolist() == [False]
  nan = np.full([50, 1], np.nan)
  assert fitter_lib.converged_flags(nan, 20, 1e-3).tolist() == [False]


def test_scaled_schedule_scales_every_stage_and_keeps_the_rest():
  base = fitter_lib.FitConfig(pose_steps=100, landmark_steps=200, photo_steps=500, refine_steps=30,
                              photo_size=SIZE)
  half = base.scaled(0.5)
  assert (half.pose_steps, half.landmark_steps, half.photo_steps, half.refine_steps) == (
      50, 100, 250, 15)
  assert half.replace(pose_steps=100, landmark_steps=200, photo_steps=500,
                      refine_steps=30) == base
  tiny = base.scaled(0.001)
  assert (tiny.pose_steps, tiny.landmark_steps, tiny.photo_steps, tiny.refine_steps) == (0, 1, 0, 0)
  assert base.scaled(1.0) == base and base.scaled(2).pose_steps == 200
  for bad in (0, -1.0, float("nan"), float("inf"), "2"):
    with pytest.raises(ValueError, match="factor"):
      base.scaled(bad)
