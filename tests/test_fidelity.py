"""High fidelity on in-the-wild photos (#11): the face region, overlays that change nothing
outside it, occluders out of the albedo, grey and skin-hued albedos, the photo's albedo solved
directly, and its full-resolution detail in the UV texture.

The photos are the bundled examples with occluders drawn on them (known masks), and faces
rendered by the project's own model with a known albedo.
"""

import cv2
import numpy as np
import pytest
import tensorflow as tf

from facegcn_tf.fitting.fitter import FitConfig
from facegcn_tf.morphable import albedo as albedo_lib
from facegcn_tf.morphable import load_model
from facegcn_tf.render import lighting
from facegcn_tf.render.renderer import FaceRenderer

SCHEDULE = FitConfig().scaled(0.12)


@pytest.fixture(scope="module")
def ict():
  return load_model("ict_coarse")


@pytest.fixture(scope="module")
def reconstructor():
  from facegcn_tf import pipeline
  return pipeline.Reconstructor.from_settings(fit_config=SCHEDULE, refine_steps=0,
                                              texture_size=256)


def _aligned(mask, transform):
  """[224, 224] bool: a full-resolution mask on the face's aligned crop."""
  return cv2.warpAffine(mask.astype(np.uint8), np.asarray(transform.matrix, np.float64),
                        (224, 224), flags=cv2.INTER_NEAREST) > 0


def _photo_file(tmp_path, name, rgb):
  path = tmp_path / f"{name}.png"
  cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1]))
  return path


def test_the_face_region_is_the_inner_face(ict):
  """Forehead to chin, cheek to cheek: fewer triangles, none near the ears or the scalp."""
  assert 0.5 < ict.face_region.mean() < 0.9
  region_vertices = ict.region_vertex_mask
  x, y = ict.mean_shape[:, 0], ict.mean_shape[:, 1]
  lm = ict.mean_shape[ict.landmarks68]
  jaw_width = lm[16, 0] - lm[0, 0]
  assert np.abs(x[region_vertices]).max() < 0.62 * jaw_width   # no ears
  assert np.abs(x[~region_vertices]).max() > 0.62 * jaw_width
  assert y[region_vertices].max() < y.max()                     # not the top of the area
  # The subdivided model keeps the same region (children of region triangles).
  fine = load_model("ict")
  assert fine.face_region.sum() == 4 * ict.face_region.sum()


def test_the_renderer_draws_only_the_face_region(ict):
  coeffs = tf.zeros([1, ict.layout.total])
  face = FaceRenderer(ict).render(coeffs).mask.numpy()[0] > 0.5
  whole = FaceRenderer(ict, whole_mesh=True).render(coeffs).mask.numpy()[0] > 0.5
  assert np.all(whole[face]) and face.sum() < 0.9 * whole.sum()
  # Border normals are those of the whole mesh: the same lit colour along the region.
  a = FaceRenderer(ict).geometry(coeffs).normals.numpy()
  b = FaceRenderer(ict, whole_mesh=True).geometry(coeffs).normals.numpy()
  np.testing.assert_allclose(a, b, atol=1e-6)


