"""The whole-head export (#12): head model frame, joined mesh without holes, eyes and teeth,
rigged GLB (Khronos validator via node, 53 ARKit morph targets, jawOpen moves the lower
teeth), OBJ/PLY/GLB reload in trimesh, and the offline results page in headless Chromium.

Node tools (gltf-validator, playwright-core, model-viewer) and Debian's chromium are
installed by scripts/setup.sh (step ``web``); without them these tests fail, naming it.
"""

import json
import os
import pathlib
import shutil
import struct
import subprocess

import cv2
import numpy as np
import pytest
import trimesh

ROOT = pathlib.Path(__file__).resolve().parent.parent
WEB = ROOT / "tools" / "web"
NODE_MODULES = WEB / "node_modules"
_ALPHA = np.random.default_rng(5).normal(0, 0.7, 100)  # identity of the test head


def _need_web(*packages):
  missing = [p for p in packages if not (NODE_MODULES / p).is_dir()]
  if shutil.which("node") is None or missing:
    pytest.fail(f"node or npm packages {missing} missing: run scripts/setup.sh (step 'web')")


@pytest.fixture(scope="module")
def models():
  from facegcn_tf.morphable import head as head_lib
  from facegcn_tf.morphable import ict
  return ict.load_ict(), head_lib.load_head()


@pytest.fixture(scope="module")
def head(models):
  from facegcn_tf.export import head_mesh
  face_model, head_model = models
  rng = np.random.default_rng(3)
  beta = np.zeros(len(face_model.exp_names))
  beta[face_model.exp_names.index("jawOpen")] = 0.35
  beta[face_model.exp_names.index("mouthSmile_L")] = 0.4
  albedo = np.clip(face_model.mean_albedo + rng.normal(0, 0.02, face_model.mean_albedo.shape),
                   0, 1)
  return head_mesh.build_head(face_model, head_model, _ALPHA, beta, albedo,
                              texture_size=512)


@pytest.fixture(scope="module")
def written(head, tmp_path_factory):
  from facegcn_tf.export import head_export
  out = tmp_path_factory.mktemp("head")
  texture = np.full((256, 256, 3), (200, 150, 130), np.uint8)
  cv2.imwrite(str(out / "face_texture.png"), texture)
  paths = head_export.write_head(out, "face", head, texture)
  (out / "face.json").write_text(json.dumps({"export": {"files": [p.name for p in paths]}}))
  return out


def test_head_model_shares_the_face_models_frame(models):
  from facegcn_tf.morphable import ict
  face_model, head_model = models
  coarse = ict.load_ict(subdivide=False)
  np.testing.assert_allclose(head_model.mean_shape[:9409], coarse.mean_shape, atol=1e-6)
  np.testing.assert_allclose(head_model.exp_basis[:, :9409], coarse.exp_basis, atol=1e-6)
  assert head_model.exp_names == face_model.exp_names and len(head_model.exp_names) == 53
  assert not set(head_model.part_names) & {"eye_blend_left", "eye_occlusion_right",
                                           "lacrimal_fluid_left", "eyelashes_left"}
  assert {"eyeball_left", "eyeball_right", "teeth", "gums_and_tongue",
          "head_and_neck"} <= set(head_model.part_names)


def test_head_keeps_the_face_and_is_posed_by_the_coefficients(models, head):
  face_model, _ = models
  vf = face_model.num_vertices
  assert head.num_face_vertices == vf
  np.testing.assert_array_equal(head.face_triangles, face_model.triangles)
  posed = head.posed()
  # The face part is exactly the face model's shape for the same coefficients.
  expected = face_model.mean_shape + np.tensordot(
      _ALPHA, face_model.id_basis, axes=1)
  expected = expected + np.tensordot(head.weights, face_model.exp_basis, axes=1)
  np.testing.assert_allclose(posed[:vf], expected, atol=1e-4)
  # Every rest triangle stitched to the face uses the face's midpoints: no T-junctions,
  # so each edge is shared by at most two triangles and the join leaves no open edge.
  mesh = trimesh.Trimesh(posed, head.triangles, process=False)
  counts = np.unique(mesh.edges_sorted, axis=0, return_counts=True)[1]
  assert counts.max() <= 2
  open_edges = mesh.edges_sorted[trimesh.grouping.group_rows(mesh.edges_sorted, require_count=1)]
  # Every face edge is shared: the face border is fully stitched to the rest.
  assert len(open_edges) > 0 and not np.any(open_edges < vf)


