"""Mesh files: textured OBJ (+ MTL), binary PLY with vertex colours, GLB with a PBR texture.

Units and axes. Models work in decimetres; files are written in the unit each format's
users expect, converted with :func:`convert_units`:

* **OBJ and PLY: centimetres** by default (``units=``, one of ``"m"``, ``"dm"``, ``"cm"``,
  ``"mm"``). OBJ and PLY carry no unit; centimetres is the default of Maya and of scan and
  face-model sources (ICT-FaceKit's own OBJs are in cm). Blender users import with scale 0.01.
* **GLB: metres**, always: glTF 2.0 defines its unit as the metre, and every viewer relies
  on it.

Axes are the model's in every file: +y up, +z out of the face (towards the viewer), +x the
subject's left, which is also glTF's convention (+Y up, front facing +Z). Triangles are
counter-clockwise seen from the front.

Seams. The OBJ keeps the model's topology: ``V`` ``v`` lines, ``Vt`` ``vt`` lines and faces
``f v/vt/vn``, so a seam vertex is one position with several UVs. GLB (like any GPU format)
needs one UV per vertex, so its vertices are split at UV seams (``seams.split_at_seams``);
the normals of the split copies are those of the welded mesh, so seams do not show in the
shading. The PLY has per-vertex colours and no UVs, hence exactly ``V`` vertices.

The OBJ/MTL text is written here (numpy string formatting, a few lines) rather than by
trimesh, whose OBJ exporter splits the mesh at seams and names the material and texture
itself; PLY and GLB are encoded by trimesh. Every file is written atomically
(``facegcn_tf.atomic``).
"""

import os
import pathlib
from typing import List, Optional, Union

import numpy as np
import PIL.Image
import trimesh

from facegcn_tf import atomic
from facegcn_tf.export import seams
from facegcn_tf.morphable.normals import vertex_normals

PathLike = Union[str, os.PathLike]

UNIT_SCALE_FROM_DM = {"m": 0.1, "dm": 1.0, "cm": 10.0, "mm": 100.0}
UNIT_NAMES = {"m": "metres", "dm": "decimetres", "cm": "centimetres", "mm": "millimetres"}
DEFAULT_UNITS = "cm"
GLB_UNITS = "m"
MATERIAL_NAME = "face"


def convert_units(vertices_dm: np.ndarray, units: str) -> np.ndarray:
  """[V, 3] decimetres -> [V, 3] float64 in ``units`` ("m", "dm", "cm" or "mm")."""
  if units not in UNIT_SCALE_FROM_DM:
    raise ValueError(f"units must be one of {sorted(UNIT_SCALE_FROM_DM)}, got {units!r}")
  return np.asarray(vertices_dm, dtype=np.float64) * UNIT_SCALE_FROM_DM[units]


def _check_geometry(vertices, triangles, uv=None, triangle_uv=None):
  vertices = np.asarray(vertices, dtype=np.float64)
  if vertices.ndim != 2 or vertices.shape[1] != 3 or len(vertices) == 0:
    raise ValueError(f"vertices must be a non-empty [V, 3] array, got shape {vertices.shape}")
  if not np.all(np.isfinite(vertices)):
    raise ValueError("vertices contain NaN or Inf")
  triangles = np.asarray(triangles)
  if uv is None:
    seams.check_mesh_indices(triangles, triangles, len(vertices), len(vertices))
    return vertices, triangles.astype(np.int64), None, None
  uv = np.asarray(uv, dtype=np.float64)
  if uv.ndim != 2 or uv.shape[1] != 2 or not np.all(np.isfinite(uv)):
    raise ValueError(f"uv must be a finite [Vt, 2] array, got shape {uv.shape}")
  triangle_uv = np.asarray(triangle_uv)
  seams.check_mesh_indices(triangles, triangle_uv, len(vertices), len(uv))
  return vertices, triangles.astype(np.int64), uv, triangle_uv.astype(np.int64)


def rows(prefix: str, array: np.ndarray, fmt: str) -> str:
  """One text line per row: ``prefix`` then the row's values in ``fmt`` (per value)."""
  if len(array) == 0:
    return ""
  line = prefix + " " + " ".join([fmt] * array.shape[1]) + "\n"
  return (line * len(array)) % tuple(array.reshape(-1).tolist())


