"""Tests for facegcn_tf.export: atomic writes, UV baking, unseen-part fill, mesh files,
overlays, the JSON report and the per-face writer (coarse ICT model, real rasterizer op)."""

import collections
import json
import math
import os
import pathlib

import cv2
import numpy as np
import pytest
import scipy.ndimage
import tensorflow as tf
import trimesh

from facegcn_tf.data import alignment
from facegcn_tf import atomic
from facegcn_tf.export import invisible_fill
from facegcn_tf.export import mesh_io
from facegcn_tf.export import overlay
from facegcn_tf.export import report
from facegcn_tf.export import seams
from facegcn_tf.export import uv_texture
from facegcn_tf.export import writer
from facegcn_tf.morphable.ict import load_ict
from facegcn_tf.render.renderer import FaceRenderer
from facegcn_tf.pipeline import assemble
from facegcn_tf.render import shape_shading


@pytest.fixture(scope="module")
def model():
  return load_ict(subdivide=False)  # 9,409 V / 18,460 T, UV seams


@pytest.fixture(scope="module")
def renderer(model):
  return FaceRenderer(model)


def _linear_colors(model, seed=0):
  """[V, 3] colours that are an affine function of the mean-shape position, in (0, 1)."""
  rng = np.random.RandomState(seed)
  pos = model.mean_shape.astype(np.float64)
  pos = (pos - pos.min(0)) / np.ptp(pos, axis=0)  # [0, 1] per axis
  a = rng.uniform(-1, 1, (3, 3))
  a /= np.abs(a).sum(axis=0, keepdims=True) * 2.5
  return (0.5 + (pos - 0.5) @ a).astype(np.float32)


def _rgb_read(path):
  image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
  assert image is not None, path
  code = cv2.COLOR_BGR2RGB if image.shape[-1] == 3 else cv2.COLOR_BGRA2RGBA
  return cv2.cvtColor(image, code)


def _bfs_distance(triangles, num, sources):
  """Hop distance to the nearest source, by a plain Python BFS."""
  neighbours = [set() for _ in range(num)]
  for a, b, c in triangles:
    neighbours[a].update((b, c))
    neighbours[b].update((a, c))
    neighbours[c].update((a, b))
  dist = np.full(num, np.inf)
  queue = collections.deque(sources)
  dist[list(sources)] = 0
  while queue:
    v = queue.popleft()
    for w in neighbours[v]:
      if dist[w] == np.inf:
        dist[w] = dist[v] + 1
        queue.append(w)
  return dist


# ---------------------------------------------------------------- atomic writes


def test_atomic_write_replaces_and_leaves_only_the_file(tmp_path):
  target = tmp_path / "a.txt"
  atomic.write_text(target, "first\n")
  atomic.write_bytes(target, b"second")
  assert target.read_bytes() == b"second"
  assert sorted(os.listdir(tmp_path)) == ["a.txt"]
  assert (target.stat().st_mode & 0o777) == 0o666 & ~_umask()


def _umask():
  mask = os.umask(0)
  os.umask(mask)
  return mask


def test_interrupted_write_leaves_no_partial_and_no_temp_file(tmp_path):
  target = tmp_path / "mesh.obj"
  with pytest.raises(RuntimeError, match="boom"):
    with atomic.atomic_write(target, "wb") as f:
      f.write(b"v 0 0 0\n" * 1000)
      raise RuntimeError("boom")
  assert os.listdir(tmp_path) == []
  # With an older complete file in place, the interrupted write keeps it intact.
  atomic.write_text(target, "old complete file\n")
  with pytest.raises(KeyboardInterrupt):
    with atomic.atomic_write(target, "w") as f:
      f.write("half of a new fi")
      raise KeyboardInterrupt
  assert target.read_text() == "old complete file\n"
  assert os.listdir(tmp_path) == ["mesh.obj"]


def test_encoder_errors_touch_nothing(tmp_path):
  target = tmp_path / "r.json"
  atomic.write_json(target, {"ok": 1})
  with pytest.raises(ValueError):
    atomic.write_json(target, {"bad": float("nan")})
  assert json.loads(target.read_text()) == {"ok": 1}
  with pytest.raises(ValueError, match="shape"):
    atomic.write_image(tmp_path / "x.png", np.zeros((4, 4, 2), np.uint8))
  with pytest.raises(ValueError, match="extension"):
    atomic.write_image(tmp_path / "x.xyz", np.zeros((4, 4, 3), np.uint8))
  with pytest.raises(FileNotFoundError, match="does not exist"):
    atomic.write_text(tmp_path / "missing" / "x.txt", "x")
  assert sorted(os.listdir(tmp_path)) == ["r.json"]


def test_write_image_round_trips_rgb_rgba_and_float(tmp_path):
  rng = np.random.RandomState(0)
  rgb = rng.randint(0, 256, (17, 23, 3)).astype(np.uint8)
  rgba = rng.randint(0, 256, (9, 5, 4)).astype(np.uint8)
  atomic.write_image(tmp_path / "rgb.png", rgb)
  atomic.write_image(tmp_path / "rgba.png", rgba)
  atomic.write_image(tmp_path / "f.png", rgb.astype(np.float32) / 255.0)
  np.testing.assert_array_equal(_rgb_read(tmp_path / "rgb.png"), rgb)
  np.testing.assert_array_equal(_rgb_read(tmp_path / "rgba.png"), rgba)
  np.testing.assert_array_equal(_rgb_read(tmp_path / "f.png"), rgb)


