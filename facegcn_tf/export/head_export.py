"""Writing the whole head (``export.head_mesh.HeadMesh``): rigged GLB, OBJ, PLY.

Files of the ``head`` format (NAME + suffix):

=========================  ===========================================================
``_head.glb``              the head with the 53 expression blendshapes as morph targets
                           (ARKit names in ``mesh.extras.targetNames``); identity baked
                           into the base, default weights = the fitted expression; metres
``_head.obj`` / ``.mtl``   static head posed as fitted (materials ``face``: the face
                           texture ``NAME_texture.png``; ``head``: ``NAME_head_texture.png``)
``_head_neutral.obj``      the same head with a neutral expression (identity only)
``_head_texture.png``      the atlas of everything but the face (skin, eyes, mouth, teeth)
``_head.ply``              static head posed as fitted, per-vertex albedo colours
=========================  ===========================================================

OBJ/PLY use the face export's unit (centimetres by default); GLB is in metres.
"""

import pathlib
from typing import List

import numpy as np

from facegcn_tf import atomic
from facegcn_tf.export import gltf_rig
from facegcn_tf.export import mesh_io
from facegcn_tf.export import seams
from facegcn_tf.export.head_mesh import HeadMesh
from facegcn_tf.morphable.normals import vertex_normals

SUFFIXES = ("_head_texture.png", "_head.obj", "_head.mtl", "_head_neutral.obj",
            "_head_neutral.mtl", "_head.ply", "_head.glb")


def morph_normals(mesh: HeadMesh):
  """The GLB's normals: ``[V, 3]`` of the base (identity only, neutral expression) and
  ``[K, V, 3]`` deltas, each blendshape's normals at weight 1 minus the base's.

  glTF blends normals like positions (base + sum of weight x delta), so a viewer shades any
  expression, the fitted default included, with its own normals. (Posed normals stored on
  the neutral base would be turned a second time by the blendshapes in Blender, whose
  custom normals follow the shape keys.)
  """
  base = vertex_normals(mesh.base, mesh.triangles)
  moved = vertex_normals(mesh.base[None] + mesh.exp_basis, mesh.triangles)
  return base, (moved - base[None]).astype(np.float32)


def _primitive(mesh: HeadMesh, normals, normal_deltas, triangles, uv, triangle_uv, texture,
               name):
  split = seams.split_at_seams(triangles, triangle_uv)
  scale = mesh_io.UNIT_SCALE_FROM_DM[mesh_io.GLB_UNITS]
  return gltf_rig.Primitive(
      positions=mesh.base[split.vertex_index] * scale, normals=normals[split.vertex_index],
      uv=uv[split.uv_index], triangles=split.triangles, texture=texture,
      targets=mesh.exp_basis[:, split.vertex_index] * scale, name=name,
      normal_targets=normal_deltas[:, split.vertex_index])


# Animation clips in the GLB: name -> the blendshapes set to 1 at the clip's middle.
CLIPS = {"smile": ("mouthSmile_L", "mouthSmile_R", "cheekSquint_L", "cheekSquint_R"),
         "blink": ("eyeBlink_L", "eyeBlink_R"),
         "jawOpen": ("jawOpen",)}
CLIP_SECONDS = 1.2


def clips(mesh: HeadMesh) -> dict:
  """The GLB's animation clips: fitted expression -> shape -> fitted, ``CLIP_SECONDS`` long."""
  out = {}
  for name, shapes in CLIPS.items():
    peak = mesh.weights.astype(np.float64).copy()
    for shape in shapes:
      if shape in mesh.exp_names:
        peak[mesh.exp_names.index(shape)] = 1.0
    half = CLIP_SECONDS / 2
    out[name] = [(0.0, mesh.weights), (half, peak), (CLIP_SECONDS, mesh.weights)]
  return out