def _silhouette_holes(vertices, triangles, axes=(0, 1), size=400):
  """Background pixels enclosed by the silhouette (orthographic view along the third axis):
  what shows through the mesh."""
  xy = vertices[:, axes]
  lo, hi = xy.min(0), xy.max(0)
  pix = ((xy - lo) / (hi - lo).max() * (size - 20) + 10)
  pix[:, 1] = size - pix[:, 1]
  cover = np.zeros((size, size), np.uint8)
  for triangle in np.round(pix[triangles] * 4).astype(np.int32):  # one by one: a union
    cv2.fillConvexPoly(cover, triangle, 1, shift=2)
  count, labels = cv2.connectedComponents((cover == 0).astype(np.uint8), connectivity=4)
  outside = set(labels[0]) | set(labels[-1]) | set(labels[:, 0]) | set(labels[:, -1])
  return int(sum(np.sum(labels == k) for k in range(1, count) if k not in outside))


def test_head_has_no_holes_from_front_or_side(head):
  posed = head.posed()
  face = np.unique(head.face_triangles)
  # The face alone is see-through at the eyes and mouth (so this check can fail) ...
  assert _silhouette_holes(posed[face], np.searchsorted(face, head.face_triangles)) > 200
  # ... the head is not, from the front nor from the side.
  assert _silhouette_holes(posed, head.triangles) == 0
  assert _silhouette_holes(posed, head.triangles, axes=(2, 1)) == 0


def test_jaw_open_moves_the_lower_teeth_down(head):
  assert head.lower_teeth.sum() > 100
  weights = np.zeros_like(head.weights)
  closed = head.posed(weights)
  weights[list(head.exp_names).index("jawOpen")] = 1.0
  opened = head.posed(weights)
  drop = (closed - opened)[head.lower_teeth, 1]
  assert drop.mean() > 0.05  # decimetres: more than 5 mm


def test_eyes_are_painted_sclera_iris_pupil(head):
  atlas = head.rest_texture.astype(np.float32) / 255
  eye_cell = atlas[atlas.shape[0] // 2:, :atlas.shape[1] // 2]  # bottom-left cell: eyeballs
  luma = eye_cell.mean(-1)
  assert np.mean(luma > 0.8) > 0.3   # near-white sclera
  assert np.mean(luma < 0.1) > 0.005  # a pupil
  assert np.mean((luma > 0.1) & (luma < 0.45)) > 0.005  # an iris


def test_eye_colors_read_the_photos_iris_and_teeth():
  from facegcn_tf.export import eye_colors
  crop = np.full((224, 224, 3), 190, np.uint8)
  lm = np.zeros((68, 2), np.float32)
  for start, cx in ((36, 80), (42, 144)):
    lm[start:start + 6] = [(cx - 15, 100), (cx - 7, 94), (cx + 7, 94), (cx + 15, 100),
                           (cx + 7, 106), (cx - 7, 106)]
    cv2.circle(crop, (cx, 100), 6, (40, 80, 160), -1)  # blue iris
    cv2.circle(crop, (cx, 100), 2, (5, 5, 5), -1)
  lm[60:68] = [(95, 160), (105, 155), (112, 154), (119, 155), (129, 160), (119, 166),
               (112, 167), (105, 166)]
  cv2.rectangle(crop, (100, 155), (124, 160), (200, 195, 170), -1)
  cv2.rectangle(crop, (100, 161), (124, 167), (60, 20, 20), -1)
  colors = eye_colors.eye_mouth_colors(crop, lm)
  assert colors.iris[2] > colors.iris[0] + 0.2  # blue, not the default brown
  assert colors.sources["iris"].startswith("photo")
  assert 0.38 <= colors.iris_radius <= 0.6
  assert min(colors.teeth) > 0.7 and colors.sources["teeth"].startswith("photo")


def test_fit_projection_recovers_a_pinhole_camera():
  from facegcn_tf.export import head_photo
  rng = np.random.default_rng(0)
  points = rng.normal(0, 1, (500, 3))
  angle = 0.3
  rotation = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0],
                       [-np.sin(angle), 0, np.cos(angle)]])
  centre = np.array([1.0, -0.5, 10.0])
  camera = np.array([[1015.0, 0, 112], [0, -1015.0, 112], [0, 0, -1]])  # looks down -z
  truth = camera @ np.concatenate([rotation, -(rotation @ centre)[:, None]], 1)
  homogeneous = points @ truth[:, :3].T + truth[:, 3]
  pixels = homogeneous[:, :2] / homogeneous[:, 2:]
  fitted = head_photo.fit_projection(points, pixels)
  assert np.abs(head_photo.project(fitted, points)[0] - pixels).max() < 1e-6
  assert np.all(head_photo.project(fitted, points)[1] > 0)  # in front of the camera
  np.testing.assert_allclose(head_photo.camera_centre(fitted), centre, atol=1e-6)
  with pytest.raises(ValueError, match="pinhole"):
    head_photo.fit_projection(points, pixels + rng.normal(0, 5, pixels.shape))