# ---------------------------------------------------------------- UV baking


def test_seam_split_keeps_positions_and_uvs(model):
  split = seams.split_at_seams(model.triangles, model.triangle_uv)
  np.testing.assert_array_equal(split.vertex_index[split.triangles], model.triangles)
  np.testing.assert_array_equal(split.uv_index[split.triangles], model.triangle_uv)
  assert len(np.unique(split.vertex_index)) == model.num_vertices
  assert len(split.vertex_index) > model.num_vertices  # the ICT layout has seams


def test_baked_texels_equal_the_interpolated_vertex_colours(model):
  """Texel colour == colour at the texel centre's point of the UV layout (found here by
  brute-force point-in-triangle search), for a colour field linear in 3D position."""
  colors = _linear_colors(model)
  size = 200
  baked = uv_texture.bake_model_texture(model, colors, size, padding=0, background=-1.0)
  assert baked.image.shape == (size, size, 3) and baked.coverage.shape == (size, size)

  rng = np.random.RandomState(1)
  rows, cols = rng.randint(0, size, 600), rng.randint(0, size, 600)
  texel_u = (cols + 0.5) / size
  texel_v = 1.0 - (rows + 0.5) / size  # row 0 = top = v near 1
  tri_uv = model.uv[model.triangle_uv].astype(np.float64)  # [F, 3, 2]
  a, b, c = tri_uv[:, 0], tri_uv[:, 1], tri_uv[:, 2]
  det = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (b[:, 1] - a[:, 1])
  ok = np.abs(det) > 1e-12
  inside_checked = outside_checked = 0
  for r, col, u, v in zip(rows, cols, texel_u, texel_v):
    safe_det = np.where(ok, det, 1.0)
    l1 = ((u - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (v - a[:, 1])) / safe_det
    l2 = ((b[:, 0] - a[:, 0]) * (v - a[:, 1]) - (u - a[:, 0]) * (b[:, 1] - a[:, 1])) / safe_det
    bary = np.stack([1 - l1 - l2, l1, l2], axis=1)
    margin = bary.min(axis=1)
    margin[~ok] = -np.inf
    best = int(np.argmax(margin))
    if margin[best] > 1e-3:
      assert baked.coverage[r, col], (r, col)
      expected = bary[best] @ colors[model.triangles[best]]
      np.testing.assert_allclose(baked.image[r, col], expected, atol=2e-4)
      inside_checked += 1
    elif margin[best] < -1e-3:
      assert not baked.coverage[r, col], (r, col)
      np.testing.assert_array_equal(baked.image[r, col], -1.0)
      outside_checked += 1
  assert inside_checked > 400 and outside_checked > 5


def test_texture_is_filled_where_the_rendered_face_is_visible(model, renderer):
  """Every vertex the camera sees has a covered texel at its UV with (nearly) its colour."""
  colors = _linear_colors(model, seed=3)
  coeffs = renderer.zero_coefficients(1).numpy()
  coeffs[0, model.layout.slices()["angles"]] = [0.1, 0.5, 0.0]
  geometry = renderer.geometry(coeffs)
  vis = renderer.visibility(geometry, renderer.rasterize(geometry))[0].numpy() > 0.5
  assert 0.3 < vis.mean() < 0.95
  size = 512
  baked = uv_texture.bake_model_texture(model, colors, size, padding=0, background=-1.0)
  seen_corners = vis[model.triangles.reshape(-1)]
  uv = model.uv[model.triangle_uv.reshape(-1)][seen_corners]
  vertex = model.triangles.reshape(-1)[seen_corners]
  col = np.clip(np.floor(uv[:, 0] * size), 0, size - 1).astype(int)
  row = np.clip(np.floor((1.0 - uv[:, 1]) * size), 0, size - 1).astype(int)
  texel = baked.image[row, col]
  # A corner's texel may fall just outside its chart; the 3x3 neighbourhood holds a covered one.
  covered = np.zeros(len(row), bool)
  for dr in (-1, 0, 1):
    for dc in (-1, 0, 1):
      covered |= baked.coverage[np.clip(row + dr, 0, size - 1), np.clip(col + dc, 0, size - 1)]
  assert covered.all()
  inside = baked.coverage[row, col]
  assert inside.mean() > 0.9
  # Colour field gradient is < 1 per unit of normalised position: texel offsets are tiny.
  np.testing.assert_allclose(texel[inside], colors[vertex][inside], atol=0.02)


def test_padding_copies_the_nearest_covered_texel():
  size = 64
  yy, xx = np.mgrid[:size, :size]
  coverage = (yy - 30) ** 2 + (xx - 34) ** 2 <= 15 ** 2
  image = np.stack([yy, xx, np.zeros_like(yy)], axis=-1).astype(np.float32)  # encodes (row, col)
  padded = uv_texture.pad_texture(image, coverage, padding=4, background=(-1, -1, -1))
  np.testing.assert_array_equal(padded[coverage], image[coverage])
  dist_to_chart = scipy.ndimage.distance_transform_edt(~coverage)  # exact Euclidean
  grown = ~coverage & (padded[..., 0] >= 0)
  assert np.all(grown[~coverage & (dist_to_chart <= 3.8)])  # everything within reach
  assert not np.any(grown[dist_to_chart > 4.2])  # nothing beyond
  source_r, source_c = padded[grown, 0].astype(int), padded[grown, 1].astype(int)
  assert coverage[source_r, source_c].all()
  source_dist = np.hypot(source_r - yy[grown], source_c - xx[grown])
  assert np.all(source_dist <= dist_to_chart[grown] + 0.6)  # (approximately) the nearest
  np.testing.assert_array_equal(padded[~coverage & ~grown], -1.0)
  # Default background: the mean covered colour.
  mean_bg = uv_texture.pad_texture(image, coverage, padding=0)
  np.testing.assert_allclose(mean_bg[0, 0], image[coverage].mean(axis=0), rtol=1e-5)


def test_bake_rejects_bad_input(model):
  with pytest.raises(ValueError, match="vertex_colors"):
    uv_texture.bake_model_texture(model, np.zeros((5, 3)), 32)
  bad = np.zeros((model.num_vertices, 3))
  bad[3] = np.nan
  with pytest.raises(ValueError, match="NaN"):
    uv_texture.bake_model_texture(model, bad, 32)
  with pytest.raises(ValueError, match="size"):
    uv_texture.bake_model_texture(model, np.zeros((model.num_vertices, 3)), 0)
  with pytest.raises(ValueError, match="triangle_uv"):
    uv_texture.bake_vertex_colors(np.zeros((3, 3)), [[0, 1, 2]], np.zeros((3, 2)), [[0, 1, 3]], 8)


# ---------------------------------------------------------------- unseen-part fill


def test_fill_invisible_takes_the_seen_mirror_and_else_the_fallback(model):
  num = model.num_vertices
  rng = np.random.RandomState(0)
  fine = rng.uniform(0.2, 0.8, (num, 3)).astype(np.float32)
  fallback = np.tile(np.float32([[0.9, 0.1, 0.1]]), (num, 1))
  x, y = model.mean_shape[:, 0], model.mean_shape[:, 1]
  # Seen: the subject's left half (+x) below the brow line; the top is unseen on both sides.
  seen = (x > 0.05) & (y < 0.3)
  rings = 4
  out = invisible_fill.fill_invisible(fine, seen, model.symmetry_pairs, fallback, model.triangles,
                                      rings=rings)
  to_unseen = _bfs_distance(model.triangles, num, np.flatnonzero(~seen).tolist())
  to_seen = _bfs_distance(model.triangles, num, np.flatnonzero(seen).tolist())
  deep_seen, deep_unseen = to_unseen > rings, to_seen > rings
  mirror = np.full(num, -1)
  mirror[model.symmetry_pairs[:, 0]] = model.symmetry_pairs[:, 1]
  mirror[model.symmetry_pairs[:, 1]] = model.symmetry_pairs[:, 0]
  has_mirror = mirror >= 0

  np.testing.assert_array_equal(out[deep_seen], fine[deep_seen])
  mirror_deep_seen = has_mirror & deep_seen[np.maximum(mirror, 0)]
  mirror_deep_unseen = has_mirror & deep_unseen[np.maximum(mirror, 0)]
  takes_mirror = deep_unseen & mirror_deep_seen
  assert takes_mirror.sum() > 500
  np.testing.assert_allclose(out[takes_mirror], fine[mirror[takes_mirror]], atol=1e-6)
  takes_fallback = deep_unseen & (mirror_deep_unseen | ~has_mirror)
  assert takes_fallback.sum() > 500
  np.testing.assert_allclose(out[takes_fallback], fallback[takes_fallback], atol=1e-6)
  # In between, strict blends, and only near the boundary.
  soft = invisible_fill.soft_visibility(seen, model.triangles, rings)
  np.testing.assert_array_equal(soft[deep_unseen], 0.0)
  np.testing.assert_array_equal(soft[deep_seen], 1.0)
  blend = (soft > 0) & (soft < 1)
  assert blend.sum() > 100 and not np.any(blend & (deep_seen | deep_unseen))
  assert np.all((out[blend] != fine[blend]).any(axis=1)[seen[blend] & (soft[blend] < 0.99)])


def test_soft_visibility_ignores_isolated_specks(model):
  num = model.num_vertices
  seen = model.mean_shape[:, 0] > 0.0
  rings = 4
  to_boundary = np.where(seen, _bfs_distance(model.triangles, num, np.flatnonzero(~seen).tolist()),
                         _bfs_distance(model.triangles, num, np.flatnonzero(seen).tolist()))
  far = np.flatnonzero(to_boundary > 3 * rings)
  speck_in_seen = far[seen[far]][0]
  speck_in_unseen = far[~seen[far]][0]
  specked = seen.copy()
  specked[speck_in_seen] = False
  specked[speck_in_unseen] = True
  soft = invisible_fill.soft_visibility(specked, model.triangles, rings)
  assert soft[speck_in_seen] == 1.0 and soft[speck_in_unseen] == 0.0
  np.testing.assert_array_equal(soft, invisible_fill.soft_visibility(seen, model.triangles, rings))


def test_border_matched_fallback_takes_the_seen_tone_and_keeps_its_own_structure(model):
  """A pale face seen below the brows, a peach model albedo with a dark brow band above:
  the filled part takes the pale tone at the border (no step), keeps the brow band's
  contrast, and fades back to the fallback far from anything seen."""
  num = model.num_vertices
  rng = np.random.RandomState(1)
  x, y = model.mean_shape[:, 0], model.mean_shape[:, 1]
  seen = y < 0.2
  pale = np.float32([0.85, 0.78, 0.62])
  colors = np.clip(pale + rng.normal(0.0, 0.03, (num, 3)), 0, 1).astype(np.float32)
  peach = np.float32([0.9, 0.6, 0.5])
  fallback = np.tile(peach, (num, 1))
  brow = (~seen) & (y > 0.3) & (y < 0.4)
  fallback[brow] -= 0.3
  out = invisible_fill.border_matched(colors, seen, fallback, model.triangles)
  to_seen = _bfs_distance(model.triangles, num, np.flatnonzero(seen).tolist())
  border = (~seen) & (to_seen == 1)
  plain = ~seen & ~brow
  # At the border: the seen tone, not the fallback's (a 0.2 step in green without it).
  assert np.abs(fallback[border] - pale).max() > 0.15
  assert np.abs(out[border].mean(axis=0) - pale).max() < 0.03
  # The brow band keeps its contrast against the filled skin around it.
  near = plain & (y > 0.25) & (y < 0.45)
  np.testing.assert_allclose(out[near].mean(axis=0) - out[brow].mean(axis=0), 0.3, atol=0.03)
  # Far from anything seen, the offset fades slowly (screening, about 30 rings): the top
  # of the face area is closer to the fallback than the border is.
  far = plain & (to_seen >= np.percentile(to_seen[plain], 90))
  assert (np.abs(out[far] - fallback[far]).mean() <
          0.9 * np.abs(out[border] - fallback[border]).mean())
  # Seen vertices: their colours, averaged over a few rings.
  np.testing.assert_allclose(out[seen].mean(axis=0), colors[seen].mean(axis=0), atol=0.01)
  np.testing.assert_array_equal(
      invisible_fill.border_matched(colors, np.zeros(num, bool), fallback, model.triangles),
      fallback)
  with pytest.raises(ValueError, match="screening"):
    invisible_fill.border_matched(colors, seen, fallback, model.triangles, screening=0.0)


def test_fill_invisible_hard_switch_and_errors(model):
  num = model.num_vertices
  fine = np.full((num, 3), 0.5, np.float32)
  fallback = np.zeros((num, 3), np.float32)
  vis = np.zeros(num, np.float32)
  vis[: num // 2] = 1.0
  out = invisible_fill.fill_invisible(fine, vis, np.zeros((0, 2), np.int32), fallback,
                                      model.triangles, rings=0)
  np.testing.assert_array_equal(out[vis > 0.5], 0.5)
  np.testing.assert_array_equal(out[vis < 0.5], 0.0)
  everything_seen = invisible_fill.fill_invisible(fine * 0.3, np.ones(num), model.symmetry_pairs,
                                                  fallback, model.triangles)
  np.testing.assert_array_equal(everything_seen, fine * 0.3)
  with pytest.raises(ValueError, match="visibility"):
    invisible_fill.fill_invisible(fine, vis[:10], model.symmetry_pairs, fallback, model.triangles)
  with pytest.raises(ValueError, match="fallback"):
    invisible_fill.fill_invisible(fine, vis, model.symmetry_pairs, fallback[:, :2], model.triangles)
  with pytest.raises(ValueError, match="pairs"):
    invisible_fill.fill_invisible(fine, vis, model.symmetry_pairs + num, fallback, model.triangles)


# ---------------------------------------------------------------- mesh files


@pytest.fixture(scope="module")
def texture(model):
  return uv_texture.to_uint8(uv_texture.bake_model_texture(model, _linear_colors(model), 128).image)


def _corner_match(loaded_vertices, loaded_faces, expected_corners, atol):
  np.testing.assert_allclose(np.asarray(loaded_vertices)[np.asarray(loaded_faces)],
                             expected_corners, atol=atol)


def test_obj_reloads_with_topology_units_uvs_and_texture(model, texture, tmp_path):
  atomic.write_image(tmp_path / "face_texture.png", texture)
  paths = mesh_io.write_obj(tmp_path / "face.obj", mesh_io.convert_units(model.mean_shape, "cm"),
                            model.triangles, model.uv, model.triangle_uv,
                            texture_file="face_texture.png")
  assert [p.name for p in paths] == ["face.obj", "face.mtl"]
  lines = (tmp_path / "face.obj").read_text().splitlines()
  count = collections.Counter(line.split(" ", 1)[0] for line in lines)
  assert (count["v"], count["vt"], count["vn"], count["f"]) == (
      model.num_vertices, len(model.uv), model.num_vertices, model.num_triangles)
  assert "map_Kd face_texture.png" in (tmp_path / "face.mtl").read_text()

  mesh = trimesh.load(tmp_path / "face.obj", process=False)
  assert len(mesh.faces) == model.num_triangles
  assert len(np.unique(np.round(mesh.vertices, 4), axis=0)) == model.num_vertices
  _corner_match(mesh.vertices, mesh.faces, 10.0 * model.mean_shape[model.triangles], 1e-5)
  _corner_match(mesh.visual.uv, mesh.faces, model.uv[model.triangle_uv], 1e-6)
  np.testing.assert_array_equal(np.asarray(mesh.visual.material.image.convert("RGB")), texture)
  # Outward normals: the written vn of the nose tip points towards +z.
  normals = np.array([list(map(float, l.split()[1:])) for l in lines if l.startswith("vn ")])
  assert normals[model.landmarks68[30], 2] > 0.8


def test_ply_is_binary_with_vertex_colours(model, tmp_path):
  colors = _linear_colors(model)
  mesh_io.write_ply(tmp_path / "face.ply", mesh_io.convert_units(model.mean_shape, "mm"),
                    model.triangles, colors)
  assert b"format binary_little_endian" in (tmp_path / "face.ply").read_bytes()[:300]
  mesh = trimesh.load(tmp_path / "face.ply", process=False)
  assert mesh.vertices.shape == (model.num_vertices, 3)
  np.testing.assert_array_equal(mesh.faces, model.triangles)
  np.testing.assert_allclose(mesh.vertices, 100.0 * model.mean_shape, atol=1e-4)
  np.testing.assert_array_equal(mesh.visual.vertex_colors[:, :3],
                                np.rint(colors * 255).astype(np.uint8))


def test_glb_reloads_in_metres_with_pbr_texture(model, texture, tmp_path):
  mesh_io.write_glb(tmp_path / "face.glb", mesh_io.convert_units(model.mean_shape, "m"),
                    model.triangles, model.uv, model.triangle_uv, texture)
  assert (tmp_path / "face.glb").read_bytes()[:4] == b"glTF"
  scene = trimesh.load(tmp_path / "face.glb")
  assert len(scene.geometry) == 1
  mesh = next(iter(scene.geometry.values()))
  assert len(mesh.faces) == model.num_triangles
  split = seams.split_at_seams(model.triangles, model.triangle_uv)
  assert len(mesh.vertices) == len(split.vertex_index)
  assert len(np.unique(np.round(mesh.vertices, 6), axis=0)) == model.num_vertices
  _corner_match(mesh.vertices, mesh.faces, 0.1 * model.mean_shape[model.triangles], 1e-6)
  _corner_match(mesh.visual.uv, mesh.faces, model.uv[model.triangle_uv], 1e-6)
  material = mesh.visual.material
  assert isinstance(material, trimesh.visual.material.PBRMaterial)
  np.testing.assert_array_equal(np.asarray(material.baseColorTexture.convert("RGB")), texture)
  # Seam copies share the welded normal: equal positions have equal normals.
  _, position_id = np.unique(np.round(mesh.vertices, 6), axis=0, return_inverse=True)
  normals = np.asarray(mesh.vertex_normals)
  first = np.zeros((position_id.max() + 1, 3))
  first[position_id] = normals
  np.testing.assert_allclose(normals, first[position_id], atol=1e-3)


def test_mesh_writers_reject_bad_input(model, texture, tmp_path):
  with pytest.raises(ValueError, match="units"):
    mesh_io.convert_units(model.mean_shape, "inch")
  with pytest.raises(ValueError, match="vertices"):
    mesh_io.write_ply(tmp_path / "x.ply", np.zeros((3, 2)), [[0, 1, 2]], np.zeros((3, 3)))
  with pytest.raises(ValueError, match="outside"):
    mesh_io.write_ply(tmp_path / "x.ply", np.zeros((3, 3)), [[0, 1, 3]], np.zeros((3, 3)))
  with pytest.raises(ValueError, match="texture"):
    mesh_io.write_glb(tmp_path / "x.glb", model.mean_shape, model.triangles, model.uv,
                      model.triangle_uv, texture.astype(np.float32))
  assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------- overlays


@pytest.fixture(scope="module")
def template5(model):
  return model.template5


def _photo_transform(template5, shape=(480, 640, 3), centre=(400.0, 220.0), scale=70.0):
  """An alignment for a synthetic photo: template points projected frontally."""
  height = shape[0]
  up = scale * template5[:, :2] + np.array([centre[0], height - 1 - centre[1]])
  points5 = np.stack([up[:, 0], height - 1 - up[:, 1]], axis=-1)
  return alignment.estimate_transform(points5, template5, shape)


def test_paste_back_lands_where_the_face_was(template5):
  photo = np.full((480, 640, 3), 128, np.uint8)
  transform = _photo_transform(template5)
  size = transform.size
  yy, xx = np.mgrid[:size, :size]
  centre, radius = np.array([100.0, 120.0]), 40.0
  disk = (xx - centre[0]) ** 2 + (yy - centre[1]) ** 2 <= radius ** 2
  render = np.zeros((size, size, 3), np.float32)
  render[disk] = (1.0, 0.0, 0.0)
  out = overlay.paste_back(photo, render, disk, transform, feather=3)
  assert out.shape == photo.shape and out.dtype == np.uint8
  red = (out[..., 0] > 250) & (out[..., 1] < 5)
  expected_centre = transform.to_original(centre[None])[0]
  k = transform.zoom
  found = np.array([np.mean(np.nonzero(red)[1]), np.mean(np.nonzero(red)[0])])
  np.testing.assert_allclose(found, expected_centre, atol=1.0)
  # The fully opaque core is the disk shrunk by the feather; changed pixels reach its rim.
  core_radius = np.sqrt(red.sum() / np.pi)
  assert (radius - 4.5) / k < core_radius < (radius - 2.5) / k
  py, px = np.mgrid[:480, :640]
  rim = np.hypot(px - expected_centre[0], py - expected_centre[1])
  changed = np.any(out != 128, axis=-1)
  assert rim[changed].max() < (radius + 1.5) / k
  assert np.all(changed[rim < (radius - 5) / k])


@pytest.mark.parametrize("centre", [(400.0, 220.0), (15.0, 460.0), (-300.0, -300.0)])
def test_paste_back_equals_a_whole_photo_composite(template5, centre):
  """Compositing only the region under the crop (also at and beyond the photo's border)
  gives the whole-photo composite of data.alignment.paste_onto."""
  rng = np.random.RandomState(0)
  photo = rng.randint(0, 256, (480, 640, 3)).astype(np.uint8)
  transform = _photo_transform(template5, centre=centre)
  render = rng.uniform(0, 1, (224, 224, 3)).astype(np.float32)
  yy, xx = np.mgrid[:224, :224]
  mask = ((xx - 112) ** 2 + (yy - 100) ** 2 < 80 ** 2).astype(np.float32)
  out = overlay.paste_back(photo, render, mask, transform, feather=3)
  reference = alignment.paste_onto(
      photo, overlay.render_to_rgba(render, overlay.feather_alpha(mask, 3)), transform)
  assert np.abs(out.astype(int) - reference).max() <= 1
  changed = np.any(out != photo, axis=-1)
  assert changed.any() == (centre[0] > 0)


def test_paste_back_checks_sizes(template5):
  transform = _photo_transform(template5)
  with pytest.raises(ValueError, match="alignment was made"):
    overlay.paste_back(np.zeros((100, 100, 3), np.uint8), np.zeros((224, 224, 3)),
                       np.zeros((224, 224)), transform)
  with pytest.raises(ValueError, match="aligned size"):
    overlay.paste_back(np.zeros((480, 640, 3), np.uint8), np.zeros((100, 100, 3)),
                       np.zeros((100, 100)), transform)


def test_feather_alpha_ramps_inside_the_mask():
  yy, xx = np.mgrid[:80, :80]
  dist_in = 25 - np.hypot(yy - 40, xx - 40)
  mask = dist_in >= 0
  alpha = overlay.feather_alpha(mask, radius=4)
  np.testing.assert_array_equal(alpha[~mask], 0.0)
  np.testing.assert_array_equal(alpha[dist_in > 6], 1.0)
  edge = mask & (dist_in < 1)
  assert np.all((alpha[edge] > 0) & (alpha[edge] < 0.3))
  np.testing.assert_array_equal(overlay.feather_alpha(mask, radius=0), mask.astype(np.float32))
  # The crop's border is an edge too: a render cut by it fades out instead of ending in a
  # straight seam in the overlay.
  full = overlay.feather_alpha(np.ones((20, 20)), 3)
  assert np.all(full[0] < 0.3) and np.all(full[:, -1] < 0.3)
  np.testing.assert_array_equal(full[5:-5, 5:-5], 1.0)


def test_comparison_strip_layout():
  rng = np.random.RandomState(0)
  panels = [rng.randint(0, 256, (60, 50, 3)).astype(np.uint8) for _ in range(4)]
  strip = overlay.comparison_strip(*panels)
  banner = strip.shape[0] - 60
  assert strip.shape == (60 + banner, 200, 3) and banner >= 14
  for i, p in enumerate(panels):
    np.testing.assert_array_equal(strip[banner:, 50 * i:50 * (i + 1)], p)
    label_area = strip[:banner, 50 * i:50 * (i + 1)]
    assert label_area.max() > 150 and label_area.min() < 60  # text drawn on the banner
  np.testing.assert_array_equal(overlay.comparison_strip(*panels, labels=None),
                                np.concatenate(panels, axis=1))
  with pytest.raises(ValueError, match="sizes must match"):
    overlay.comparison_strip(panels[0], panels[1], panels[2], panels[3][:30])
  with pytest.raises(ValueError, match="labels"):
    overlay.comparison_strip(*panels, labels=("a", "b"))


def test_make_renders_shape_light_and_albedo_linearity(model, renderer):
  coeffs = renderer.zero_coefficients(1).numpy()
  coarse = renderer.albedo(coeffs)[0].numpy()
  crop = np.full((224, 224, 3), 90, np.uint8)
  renders = assemble.make_renders(renderer, coeffs[0], 0.5 * coarse, crop)
  mask = renders.mask > 0.5
  assert 0.1 < mask.mean() < 0.9
  np.testing.assert_array_equal(renders.crop, crop)
  # Lighting is linear in albedo: half the albedo renders at half the brightness.
  np.testing.assert_allclose(renders.fine[mask], 0.5 * renders.coarse[mask], atol=1e-4)
  np.testing.assert_array_equal(renders.shape[~mask], 0.0)
  gray = renders.shape[mask]
  np.testing.assert_allclose(gray[:, 0], gray[:, 1])  # gray
  assert gray.max() <= shape_shading.SHAPE_GRAY + 1e-6
  # Light from the picture's upper left: the left half of the face is brighter.
  cols = np.nonzero(mask)[1]
  centre = np.median(cols)
  left = renders.shape[..., 0][mask & (np.arange(224)[None, :] < centre)].mean()
  right = renders.shape[..., 0][mask & (np.arange(224)[None, :] > centre)].mean()
  assert left > right + 0.02


# ---------------------------------------------------------------- report


def test_to_json_safe_converts_numpy_tensors_and_non_finite():
  Point = collections.namedtuple("Point", ["x", "y"])
  value = {
      "f32": np.float32(0.1), "f64": np.float64(0.1), "i": np.int64(3), "b": np.bool_(True),
      "arr": np.array([[1.5, np.nan], [np.inf, -2.0]], np.float32),
      "ints": np.arange(3, dtype=np.int16), "tensor": tf.constant([1.0, 2.0]),
      "path": pathlib.Path("/x/y.png"), "tuple": (1, 2), "nt": Point(1, np.float32(2.5)),
      "nan": float("nan"), 7: "int key",
  }
  out = report.to_json_safe(value)
  text = json.dumps(out, allow_nan=False)
  back = json.loads(text)
  assert back["f32"] == 0.1 and back["f64"] == 0.1 and back["i"] == 3 and back["b"] is True
  assert back["arr"] == [[1.5, None], [None, -2.0]] and back["ints"] == [0, 1, 2]
  assert back["tensor"] == [1.0, 2.0] and back["path"] == "/x/y.png" and back["tuple"] == [1, 2]
  assert back["nt"] == {"x": 1, "y": 2.5} and back["nan"] is None and back["7"] == "int key"
  with pytest.raises(ValueError, match="bytes"):
    report.to_json_safe({"raw": b"\x00"})
  with pytest.raises(ValueError, match="keys"):
    report.to_json_safe({(1, 2): 3})


def test_face_report_splits_coefficients_and_converts_pose(model):
  layout = model.layout
  rng = np.random.RandomState(0)
  coeffs = rng.randn(layout.total).astype(np.float32)
  lm = rng.uniform(0, 224, (68, 2))
  doc = report.face_report("face_0", coeffs[None], layout, model_name=model.name,
                           landmarks_aligned=lm, losses={"photo": np.float32(0.25)},
                           flags={"texture_size": 1024}, source={"photo": pathlib.Path("a.jpg")})
  json.dumps(doc, allow_nan=False)
  for part, size in layout.sizes.items():
    assert len(doc["coefficients"][part]) == size
  start = 0
  for part, size in layout.sizes.items():
    np.testing.assert_allclose(doc["coefficients"][part], coeffs[start:start + size], rtol=1e-6)
    start += size
  angles = coeffs[layout.slices()["angles"]]
  assert doc["pose"]["yaw_deg"] == pytest.approx(math.degrees(angles[1]), rel=1e-6)
  assert doc["pose"]["pitch_deg"] == pytest.approx(math.degrees(angles[0]), rel=1e-6)
  assert doc["pose"]["roll_deg"] == pytest.approx(math.degrees(angles[2]), rel=1e-6)
  np.testing.assert_allclose(doc["landmarks"]["aligned"], lm)
  assert doc["landmarks"]["original"] is None
  assert doc["losses"] == {"photo": 0.25} and doc["source"] == {"photo": "a.jpg"}
  assert set(doc["versions"]) >= {"facegcn_tf", "tensorflow", "keras"}
  with pytest.raises(ValueError, match="coefficient"):
    report.face_report("x", coeffs[:10], layout)


# ---------------------------------------------------------------- writer


def test_export_face_writes_every_format(model, renderer, template5, tmp_path):
  num = model.num_vertices
  coeffs = renderer.zero_coefficients(1).numpy()
  coeffs[0, model.layout.slices()["angles"]] = [0.0, 0.7, 0.0]  # turned: one cheek unseen
  # The whole mesh is drawn here: this test is about the writer's fill of unseen parts.
  renderer = FaceRenderer(model, whole_mesh=True)
  geometry = renderer.geometry(coeffs)
  raster = renderer.rasterize(geometry)
  vis = renderer.visibility(geometry, raster)[0].numpy()
  coarse = renderer.albedo(coeffs)[0].numpy()
  fine = _linear_colors(model, seed=5)
  lit = renderer.lit_colors(fine[None], geometry, coeffs)[0].numpy()
  photo = np.full((480, 640, 3), 100, np.uint8)
  transform = _photo_transform(template5)
  crop = alignment.warp_to_aligned(photo, transform)
  renders = assemble.make_renders(renderer, coeffs, fine, crop)
  doc = report.face_report("face", coeffs, model.layout, model_name=model.name)

  out_dir = tmp_path / "out"
  face_formats = tuple(f for f in writer.FORMATS if f != "head")  # head: test_head_export.py
  assert not writer.outputs_complete(out_dir, "face", face_formats)
  paths = writer.export_face(out_dir, "face", model, vertices=geometry.shape[0].numpy(),
                             fine_albedo=fine, coarse_albedo=coarse, lit_colors=lit,
                             visibility=vis, photo=photo, transform=transform, renders=renders,
                             report=doc, texture_size=128, formats=face_formats)
  planned = writer.planned_files(out_dir, "face", face_formats)
  assert sorted(paths) == sorted(str(p) for p in planned) and paths[-1].endswith("face.json")
  assert sorted(os.listdir(out_dir)) == sorted(p.name for p in planned)
  assert writer.outputs_complete(out_dir, "face", face_formats)

  saved = json.loads((out_dir / "face.json").read_text())
  assert sorted(saved["export"]["files"]) == sorted(p.name for p in planned)
  assert saved["export"]["units"]["glb"] == "metres"
  assert saved["coefficients"]["id"] == doc["coefficients"]["id"]
  assert _rgb_read(out_dir / "face_overlay.png").shape == photo.shape
  assert _rgb_read(out_dir / "face_strip.png").shape[1] == 4 * 224
  assert _rgb_read(out_dir / "face_texture.png").shape == (128, 128, 3)

  # The PLY carries the filled fine albedo: vertices deep in the seen region keep theirs,
  # vertices deep in the unseen region whose mirror is deep in the seen one take the mirror's.
  ply = trimesh.load(out_dir / "face.ply", process=False)
  colors = ply.visual.vertex_colors[:, :3].astype(np.float64) / 255
  seen = vis > 0.5
  rings = invisible_fill.DEFAULT_RINGS
  deep_seen = _bfs_distance(model.triangles, num, np.flatnonzero(~seen).tolist()) > rings
  deep_unseen = _bfs_distance(model.triangles, num, np.flatnonzero(seen).tolist()) > rings
  np.testing.assert_allclose(colors[deep_seen], fine[deep_seen], atol=0.5 / 255 + 1e-6)
  pairs = np.concatenate([model.symmetry_pairs, model.symmetry_pairs[:, ::-1]])
  filled = pairs[deep_unseen[pairs[:, 0]] & deep_seen[pairs[:, 1]]]
  assert len(filled) > 100
  np.testing.assert_allclose(colors[filled[:, 0]], fine[filled[:, 1]], atol=0.5 / 255 + 1e-6)

  (out_dir / "face.glb").unlink()
  assert not writer.outputs_complete(out_dir, "face")
  assert writer.outputs_complete(out_dir, "face", formats=("obj", "ply", "json"))


def test_export_face_rejects_bad_requests(model, tmp_path):
  base = dict(vertices=model.mean_shape, fine_albedo=model.mean_albedo,
              coarse_albedo=model.mean_albedo)
  with pytest.raises(ValueError, match="needs"):
    writer.export_face(tmp_path, "a", model, formats=("png",), **base)
  photo = np.zeros((300, 200, 3), np.uint8)
  transform = alignment.AlignTransform(
      matrix=np.array([[0.5, 0, 10], [0, 0.5, 20]]), inverse=np.array([[2.0, 0, -20], [0, 2, -40]]),
      scale=1.0, translation=np.zeros(2), size=224, source_shape=(300, 200))
  small = np.zeros((100, 100, 3))
  renders = overlay.AlignedRenders(small, small, small, small, small[..., 0])
  with pytest.raises(ValueError, match="aligned size"):
    writer.export_face(tmp_path, "a", model, formats=("png",), lit_colors=model.mean_albedo,
                       photo=photo, transform=transform, renders=renders, **base)
  with pytest.raises(ValueError, match="alignment was made"):
    writer.export_face(tmp_path, "a", model, formats=("png",), lit_colors=model.mean_albedo,
                       photo=photo[:100], transform=transform, renders=renders, **base)
  with pytest.raises(ValueError, match="unknown export format"):
    writer.export_face(tmp_path, "a", model, formats=("obj", "fbx"), **base)
  with pytest.raises(ValueError, match="plain file name"):
    writer.export_face(tmp_path, "../a", model, formats=("ply",), **base)
  with pytest.raises(ValueError, match="whitespace"):
    writer.export_face(tmp_path, "my face", model, formats=("ply",), **base)
  assert writer.safe_name("my face/ü.jpg") == "my_face__.jpg"
  assert writer.safe_name("..hidden") == "hidden" and writer.safe_name("...") == "face"
  with pytest.raises(ValueError, match="fine_albedo"):
    writer.export_face(tmp_path, "a", model, formats=("ply",), vertices=model.mean_shape,
                       fine_albedo=model.mean_albedo[:5], coarse_albedo=model.mean_albedo)
  assert os.listdir(tmp_path) == []
  # A mesh-only export needs no photo.
  paths = writer.export_face(tmp_path, "a", model, formats="ply,obj", texture_size=64, **base)
  assert [pathlib.Path(p).name for p in paths] == ["a_texture.png", "a.obj", "a.mtl", "a.ply"]
  assert writer.outputs_complete(tmp_path, "a", ("obj", "ply"))
