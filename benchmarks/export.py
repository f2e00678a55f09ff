"""Export of one face, subdivided ICT model (~37k V / ~74k T): texture baking and file writing."""

import pathlib
import tempfile

import numpy as np

from benchmarks._timing import time_ms
from facegcn_tf.data import alignment
from facegcn_tf import atomic
from facegcn_tf.export import invisible_fill
from facegcn_tf.export import mesh_io
from facegcn_tf.export import overlay
from facegcn_tf.export import uv_texture
from facegcn_tf.export import writer
from facegcn_tf.morphable.ict import load_ict

TITLE = "Export (subdivided ICT face): 1024² texture baking and file writers"


def run(quick: bool):
  repeats = 2 if quick else 5
  model = load_ict(subdivide=True)
  num = model.num_vertices
  rng = np.random.RandomState(0)
  fine = np.clip(model.mean_albedo + 0.05 * rng.randn(num, 3), 0, 1).astype(np.float32)
  coarse = model.mean_albedo
  lit = np.clip(0.9 * fine, 0, 1)
  visibility = (model.mean_shape[:, 0] > -0.3).astype(np.float32)
  size = 1024
  rows = [("mesh vertices / triangles / UV points",
           f"{num} / {model.num_triangles} / {len(model.uv)}", "")]

  rows.append(("bake 1024² texture (3 channels: rasterize + interpolate + pad)",
               time_ms(lambda: uv_texture.bake_model_texture(model, fine, size), repeats), "ms"))
  stacked = np.concatenate([fine, coarse, lit], axis=1)
  rows.append(("bake 1024² fine + coarse + lit textures in one pass (9 channels)",
               time_ms(lambda: uv_texture.bake_model_texture(model, stacked, size), repeats), "ms"))
  rows.append(("fill_invisible (mirror / coarse fallback, 8 diffusion rings)",
               time_ms(lambda: invisible_fill.fill_invisible(
                   fine, visibility, model.symmetry_pairs, coarse, model.triangles), repeats),
               "ms"))
  texture = uv_texture.to_uint8(uv_texture.bake_model_texture(model, fine, size).image)

  with tempfile.TemporaryDirectory() as tmp:
    tmp = pathlib.Path(tmp)
    cm = mesh_io.convert_units(model.mean_shape, "cm")
    metres = mesh_io.convert_units(model.mean_shape, "m")
    normals = mesh_io.vertex_normals(model.mean_shape, model.triangles)
    rows.append(("write 1024² texture PNG", time_ms(
        lambda: atomic.write_image(tmp / "t.png", texture), repeats), "ms"))
    rows.append(("write OBJ + MTL", time_ms(lambda: mesh_io.write_obj(
        tmp / "f.obj", cm, model.triangles, model.uv, model.triangle_uv, "t.png", normals),
        repeats), "ms"))
    rows.append(("write binary PLY (vertex colours)", time_ms(lambda: mesh_io.write_ply(
        tmp / "f.ply", cm, model.triangles, fine, normals), repeats), "ms"))
    rows.append(("write GLB (seam split, embedded 1024² PNG)", time_ms(lambda: mesh_io.write_glb(
        tmp / "f.glb", metres, model.triangles, model.uv, model.triangle_uv, texture, normals),
        repeats), "ms"))
    for ext in ("obj", "ply", "glb"):
      rows.append((f"{ext.upper()} file size", (tmp / f"f.{ext}").stat().st_size / 1e6, "MB"))

    # Paste-back onto a 12-megapixel photo.
    template5 = model.template5
    photo = np.full((3000, 4000, 3), 120, np.uint8)
    up = 900.0 * template5[:, :2] + np.array([2000.0, 1500.0])
    points5 = np.stack([up[:, 0], 2999 - up[:, 1]], axis=-1)
    transform = alignment.estimate_transform(points5, template5, photo.shape)
    yy, xx = np.mgrid[:224, :224]
    mask = ((xx - 112) ** 2 + (yy - 112) ** 2 < 90 ** 2).astype(np.float32)
    render = np.full((224, 224, 3), 0.6, np.float32)
    rows.append(("paste render back onto a 4000x3000 photo (feathered)", time_ms(
        lambda: overlay.paste_back(photo, render, mask, transform), repeats), "ms"))

    crop = alignment.warp_to_aligned(photo, transform)
    renders = overlay.AlignedRenders(crop=crop, coarse=render, fine=render, shape=render,
                                     mask=mask)
    rows.append(("export_face, all formats, 1024² textures, 4000x3000 photo", time_ms(
        lambda: writer.export_face(tmp / "out", "face", model, vertices=model.mean_shape,
                                   fine_albedo=fine, coarse_albedo=coarse, lit_colors=lit,
                                   visibility=visibility, photo=photo, transform=transform,
                                   renders=renders, report={}), max(1, repeats // 2),
        warmup=1), "ms"))
  return rows