def obj_text(vertices: np.ndarray, triangles: np.ndarray, uv: np.ndarray, triangle_uv: np.ndarray,
             normals: Optional[np.ndarray] = None, mtl_name: Optional[str] = None,
             comment: str = "") -> str:
  """The OBJ file's text (1-based ``f v/vt/vn`` faces; see the module docstring)."""
  vertices, triangles, uv, triangle_uv = _check_geometry(vertices, triangles, uv, triangle_uv)
  if normals is None:
    normals = vertex_normals(vertices, triangles)
  normals = np.asarray(normals, dtype=np.float64)
  if normals.shape != vertices.shape:
    raise ValueError(f"normals {normals.shape} must have the shape of vertices {vertices.shape}")
  parts = []
  for line in comment.splitlines():
    parts.append(f"# {line}\n")
  if mtl_name:
    parts.append(f"mtllib {mtl_name}\n")
  parts.append(rows("v", vertices, "%.6f"))
  parts.append(rows("vt", uv, "%.6f"))
  parts.append(rows("vn", normals, "%.5f"))
  parts.append("o face\n")
  if mtl_name:
    parts.append(f"usemtl {MATERIAL_NAME}\n")
  corners = np.stack([triangles + 1, triangle_uv + 1, triangles + 1], axis=-1)
  corners = corners.reshape(len(triangles), 9)
  parts.append(face_rows(corners))
  return "".join(parts)


def face_rows(corners: np.ndarray) -> str:
  """``f a/b/c d/e/f g/h/i`` lines from [F, 9] 1-based indices."""
  line = "f %d/%d/%d %d/%d/%d %d/%d/%d\n"
  return (line * len(corners)) % tuple(corners.reshape(-1).tolist())


def mtl_text(texture_file: Optional[str]) -> str:
  """A matte white material, textured with ``texture_file`` (a path relative to the MTL)."""
  lines = [f"newmtl {MATERIAL_NAME}", "Ka 1.000 1.000 1.000", "Kd 1.000 1.000 1.000",
           "Ks 0.000 0.000 0.000", "Ns 10.0", "d 1.0", "illum 1"]
  if texture_file:
    if any(c in texture_file for c in "\n\r"):
      raise ValueError(f"texture file name must be one line, got {texture_file!r}")
    lines.append(f"map_Kd {texture_file}")
  return "\n".join(lines) + "\n"


def write_obj(obj_path: PathLike, vertices: np.ndarray, triangles: np.ndarray, uv: np.ndarray,
              triangle_uv: np.ndarray, texture_file: Optional[str] = None,
              normals: Optional[np.ndarray] = None,
              units: str = DEFAULT_UNITS) -> List[pathlib.Path]:
  """Writes ``NAME.obj`` and ``NAME.mtl`` (same folder and stem).

  Args:
    obj_path: the ``.obj`` path.
    vertices: [V, 3] positions, already in ``units`` (see :func:`convert_units`).
    triangles: [F, 3] int; uv: [Vt, 2] (v up); triangle_uv: [F, 3] int.
    texture_file: the texture's file name relative to the OBJ (``map_Kd``); the caller
      writes the image itself.
    normals: [V, 3]; default: area-weighted normals of the mesh.
    units: the unit of ``vertices``, recorded in the header comment.

  Returns:
    [obj path, mtl path].
  """
  obj_path = pathlib.Path(obj_path)
  if units not in UNIT_NAMES:
    raise ValueError(f"units must be one of {sorted(UNIT_NAMES)}, got {units!r}")
  mtl_path = obj_path.with_suffix(".mtl")
  comment = (f"facegcn_tf textured face mesh\nunits: {UNIT_NAMES[units]}; +y up, +z out of the "
             "face; counter-clockwise front faces")
  text = obj_text(vertices, triangles, uv, triangle_uv, normals, mtl_path.name, comment)
  atomic.write_text(mtl_path, mtl_text(texture_file))
  atomic.write_text(obj_path, text)
  return [obj_path, mtl_path]