def _photo_of_the_head(head, head_model, size=224):
  """A synthetic photo of ``head`` as fitted, seen by a front camera: grey skin, a blue
  iris drawn inside one eye contour and a brown one in the other, green inside the lips.
  Returns the PhotoView, the drawn colours (RGB in [0, 1]) and the landmarks."""
  from facegcn_tf.data.alignment import AlignTransform
  from facegcn_tf.export import head_photo
  posed = head.posed()
  projection = np.array([[1015.0, 0, 0, 0], [0, -1015.0, 0, 0], [0, 0, -1, 10.0]])
  projection[:2, 3] = size / 2 * np.array([10.0, 10.0])  # principal point at the centre
  projection[0, 2], projection[1, 2] = -size / 2, -size / 2
  photo = np.full((size, size, 3), 180, np.uint8)
  landmarks = np.zeros((68, 2), np.float32)
  drawn = {"blue": (40, 80, 160), "brown": (120, 70, 30), "green": (30, 200, 30)}
  for (start, colour), name in zip(((36, "blue"), (42, "brown")),
                                   ("eyeball_left", "eyeball_right")):
    xy = head_photo.project(projection, posed[_part_vertices(head, head_model, name)])[0]
    centre, radius = xy.mean(0), (xy.max(0) - xy.min(0)).mean() / 2
    ring = np.linspace(0, 2 * np.pi, 7)[:-1]
    contour = centre + np.stack([0.8 * radius * np.cos(ring), 0.4 * radius * np.sin(ring)], 1)
    landmarks[start:start + 6] = contour
    cv2.fillPoly(photo, [np.round(contour).astype(np.int32)], drawn[colour])
  teeth = head_photo.project(projection, posed[_part_vertices(head, head_model, "teeth")])[0]
  lo, hi = np.percentile(teeth, 20, axis=0), np.percentile(teeth, 80, axis=0)
  mouth = np.array([(lo[0], (lo[1] + hi[1]) / 2), (lo[0], lo[1]), (hi[0], lo[1]),
                    (hi[0], (lo[1] + hi[1]) / 2), (hi[0], hi[1]), ((lo[0] + hi[0]) / 2, hi[1]),
                    (lo[0], hi[1]), (lo[0], hi[1])])
  landmarks[60:68] = mouth
  cv2.fillPoly(photo, [np.round(mouth[:7]).astype(np.int32)], drawn["green"])
  transform = AlignTransform(matrix=np.eye(2, 3), inverse=np.eye(2, 3), scale=1.0,
                             translation=np.zeros(2), size=size, source_shape=(size, size))
  eye_mask, mouth_mask = head_photo.opening_masks(landmarks, size)
  view = head_photo.PhotoView(photo=photo, transform=transform, projection=projection,
                              eye_mask=eye_mask, mouth_mask=mouth_mask)
  return view, {k: np.asarray(v, np.float32) / 255 for k, v in drawn.items()}, landmarks