def test_overlay_changes_nothing_outside_the_rendered_face(reconstructor, astronaut, tmp_path):
  """Every changed pixel lies under the (feathered) replaced region; the alpha fades at the
  crop edge, so no straight seam; the occluders stay in front."""
  from facegcn_tf.export import overlay
  result = reconstructor.reconstruct(_photo_file(tmp_path, "astronaut", astronaut))
  transform = result.face.aligned.transform
  pasted = overlay.paste_back(result.photo, result.renders.fine, result.renders.mask, transform)
  changed = np.any(pasted != result.photo, axis=-1)
  replaced = cv2.warpAffine(result.renders.mask.astype(np.float32),
                            np.asarray(transform.inverse, np.float64),
                            result.photo.shape[1::-1], flags=cv2.INTER_LINEAR)
  grown = cv2.dilate((replaced > 0).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
  assert changed.any() and not np.any(changed & ~grown)
  # The spill figure of the same overlay: almost nothing outside the face region.
  assert result.figures.get("spill", 0.0) < 0.05
  coverage = result.renders.mask
  assert coverage.max() == 1.0 and coverage.sum() < 0.6 * coverage.size


def _draw_sunglasses(photo, landmarks):
  """Dark lenses and a bridge over the eyes of `photo` (landmarks in its pixels)."""
  out, mask = photo.copy(), np.zeros(photo.shape[:2], np.uint8)
  width = np.ptp(landmarks[:, 0])
  eyes = [landmarks[36:42].mean(axis=0), landmarks[42:48].mean(axis=0)]
  for centre in eyes:
    cv2.ellipse(mask, tuple(int(v) for v in centre), (int(0.17 * width), int(0.11 * width)),
                0, 0, 360, 1, -1)
  cv2.line(mask, tuple(int(v) for v in eyes[0]), tuple(int(v) for v in eyes[1]), 1,
           max(2, int(0.03 * width)))
  rng = np.random.default_rng(0)
  inside = mask.astype(bool)
  out[inside] = np.clip(22 + rng.normal(0, 6, (inside.sum(), 3)), 0, 255).astype(np.uint8)
  return out, inside


def test_occluders_are_segmented_and_kept_out_of_the_albedo(reconstructor, astronaut, tmp_path):
  from facegcn_tf.refinement import direct_albedo
  clean = reconstructor.reconstruct(_photo_file(tmp_path, "clean", astronaut))
  landmarks = clean.face.aligned.transform.to_original(clean.face.landmarks68)
  occluded_rgb, known = _draw_sunglasses(astronaut, landmarks)
  result = reconstructor.reconstruct(_photo_file(tmp_path, "sunglasses", occluded_rgb))
  known_aligned = _aligned(known, result.face.aligned.transform)
  rendered = result.renders.shape.sum(axis=-1) > 0           # the rendered face
  estimated = rendered & (result.renders.mask < 0.5)           # ... that is not replaced
  inside = known_aligned & rendered
  recall = (estimated & inside).sum() / inside.sum()
  precision_in_clean = (estimated & ~known_aligned).sum() / max(estimated.sum(), 1)
  assert recall > 0.8, recall
  # Not the whole face either. What is not replaced is the occlusion estimate plus the
  # triangles with a filled corner (a pixel's margin around it, the silhouette off the
  # photo's face): 0.68 of it lies outside the lenses here (0.60 before the estimate grew its
  # pieces; it now takes more of the astronaut's own fringe).
  assert precision_in_clean < 0.75, precision_in_clean
  # The albedo under the lenses is not dark: the vertices there stay near the clean albedo.
  under = direct_albedo.vertex_occlusion(known_aligned[None].astype(np.float32),
                                         tf.constant(result.pixels[None]))[0].numpy() > 0.5
  under &= clean.visibility > 0.5
  assert under.sum() > 200
  shift = np.abs(result.fine_albedo[under] - clean.fine_albedo[under]).mean()
  lens = 22.0 / 255.0
  assert shift < 0.5 * np.abs(clean.fine_albedo[under] - lens).mean(), shift
  assert result.fine_albedo[under].mean() > 2 * lens
  # The leak (benchmarks/occluders.py): lens vertices whose albedo was taken from the photo.
  leak = (np.asarray(result.photo_trust)[under] > 0.5).mean()
  assert leak <= 0.10, leak


def test_a_skin_coloured_hand_is_kept_out_of_the_albedo(reconstructor, grace_hopper, tmp_path):
  # The residual test misses a hand (the albedo explains it); the occluder network finds it.
  from facegcn_tf.data import occluders
  from facegcn_tf.refinement import direct_albedo
  clean = reconstructor.reconstruct(_photo_file(tmp_path, "clean", grace_hopper))
  landmarks = clean.face.aligned.transform.to_original(clean.face.landmarks68)
  hand = occluders.draw_occluder(grace_hopper, landmarks, "hand", 29)
  result = reconstructor.reconstruct(_photo_file(tmp_path, "hand", hand.image))
  known = _aligned(hand.mask, result.face.aligned.transform)
  under = direct_albedo.vertex_occlusion(known[None].astype(np.float32),
                                         tf.constant(result.pixels[None]))[0].numpy() > 0.5
  under &= clean.visibility > 0.5
  assert under.sum() > 200
  leak = (np.asarray(result.photo_trust)[under] > 0.5).mean()
  assert leak <= 0.10, leak


def test_a_grey_photo_gives_a_grey_albedo(reconstructor, astronaut, tmp_path):
  gray = cv2.cvtColor(cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
  result = reconstructor.reconstruct(_photo_file(tmp_path, "gray", gray))
  for albedo in (result.coarse_albedo, result.fine_albedo):
    assert np.abs(albedo - albedo.mean(axis=-1, keepdims=True)).max() < 1e-5
  assert np.ptp(result.renders.coarse, axis=-1).max() < 1e-5


def test_skin_hues_remove_blue_green_and_purple():
  colors = np.array([[0.2, 0.3, 0.8],    # blue
                     [0.2, 0.7, 0.3],    # green
                     [0.6, 0.2, 0.7],    # purple
                     [0.74, 0.55, 0.46],  # skin
                     [0.64, 0.36, 0.36],  # lips
                     [0.38, 0.28, 0.23]], np.float32)  # brows
  out = albedo_lib.to_skin_hues(colors).numpy()
  y = out @ np.array([0.299, 0.587, 0.114])
  cr, cb = out[:, 0] - y, out[:, 2] - y
  assert np.all(cr >= -1e-6) and np.all(0.564 * cb <= 0.25 * 0.713 * cr + 1e-5)
  np.testing.assert_allclose(out[3:], colors[3:], atol=1e-6)          # skin unchanged
  np.testing.assert_allclose(y, colors @ np.array([0.299, 0.587, 0.114]), atol=1e-5)


def test_the_coarse_albedo_cannot_leave_skin_hues(ict):
  renderer = FaceRenderer(ict)
  rng = np.random.default_rng(0)
  coeffs = np.zeros([8, ict.layout.total], np.float32)
  coeffs[:, ict.layout.slices()["tex"]] = rng.normal(0, 6, (8, ict.layout.n_tex))  # extreme
  albedo = renderer.albedo(tf.constant(coeffs)).numpy()
  y = albedo @ np.array([0.299, 0.587, 0.114])
  assert np.all(albedo[..., 0] - y >= -1e-5)    # never greener/bluer than grey


def test_the_direct_albedo_recovers_a_known_albedo(ict):
  """A face rendered by the model with a known albedo and light: on the vertices the photo
  trusts, T_p with the shading divided out is that albedo."""
  from facegcn_tf.refinement import direct_albedo
  from facegcn_tf.render import random_faces
  renderer = FaceRenderer(ict)
  rng = np.random.default_rng(3)
  coeffs = random_faces.random_coefficients(ict.layout, 2, rng)
  # A smooth albedo (the rasterized image resolves it): a colour plus waves over the face.
  x, y = ict.mean_shape[None, :, 0:1], ict.mean_shape[None, :, 1:2]
  phase = rng.uniform(0, np.pi, (2, 1, 3))
  truth = np.clip(rng.uniform(0.3, 0.8, (2, 1, 3)) + 0.1 * np.sin(6.0 * x + 4.0 * y + phase),
                  0.05, 0.95).astype(np.float32)
  faces = random_faces.render_faces(renderer, coeffs, np.zeros((2, 1, 1, 3)), rng,
                                    vertex_colors=truth)
  coeffs_t = tf.constant(coeffs)
  geometry = renderer.geometry(coeffs_t)
  raster = renderer.rasterize(geometry)
  visibility = renderer.visibility(geometry, raster)
  sampled, _ = renderer.sample_image(faces.images / 255.0, geometry, raster,
                                     visibility=visibility)
  weight = direct_albedo.trust_weights(visibility, tf.zeros_like(visibility),
                                       renderer.view_cosines(geometry))
  fallback = np.full_like(truth, 0.5)
  irradiance = lighting.irradiance(geometry.normals, renderer.split(coeffs_t)["gamma"])
  solved = direct_albedo.direct_albedo(sampled, irradiance, weight, fallback).numpy()
  trusted = weight.numpy() > 0.99
  assert trusted.sum() > 2000
  error = np.abs(solved[trusted] - truth[trusted])
  # Exact up to bilinear sampling between rasterized pixels; the few vertices on the
  # region's rim also sample the black background here (mean 0.011, median 0.001 measured).
  assert error.mean() < 0.015 and np.median(error) < 0.005, (error.mean(), np.median(error))
  np.testing.assert_allclose(solved[weight.numpy() == 0], 0.5)   # untrusted: the fallback


def test_the_uv_texture_carries_the_photos_full_resolution_detail(reconstructor, grace_hopper,
                                                                   tmp_path):
  """With the detail layer the texture is sharper than the per-vertex bake, and a trusted
  texel holds the photo's colour there with the shading divided out."""
  import dataclasses
  result = reconstructor.reconstruct(_photo_file(tmp_path, "grace", grace_hopper))
  plain = dataclasses.replace(result, name="plain", photo_trust=None)
  result.save(tmp_path / "out", formats=("obj", "ply"), texture_size=512)
  plain.save(tmp_path / "out", formats=("obj",), texture_size=512)
  # The texture stage filled the unseen parts once; the writer writes that albedo as is.
  import trimesh
  written = trimesh.load(tmp_path / "out" / "grace.ply", process=False).visual.vertex_colors
  np.testing.assert_allclose(written[:, :3] / 255.0, result.fine_albedo, atol=0.5 / 255 + 1e-6)
  detailed = cv2.imread(str(tmp_path / "out" / "grace_texture.png")).astype(np.float32)
  smooth = cv2.imread(str(tmp_path / "out" / "plain_texture.png")).astype(np.float32)
  differs = np.abs(detailed - smooth).max(axis=-1) > 4
  assert differs.mean() > 0.02

  def sharpness(image):
    return np.var(cv2.Laplacian(image.mean(axis=-1), cv2.CV_32F)[differs])
  assert sharpness(detailed) > 1.5 * sharpness(smooth)
  # At the photo's own resolution the textured mesh is closer to the photo with the detail.
  from facegcn_tf.pipeline import sharpness as sharpness_lib
  renderer = reconstructor.components.renderer
  with_detail = sharpness_lib.sharpness_figures(renderer, result,
                                                detailed[..., ::-1].astype(np.uint8))
  without = sharpness_lib.sharpness_figures(renderer, plain, smooth[..., ::-1].astype(np.uint8))
  assert with_detail["side_px"] > 224
  assert with_detail["psnr_texture_db"] > without["psnr_texture_db"] + 0.5
  assert with_detail["ssim_texture"] > without["ssim_texture"]


def test_all_faces_get_one_overlay_of_the_whole_photo(astronaut, grace_hopper, tmp_path):
  from facegcn_tf import pipeline
  height = min(astronaut.shape[0], grace_hopper.shape[0])
  group = np.concatenate([astronaut[:height], grace_hopper[:height]], axis=1)
  path = _photo_file(tmp_path, "group", group)
  reconstructor = pipeline.Reconstructor.from_settings(
      fit_config=FitConfig().scaled(0.05), refine_steps=0, all_faces=True,
      formats=("png", "json"), texture_size=128)
  summary = pipeline.run([path], tmp_path / "out", reconstructor, progress=False)
  assert [name for name, _ in summary.done] == ["group_face0", "group_face1"]
  whole = cv2.imread(str(tmp_path / "out" / "group_overlay.png"))[..., ::-1]
  assert whole.shape == group.shape
  changed = np.any(whole != group, axis=-1)
  width = astronaut.shape[1]
  assert changed[:, :width].sum() > 2000 and changed[:, width:].sum() > 2000
  for k in range(2):   # each face's own overlay shows that face only
    own = cv2.imread(str(tmp_path / "out" / f"group_face{k}_overlay.png"))[..., ::-1]
    own_changed = np.any(own != group, axis=-1)
    assert not np.any(own_changed & ~changed)


def test_the_fine_render_reproduces_the_photo_where_the_overlay_shows_it(reconstructor,
                                                                          grace_hopper,
                                                                          tmp_path):
  """Measured beside a direct copy of the photo's colours to the vertices (3DDFA_V2's way)
  on the same pixels, the fine render at least matches it (the issue's bar; grace_hopper's
  glasses and bright highlights make it the hardest example): every vertex the photo
  decides keeps the photo's albedo whole (the fill does not ramp into it), its highlights
  are a lit-only term, and the overlay leaves the triangles with a filled corner to the
  photo."""
  from facegcn_tf.render import sampling
  result = reconstructor.reconstruct(_photo_file(tmp_path, "grace", grace_hopper))
  figures = result.figures
  assert figures["psnr_fine_db"] >= figures["psnr_copy_db"] - 0.01, figures
  assert figures["identity_distance_fine"] <= figures["identity_distance_copy"] + 0.002, figures
  assert figures["psnr_fine_db"] > figures["psnr_coarse_db"] + 3.0
  decided = result.photo_trust > 0.5
  # Her glasses are occluders (found by the occluder network since December 2026), so
  # about half the face is filled; 0.16 of the vertices are decided by the photo.
  assert decided.mean() > 0.1
  sampled = sampling.bilinear_sample(
      tf.constant(result.renders.crop[None] / 255.0, tf.float32),
      tf.constant(result.pixels[None], tf.float32)).numpy()[0]
  np.testing.assert_allclose(result.lit_colors[decided], sampled[decided], atol=2e-4)
  # The highlights are what an albedo of at most 1 cannot reach, nothing else.
  lambertian = result.fine_albedo * result.irradiance
  extra = np.any(result.lit_colors - lambertian > 1e-4, axis=-1)
  assert 0 < extra.sum() < 0.2 * decided.sum()
  assert np.all(result.fine_albedo[extra].max(axis=-1) > 1.0 - 1e-4)


def test_highlights_are_what_the_albedo_cannot_reach_on_decided_vertices():
  from facegcn_tf.refinement import direct_albedo
  sampled = tf.constant([[[0.9, 0.6, 0.3], [0.9, 0.6, 0.3], [0.2, 0.2, 0.2]]])
  irradiance = tf.constant([[[0.6, 0.6, 0.6], [1.0, 1.0, 1.0], [0.1, 0.1, 0.1]]])
  albedo = direct_albedo.shading_divided(sampled, irradiance)
  out = direct_albedo.highlights(sampled, irradiance, albedo,
                                 tf.constant([[1.0, 1.0, 0.0]])).numpy()[0]
  np.testing.assert_allclose(out, [[0.3, 0.0, 0.0], [0, 0, 0], [0, 0, 0]], atol=1e-6)
  np.testing.assert_allclose((albedo * irradiance).numpy()[0, :2] + out[:2],
                             sampled.numpy()[0, :2], atol=1e-6)


def test_the_grazing_fade_spares_vertices_inside_the_photos_face():
  from facegcn_tf.refinement import direct_albedo
  seen = tf.ones([1, 4])
  cos = tf.constant([[-0.5, 0.05, 0.5, -0.5]])
  interior = tf.constant([[1.0, 0.0, 0.0, 0.0]])
  weight = direct_albedo.trust_weights(seen, tf.zeros([1, 4]), cos, interior=interior).numpy()
  np.testing.assert_allclose(weight[0, [0, 2, 3]], [1.0, 1.0, 0.0])
  assert 0.0 < weight[0, 1] < 1.0