def head_glb_bytes(mesh: HeadMesh, face_texture: np.ndarray) -> bytes:
  """The rigged GLB (face primitive textured with ``face_texture``, then the rest), with
  the animation clips :data:`CLIPS`."""
  normals, deltas = morph_normals(mesh)
  prims = [_primitive(mesh, normals, deltas, mesh.face_triangles, mesh.face_uv,
                      mesh.face_triangle_uv, face_texture, "face"),
           _primitive(mesh, normals, deltas, mesh.rest_triangles, mesh.rest_uv,
                      mesh.rest_triangle_uv, mesh.rest_texture, "head")]
  return gltf_rig.rigged_glb_bytes(prims, mesh.exp_names, mesh.weights, animations=clips(mesh))


def head_obj_text(mesh: HeadMesh, vertices: np.ndarray, mtl_name: str, comment: str) -> str:
  """OBJ text with two material groups (``face``, ``head``); vertices already in units."""
  normals = vertex_normals(vertices, mesh.triangles)
  uv = np.concatenate([mesh.face_uv, mesh.rest_uv])
  offset = len(mesh.face_uv)
  parts = [f"# {line}\n" for line in comment.splitlines()]
  parts.append(f"mtllib {mtl_name}\n")
  parts.append(mesh_io.rows("v", vertices, "%.6f"))
  parts.append(mesh_io.rows("vt", uv, "%.6f"))
  parts.append(mesh_io.rows("vn", normals, "%.5f"))
  parts.append("o head\n")
  for material, tris, tuv in (("face", mesh.face_triangles, mesh.face_triangle_uv),
                              ("head", mesh.rest_triangles, mesh.rest_triangle_uv + offset)):
    parts.append(f"usemtl {material}\n")
    corners = np.stack([tris + 1, tuv + 1, tris + 1], axis=-1).reshape(len(tris), 9)
    parts.append(mesh_io.face_rows(corners))
  return "".join(parts)


def _mtl(name: str) -> str:
  face = mesh_io.mtl_text(f"{name}_texture.png")
  head = mesh_io.mtl_text(f"{name}_head_texture.png").replace(
      f"newmtl {mesh_io.MATERIAL_NAME}", "newmtl head")
  return face + "\n" + head


def write_head(output_dir, name: str, mesh: HeadMesh, face_texture: np.ndarray,
               units: str = mesh_io.DEFAULT_UNITS) -> List[pathlib.Path]:
  """Writes the head files (see the module docstring) and returns their paths.

  The face texture file ``NAME_texture.png`` is the face export's; the caller writes it.
  """
  output_dir = pathlib.Path(output_dir)
  path = lambda suffix: output_dir / f"{name}{suffix}"  # noqa: E731
  written = [atomic.write_image(path("_head_texture.png"), mesh.rest_texture)]
  for suffix, weights, what in (("_head", None, "posed as fitted"),
                                ("_head_neutral", np.zeros_like(mesh.weights),
                                 "neutral expression")):
    vertices = mesh_io.convert_units(mesh.posed(weights), units)
    comment = (f"facegcn_tf head ({what})\nunits: {mesh_io.UNIT_NAMES[units]}; +y up, +z out "
               "of the face; counter-clockwise front faces")
    atomic.write_text(path(suffix + ".mtl"), _mtl(name))
    atomic.write_text(path(suffix + ".obj"),
                      head_obj_text(mesh, vertices, f"{name}{suffix}.mtl", comment))
    written += [path(suffix + ".obj"), path(suffix + ".mtl")]
  posed = mesh.posed()
  written.append(mesh_io.write_ply(path("_head.ply"), mesh_io.convert_units(posed, units),
                                   mesh.triangles, mesh.colors,
                                   normals=vertex_normals(posed, mesh.triangles)))
  written.append(atomic.write_bytes(path("_head.glb"), head_glb_bytes(mesh, face_texture)))
  return written


__all__ = ["SUFFIXES", "head_glb_bytes", "head_obj_text", "morph_normals", "write_head"]