def _part_vertices(head, head_model, name):
  """Indices of a head part's vertices in the exported head (face model's vertices first)."""
  beyond_face = head_model.part_vertices(name)[head_model.face_vertex_count:]
  return head.num_face_vertices + np.flatnonzero(beyond_face)


def test_eyeballs_and_teeth_take_the_photos_colours_inside_the_openings(models, head):
  from facegcn_tf.export import head_mesh
  face_model, head_model = models
  view, drawn, _ = _photo_of_the_head(head, head_model)
  albedo = np.clip(face_model.mean_albedo, 0, 1)
  plain = head_mesh.build_head(face_model, head_model, _ALPHA, head.weights, albedo,
                               texture_size=512).rest_texture.astype(np.float32) / 255
  photo = head_mesh.build_head(face_model, head_model, _ALPHA, head.weights, albedo,
                               texture_size=512, photo=view).rest_texture.astype(np.float32) / 255
  changed = np.abs(photo - plain).max(-1) > 0.25
  half = plain.shape[0] // 2
  eye_cell = np.zeros_like(changed)
  eye_cell[half:, :half] = True  # bottom-left cell: left eyeball | right eyeball
  # Each eyeball carries its own iris: one half of the cell blue, the other brown.
  found = []
  for cols in (slice(0, half // 2), slice(half // 2, half)):
    texels = photo[half:, cols][changed[half:, cols]]
    assert 50 < len(texels) < 0.25 * half * half / 2  # inside the opening only
    close = {k: np.mean(np.abs(texels - drawn[k]).max(-1) < 0.12) for k in ("blue", "brown")}
    found.append(max(close, key=close.get))
    assert max(close.values()) > 0.7, close
  assert sorted(found) == ["blue", "brown"]
  # The mouth interior (teeth, gums cells; the mouth socket in the skin cell) shows the
  # green drawn between the lips; nothing else changed.
  mouth = photo[changed & ~eye_cell]
  assert len(mouth) > 50
  assert np.mean(np.abs(mouth - drawn["green"]).max(-1) < 0.15) > 0.7


def test_export_face_bakes_the_photos_eyes_given_pixels_and_landmarks(models, tmp_path):
  """The writer's wiring: with the photo, its alignment, the vertices' pixels and the
  landmarks the head's eyes change (to the drawn irises); without the pixels they do not."""
  from facegcn_tf.export import head_mesh, head_photo, writer
  face_model, head_model = models
  coeffs = np.zeros(face_model.layout.total, np.float32)
  head = head_mesh.build_head(face_model, head_model, np.zeros(100), np.zeros(53),
                              face_model.mean_albedo, texture_size=128)
  view, _, landmarks = _photo_of_the_head(head, head_model)
  pixels = head_photo.project(view.projection, face_model.mean_shape)[0]
  atlases = {}
  for key, given in (("photo", pixels), ("none", None)):
    writer.export_face(tmp_path / key, "f", face_model, vertices=face_model.mean_shape,
                       fine_albedo=face_model.mean_albedo, coarse_albedo=face_model.mean_albedo,
                       formats=("head", "json"), texture_size=256, head_model=head_model,
                       coeffs=coeffs, photo=view.photo, transform=view.transform,
                       pixels=given, eye_colors=head_mesh.EyeMouthColors(landmarks=landmarks))
    atlases[key] = cv2.imread(str(tmp_path / key / "f_head_texture.png"))
    report = json.loads((tmp_path / key / "f.json").read_text())["export"]["head"]
    assert report["eyes_and_mouth_from_photo"] is (key == "photo")
  eye_cell = np.abs(atlases["photo"].astype(int) - atlases["none"])[128:, :128].max(-1)
  assert np.sum(eye_cell > 60) > 20


def _glb(path):
  data = path.read_bytes()
  magic, version, total = struct.unpack("<III", data[:12])
  assert magic == 0x46546C67 and version == 2 and total == len(data)
  json_len = struct.unpack("<I", data[12:16])[0]
  document = json.loads(data[20:20 + json_len])
  binary = data[20 + json_len + 8:]
  return document, binary


def _read_accessor(document, binary, index):
  acc = document["accessors"][index]
  width = {"SCALAR": 1, "VEC2": 2, "VEC3": 3}[acc["type"]]
  dtypes = {5126: np.float32, 5123: np.uint16, 5125: np.uint32}
  out = np.zeros((acc["count"], width), dtypes[acc["componentType"]])
  if "bufferView" in acc:
    view = document["bufferViews"][acc["bufferView"]]
    out = np.frombuffer(binary, dtypes[acc["componentType"]], acc["count"] * width,
                        view["byteOffset"]).reshape(-1, width).copy()
  if "sparse" in acc:
    sparse = acc["sparse"]
    iv = document["bufferViews"][sparse["indices"]["bufferView"]]
    idx = np.frombuffer(binary, dtypes[sparse["indices"]["componentType"]], sparse["count"],
                        iv["byteOffset"])
    vv = document["bufferViews"][sparse["values"]["bufferView"]]
    out[idx] = np.frombuffer(binary, np.float32, sparse["count"] * width,
                             vv["byteOffset"]).reshape(-1, width)
  return out


def test_glb_has_53_named_morph_targets_and_jaw_open_lowers_the_teeth(head, written):
  document, binary = _glb(written / "face_head.glb")
  mesh = document["meshes"][0]
  assert mesh["extras"]["targetNames"] == list(head.exp_names) and len(head.exp_names) == 53
  np.testing.assert_allclose(mesh["weights"], head.weights, atol=1e-6)
  assert {a["name"] for a in document["animations"]} == {"smile", "blink", "jawOpen"}
  jaw = head.exp_names.index("jawOpen")
  rest = mesh["primitives"][1]
  assert len(rest["targets"]) == 53
  base = _read_accessor(document, binary, rest["attributes"]["POSITION"])
  delta = _read_accessor(document, binary, rest["targets"][jaw]["POSITION"])
  assert any("sparse" in document["accessors"][t["POSITION"]] for t in rest["targets"])
  # The lower teeth in the file: the lowest teeth-coloured vertices of the rest primitive.
  teeth_y = head.base[head.lower_teeth, 1] * 0.1
  lower = np.isin(np.round(base[:, 1], 5), np.round(teeth_y, 5)) & (
      np.abs(base[:, 0]) < np.abs(head.base[head.lower_teeth, 0] * 0.1).max() + 1e-6)
  assert lower.sum() > 50
  assert np.mean(delta[lower, 1]) < -0.005  # metres: jawOpen = 1 lowers them > 5 mm


def test_glb_normals_are_the_neutral_ones_with_a_delta_per_blendshape(head, written):
  """Base NORMAL = the neutral head's normals; each target's NORMAL delta turns them into
  the normals of that blendshape (Blender turns custom normals with the shape keys, so
  posed normals on the neutral base would be turned twice)."""
  from facegcn_tf.morphable.normals import vertex_normals
  document, binary = _glb(written / "face_head.glb")
  face = document["meshes"][0]["primitives"][0]
  assert all("NORMAL" in t for p in document["meshes"][0]["primitives"] for t in p["targets"])
  positions = _read_accessor(document, binary, face["attributes"]["POSITION"]) * 10  # dm
  normals = _read_accessor(document, binary, face["attributes"]["NORMAL"])
  smile = head.exp_names.index("mouthSmile_L")
  delta = _read_accessor(document, binary, face["targets"][smile]["NORMAL"])
  moving = np.flatnonzero(np.abs(delta).max(axis=1) > 0.05)[:400]
  assert len(moving) > 50  # the smile turns the normals around the mouth
  # The file's face vertices are the head's face vertices split at UV seams.
  nearest = np.argmin(np.linalg.norm(positions[moving, None] - head.base[None], axis=-1), axis=1)
  neutral = vertex_normals(head.base, head.triangles)[nearest]
  moved = vertex_normals(head.base + head.exp_basis[smile], head.triangles)[nearest]
  posed = vertex_normals(head.posed(), head.triangles)[nearest]
  assert np.mean(np.sum(neutral * posed, axis=1)) < 0.995  # the fitted smile turns them too
  assert np.mean(np.sum(normals[moving] * neutral, axis=1)) > 0.999
  got = normals[moving] + delta[moving]
  got /= np.linalg.norm(got, axis=1, keepdims=True)
  assert np.mean(np.sum(got * moved, axis=1)) > 0.999


def test_glb_passes_the_khronos_validator(written):
  _need_web("gltf-validator")
  run = subprocess.run(["node", str(WEB / "validate_gltf.js"), str(written / "face_head.glb")],
                       capture_output=True, text=True, timeout=300, check=True)
  issues = json.loads(run.stdout)["issues"]
  assert issues["numErrors"] == 0 and issues["numWarnings"] == 0, issues["messages"][:5]


def test_trimesh_reloads_obj_ply_glb(head, written):
  num_tris = len(head.triangles)
  obj = trimesh.load(written / "face_head.obj", force="mesh")
  assert len(obj.faces) == num_tris
  neutral = trimesh.load(written / "face_head_neutral.obj", force="mesh")
  assert len(neutral.faces) == num_tris
  assert not np.allclose(obj.bounds, neutral.bounds)  # the fitted expression differs
  ply = trimesh.load(written / "face_head.ply", process=False)
  assert len(ply.vertices) == len(head.base) and len(ply.faces) == num_tris
  glb = trimesh.load(written / "face_head.glb")
  assert sum(len(g.faces) for g in glb.geometry.values()) == num_tris


def test_results_page_loads_offline_in_headless_chromium(written, tmp_path):
  _need_web("playwright-core", "@google/model-viewer")
  if not pathlib.Path(os.environ.get("CHROMIUM", "/usr/bin/chromium")).exists():
    pytest.fail("Debian's chromium is missing: run scripts/setup.sh (step 'web')")
  from facegcn_tf.export import results_page
  viewer = NODE_MODULES / "@google" / "model-viewer" / "dist" / "model-viewer-umd.min.js"
  page = results_page.write_index(written, [("broken.jpg", "no face found")], viewer)
  assert "broken.jpg" in page.read_text() and "no face found" in page.read_text()
  shot = tmp_path / "page.png"
  run = subprocess.run(["node", str(WEB / "page_check.js"), str(page), str(shot), "240000"],
                       capture_output=True, text=True, timeout=400)
  result = json.loads(run.stdout)
  assert result["viewers"] == 1 and result["loaded"] == 1, (result, run.stderr[-2000:])
  assert result["clicked"] == 3 and not result["errors"], result
  image = cv2.imread(str(tmp_path / "page_viewer.png"))
  assert image is not None
  # Not blank: the viewer shows a head, not only its flat background.
  background = np.median(image.reshape(-1, 3), axis=0)
  differs = np.abs(image.astype(np.int32) - background).max(-1) > 25
  assert 0.05 < differs.mean() < 0.95


@pytest.mark.parametrize("fmt", ["glb", "obj"])
def test_blender_imports_and_renders_the_head(written, tmp_path, fmt):
  if shutil.which("blender") is None:
    pytest.fail("blender is missing: run scripts/setup.sh (step 'blender')")
  stem = tmp_path / f"render_{fmt}"
  run = subprocess.run(["blender", "-b", "--factory-startup", "--python",
                        str(ROOT / "tools" / "blender" / "render_head.py"), "--",
                        "--mesh", str(written / f"face_head.{fmt}"), "--out", str(stem),
                        "--yaws=0", "--size", "96", "--samples", "2"],
                       capture_output=True, text=True, timeout=600)
  image = cv2.imread(f"{stem}_yaw+0.png")
  assert image is not None, run.stdout[-2000:] + run.stderr[-2000:]
  background = image[2, 2].astype(np.int32)
  head = np.abs(image.astype(np.int32) - background).max(-1) > 20
  assert 0.15 < head.mean() < 0.9  # the imported head fills a good part of the frame
  # Eyes: dark iris/pupil pixels inside the head's upper half (they are not empty sockets).
  upper = image[20:50, 25:71].mean(-1)
  assert (upper < 60).sum() >= 2


def test_export_face_writes_the_head_and_its_json(models, tmp_path):
  from facegcn_tf.export import writer
  face_model, head_model = models
  coeffs = np.zeros(face_model.layout.total, np.float32)
  coeffs[face_model.layout.slices()["exp"]][face_model.exp_names.index("jawOpen")] = 0.5
  paths = writer.export_face(tmp_path, "f", face_model, vertices=face_model.mean_shape,
                             fine_albedo=face_model.mean_albedo,
                             coarse_albedo=face_model.mean_albedo, formats=("head", "json"),
                             texture_size=128, head_model=head_model, coeffs=coeffs)
  names = sorted(pathlib.Path(p).name for p in paths)
  assert names == sorted(p.name for p in writer.planned_files(tmp_path, "f", ("head", "json")))
  assert writer.outputs_complete(tmp_path, "f", ("head", "json"))
  head = json.loads((tmp_path / "f.json").read_text())["export"]["head"]
  assert len(head["morph_targets"]) == 53 and head["eye_mouth_colors"]["sources"] == {}
  assert head["eyes_and_mouth_from_photo"] is False  # no photo given
  with pytest.raises(ValueError, match="head_model"):
    writer.export_face(tmp_path, "g", face_model, vertices=face_model.mean_shape,
                       fine_albedo=face_model.mean_albedo,
                       coarse_albedo=face_model.mean_albedo, formats=("head",))


def test_a_bfm_rerun_skips_finished_faces(tmp_path, astronaut):
  """BFM has no whole head: the run drops ``head`` and a re-run must not wait for its files.

  The BFM files are the synthetic release of tests/test_morphable_bfm.py (the real one
  cannot be shipped), converted and found through FACEGCN_ASSETS like a user's copy.
  """
  import sys
  sys.path.insert(0, str(ROOT / "tests"))
  from test_morphable_bfm import Fixture  # pylint: disable=import-outside-toplevel
  from facegcn_tf import assets
  from facegcn_tf.morphable import bfm_convert
  (tmp_path / "assets" / "bfm").mkdir(parents=True)
  bfm_convert.convert(Fixture(tmp_path / "release").dir,
                      output=tmp_path / "assets" / "bfm" / "BFM_model_front.mat")
  (tmp_path / "in").mkdir()
  cv2.imwrite(str(tmp_path / "in" / "astronaut.png"), astronaut[..., ::-1])
  env = dict(os.environ)
  env[assets.ENV_VAR] = os.pathsep.join([str(tmp_path / "assets"), env.get(assets.ENV_VAR, "")])
  cmd = [sys.executable, str(ROOT / "scripts" / "infer.py"), "--progress=false",
         "--fit_steps=0.05", "--refine_steps=2", "--texture_size=128", "--face_model=bfm",
         "--formats=obj,head,json", f"--input={tmp_path / 'in'}",
         f"--output_dir={tmp_path / 'out'}"]
  first = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
  assert "1 done, 0 skipped, 0 failed" in first.stdout, first.stdout + first.stderr[-3000:]
  assert (tmp_path / "out" / "astronaut.obj").is_file()
  assert not (tmp_path / "out" / "astronaut_head.glb").exists()
  mtime = (tmp_path / "out" / "astronaut.obj").stat().st_mtime_ns
  again = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=900)
  assert "0 done, 1 skipped, 0 failed" in again.stdout, again.stdout + again.stderr[-3000:]
  assert (tmp_path / "out" / "astronaut.obj").stat().st_mtime_ns == mtime