def _colors_uint8(colors: np.ndarray, num_vertices: int) -> np.ndarray:
  colors = np.asarray(colors)
  if colors.shape not in ((num_vertices, 3), (num_vertices, 4)):
    raise ValueError(f"colors must be [V, 3] or [V, 4] with V = {num_vertices}, got {colors.shape}")
  if colors.dtype != np.uint8:
    colors = colors.astype(np.float64)
    if not np.all(np.isfinite(colors)):
      raise ValueError("colors contain NaN or Inf")
    colors = np.clip(np.rint(colors * 255.0), 0, 255).astype(np.uint8)
  if colors.shape[1] == 3:
    colors = np.concatenate([colors, np.full((num_vertices, 1), 255, np.uint8)], axis=1)
  return colors


def write_ply(path: PathLike, vertices: np.ndarray, triangles: np.ndarray, colors: np.ndarray,
              normals: Optional[np.ndarray] = None) -> pathlib.Path:
  """Binary little-endian PLY: V vertices with normals and RGBA uint8 colours, F faces.

  Args:
    path: the ``.ply`` path.
    vertices: [V, 3] positions (any unit; see :func:`convert_units`).
    triangles: [F, 3] int.
    colors: [V, 3|4] float in [0, 1] (clipped) or uint8.
    normals: [V, 3]; default: area-weighted normals.
  """
  vertices, triangles, _, _ = _check_geometry(vertices, triangles)
  rgba = _colors_uint8(colors, len(vertices))
  if normals is None:
    normals = vertex_normals(vertices, triangles)
  mesh = trimesh.Trimesh(vertices=vertices, faces=triangles, vertex_colors=rgba,
                         vertex_normals=np.asarray(normals, np.float64), process=False)
  data = trimesh.exchange.ply.export_ply(mesh, encoding="binary", vertex_normal=True)
  return atomic.write_bytes(path, data)


def glb_bytes(vertices: np.ndarray, triangles: np.ndarray, uv: np.ndarray,
              triangle_uv: np.ndarray, texture: np.ndarray,
              normals: Optional[np.ndarray] = None) -> bytes:
  """Encodes a textured mesh as a binary glTF (see :func:`write_glb`)."""
  vertices, triangles, uv, triangle_uv = _check_geometry(vertices, triangles, uv, triangle_uv)
  texture = np.asarray(texture)
  if texture.dtype != np.uint8 or texture.ndim != 3 or texture.shape[-1] not in (3, 4):
    raise ValueError(f"texture must be [H, W, 3|4] uint8, got {texture.shape} {texture.dtype}")
  if normals is None:
    normals = vertex_normals(vertices, triangles)
  normals = np.asarray(normals, dtype=np.float64)
  if normals.shape != vertices.shape:
    raise ValueError(f"normals {normals.shape} must have the shape of vertices {vertices.shape}")
  split = seams.split_at_seams(triangles, triangle_uv)
  material = trimesh.visual.material.PBRMaterial(
      name=MATERIAL_NAME, baseColorTexture=PIL.Image.fromarray(texture),
      baseColorFactor=[255, 255, 255, 255], metallicFactor=0.0, roughnessFactor=0.7,
      doubleSided=True)
  visual = trimesh.visual.TextureVisuals(uv=uv[split.uv_index], material=material)
  mesh = trimesh.Trimesh(vertices=vertices[split.vertex_index], faces=split.triangles,
                         vertex_normals=normals[split.vertex_index], visual=visual, process=False)
  scene = trimesh.Scene()
  scene.add_geometry(mesh, node_name="face", geom_name="face")
  return trimesh.exchange.gltf.export_glb(scene, include_normals=True)


def write_glb(path: PathLike, vertices: np.ndarray, triangles: np.ndarray, uv: np.ndarray,
              triangle_uv: np.ndarray, texture: np.ndarray,
              normals: Optional[np.ndarray] = None) -> pathlib.Path:
  """Binary glTF with the texture embedded as the PBR base colour (metallic 0, double-sided).

  Args:
    path: the ``.glb`` path.
    vertices: [V, 3] positions in **metres** (glTF's unit; see :func:`convert_units`).
    triangles: [F, 3]; uv: [Vt, 2] (v up, as in OBJ; trimesh flips it for glTF);
      triangle_uv: [F, 3].
    texture: [H, W, 3|4] uint8, row 0 = top.
    normals: [V, 3] welded normals; default: area-weighted normals.
  """
  return atomic.write_bytes(path, glb_bytes(vertices, triangles, uv, triangle_uv, texture, normals))
