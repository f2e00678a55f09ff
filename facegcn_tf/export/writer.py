"""Writing every output of one reconstructed face.

``export_face(output_dir, name, ...)`` writes, for the requested ``formats``:

========  ================================================================================
format    files
========  ================================================================================
``obj``   ``NAME.obj`` + ``NAME.mtl`` + ``NAME_texture.png`` (the mesh, textured with the
          fine albedo)
``ply``   ``NAME.ply``: binary PLY, fine albedo as vertex colours (no texture needed)
``glb``   ``NAME.glb``: binary glTF, fine albedo texture embedded (opens in any viewer)
``png``   ``NAME_texture.png`` (fine albedo), ``NAME_coarse_texture.png`` (the 3DMM
          albedo, same UV layout, to compare), ``NAME_lit_texture.png`` (the lit colours:
          fine albedo under the photo's estimated light, i.e. what the render shows),
          ``NAME_overlay.png`` (the full-resolution photo with the fine lit render pasted
          back, feathered) and ``NAME_strip.png`` (aligned photo | coarse | fine | shape,
          renders composited over the photo)
``head``  the whole head (``export.head_export``): ``NAME_head.glb`` (53 ARKit blendshapes
          as morph targets, default weights = fitted expression), ``NAME_head.obj`` +
          ``.mtl`` (posed as fitted), ``NAME_head_neutral.obj`` + ``.mtl``,
          ``NAME_head.ply``, ``NAME_head_texture.png`` (atlas of scalp, eyes, mouth; the
          eyes and mouth interior from the photo where it shows them, given ``pixels``,
          ``photo``, ``transform`` and ``eye_colors`` with landmarks) and
          ``NAME_texture.png`` (the face's texture, shared with ``obj``); needs the
          ``head_model`` and coefficients
``json``  ``NAME.json``: the report (``export.report.face_report``) plus an ``"export"``
          section: the files, units, texture size, how unseen parts were filled
========  ================================================================================

Choices:

* **Geometry**: the model-space shape (identity + expression; neither rotated nor
  translated: centred, +y up, facing +z), which is what an artist wants to open; the pose
  is in the JSON. OBJ/PLY in centimetres by default (``units``), GLB in metres (see
  ``export.mesh_io``).
* **Albedo textures and PLY colours** are the fine albedo with the parts the photo did not
  show replaced (``invisible_fill.fill_invisible``: mirror colour where the mirror was
  seen, the coarse albedo elsewhere, smooth ramps between) when ``visibility`` is given.
  The lit texture is not filled: lit colours are defined everywhere and a mix of lit and
  unlit colours would be wrong. All textures are baked in one rasterization
  (``uv_texture``), clipped to [0, 1] and stored as 8-bit sRGB-as-is PNGs.
* Every file is written atomically, the JSON **last**; ``outputs_complete`` tells a batch
  run whether a face is done (every file of its formats present and non-empty). Inputs
  are checked before anything is written; if writing fails midway (disk full), the files
  already written are complete but the set is not, so the face is redone on a rerun.
* Face names must be plain file names without whitespace (``safe_name`` makes one).
"""

import os
import pathlib
import re
from typing import Any, List, Mapping, Optional, Sequence, Union

import numpy as np

from facegcn_tf.data.alignment import AlignTransform
from facegcn_tf import atomic
from facegcn_tf import storage
from facegcn_tf.export import detail_texture
from facegcn_tf.export import head_export
from facegcn_tf.export import head_mesh
from facegcn_tf.export import head_photo
from facegcn_tf.export import invisible_fill
from facegcn_tf.export import mesh_io
from facegcn_tf.export import overlay
from facegcn_tf.export import report as report_lib
from facegcn_tf.export import uv_texture
from facegcn_tf.morphable.model import MorphableModel

PathLike = Union[str, os.PathLike]

FORMATS = ("obj", "ply", "glb", "png", "head", "json")
DEFAULT_FORMATS = FORMATS

# File name suffixes per format (NAME + suffix).
_FILES = {
    "obj": (".obj", ".mtl", "_texture.png"),
    "ply": (".ply",),
    "glb": (".glb",),
    "png": ("_texture.png", "_coarse_texture.png", "_lit_texture.png", "_overlay.png",
            "_strip.png"),
    "head": ("_texture.png",) + head_export.SUFFIXES,
    "json": (".json",),
}


def check_formats(formats: Sequence[str]) -> tuple:
  """Validated, de-duplicated formats in :data:`FORMATS` order."""
  if isinstance(formats, str):
    formats = [f.strip() for f in formats.split(",") if f.strip()]
  formats = [str(f).lower() for f in formats]
  unknown = sorted(set(formats) - set(FORMATS))
  if unknown:
    raise ValueError(f"unknown export format(s) {unknown}; choose from {list(FORMATS)}")
  if not formats:
    raise ValueError(f"no export format given; choose from {list(FORMATS)}")
  return tuple(f for f in FORMATS if f in formats)


def check_name(name: str) -> str:
  """``name`` if it is usable as a file-name stem, else ValueError.

  Whitespace is refused because MTL's ``map_Kd`` line cannot quote a file name with spaces
  portably; :func:`safe_name` makes any text acceptable.
  """
  if not isinstance(name, str) or not name.strip():
    raise ValueError(f"face name must be a non-empty string, got {name!r}")
  if name != os.path.basename(name) or "/" in name or "\\" in name or name in (".", ".."):
    raise ValueError(f"face name must be a plain file name without folders, got {name!r}")
  if name.startswith(".") or any(ord(c) < 32 or c.isspace() for c in name):
    raise ValueError(f"face name must not start with '.' or contain whitespace or control "
                     f"characters (see writer.safe_name): {name!r}")
  return name


def safe_name(text: str, default: str = "face") -> str:
  """A name :func:`check_name` accepts: characters other than letters, digits, ``._-``
  become ``_``, leading dots are dropped (``"my photo.jpg"`` -> ``"my_photo.jpg"``)."""
  cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", str(text)).lstrip(".")
  return cleaned or default


def planned_files(output_dir: PathLike, name: str,
                  formats: Sequence[str] = DEFAULT_FORMATS) -> List[pathlib.Path]:
  """Every path :func:`export_face` writes for ``formats`` (JSON last)."""
  name = check_name(name)
  output_dir = pathlib.Path(output_dir)
  seen, out = set(), []
  for fmt in check_formats(formats):
    for suffix in _FILES[fmt]:
      if suffix not in seen:
        seen.add(suffix)
        out.append(output_dir / f"{name}{suffix}")
  return out


def exported_formats(formats: Sequence[str], has_head_model: bool) -> tuple:
  """The formats a face's export writes: ``head`` needs the whole ICT head, so it is dropped
  when there is none (a BFM face model); a re-run checks for these files only."""
  formats = check_formats(formats)
  return formats if has_head_model else tuple(f for f in formats if f != "head")


def outputs_complete(output_dir: PathLike, name: str,
                     formats: Sequence[str] = DEFAULT_FORMATS) -> bool:
  """True when every file of ``formats`` for ``name`` exists and is non-empty (``output_dir``
  may be remote, see `storage`)."""
  for file in planned_files(".", name, formats):
    try:
      if not storage.size(storage.join(str(output_dir), file.name)):
        return False
    except OSError:
      return False
  return True


def _per_vertex(array, num_vertices: int, name: str, channels: Optional[int] = 3) -> np.ndarray:
  if hasattr(array, "numpy") and callable(array.numpy):
    array = array.numpy()
  array = np.asarray(array, dtype=np.float32)
  if array.ndim >= 2 and array.shape[0] == 1 and array.ndim == (3 if channels else 2):
    array = array[0]
  expected = (num_vertices, channels) if channels else (num_vertices,)
  if array.shape != expected:
    raise ValueError(f"{name} must be {list(expected)}, got shape {array.shape}")
  if not np.all(np.isfinite(array)):
    raise ValueError(f"{name} contains NaN or Inf")
  return array


def _check_png_inputs(photo, transform: AlignTransform, renders: overlay.AlignedRenders) -> None:
  """Size checks for the images, done before any file is written."""
  photo = np.asarray(photo)
  if photo.ndim != 3 or photo.shape[-1] != 3:
    raise ValueError(f"photo must be [H, W, 3] RGB, got shape {photo.shape}")
  if tuple(photo.shape[:2]) != tuple(transform.source_shape):
    raise ValueError(f"photo is {photo.shape[0]}x{photo.shape[1]} but the alignment was made "
                     f"for {transform.source_shape[0]}x{transform.source_shape[1]}")
  size = transform.size
  for field in overlay.AlignedRenders._fields:
    image = np.asarray(getattr(renders, field))
    if image.shape[:2] != (size, size):
      raise ValueError(f"renders.{field} is {image.shape[:2]}, expected the aligned size "
                       f"{size}x{size}")


def _photo_view(colors: head_mesh.EyeMouthColors, shape_dm: np.ndarray, pixels, photo,
                transform: Optional[AlignTransform]) -> Optional[head_photo.PhotoView]:
  """The photo and fitted camera the head's eyes and mouth take colours from, or None
  without the photo, its alignment, the vertices' pixels or the landmarks, or when the
  pixels are not a pinhole projection of the vertices (then the eyes stay painted)."""
  if any(v is None for v in (colors.landmarks, pixels, photo, transform)):
    return None
  pixels = _per_vertex(pixels, len(shape_dm), "pixels", channels=2)
  try:
    projection = head_photo.fit_projection(shape_dm, pixels)
  except ValueError:
    return None
  eye_mask, mouth_mask = head_photo.opening_masks(colors.landmarks, transform.size)
  return head_photo.PhotoView(photo=np.asarray(photo), transform=transform,
                              projection=projection, eye_mask=eye_mask, mouth_mask=mouth_mask,
                              albedo_gain=colors.albedo_gain)


def export_face(output_dir: PathLike, name: str, model: MorphableModel, *,
                vertices, fine_albedo, coarse_albedo, lit_colors=None, visibility=None,
                photo: Optional[np.ndarray] = None, transform: Optional[AlignTransform] = None,
                renders: Optional[overlay.AlignedRenders] = None,
                report: Optional[Mapping[str, Any]] = None,
                formats: Sequence[str] = DEFAULT_FORMATS,
                texture_size: int = uv_texture.DEFAULT_SIZE, units: str = mesh_io.DEFAULT_UNITS,
                fill_rings: int = invisible_fill.DEFAULT_RINGS,
                feather: float = overlay.DEFAULT_FEATHER,
                pixels=None, irradiance=None, photo_trust=None, head_model=None, coeffs=None,
                eye_colors: Optional[head_mesh.EyeMouthColors] = None,
                unseen_filled: bool = False) -> List[str]:
  """Writes one face's files (see the module docstring for the file set).

  Args:
    output_dir: folder (created if missing).
    name: file-name stem of this face.
    model: the face model (topology, UVs, mirror pairs).
    vertices: [V, 3] (or [1, V, 3]) model-space shape in decimetres (identity +
      expression, unposed: ``FaceGeometry.shape``).
    fine_albedo: [V, 3] fine (GCN) albedo in [0, 1].
    coarse_albedo: [V, 3] coarse (3DMM) albedo in [0, 1].
    lit_colors: [V, 3] lit colours (needed for ``png``).
    visibility: [V] per-vertex visibility (``FaceRenderer.visibility``); None = use the
      fine albedo everywhere.
    photo: [H, W, 3] uint8 original photo (needed for ``png``).
    transform: its alignment (needed for ``png``).
    renders: the aligned panels (``pipeline.assemble``; needed for ``png``).
    report: the face's report dict (``report.face_report``), completed with an
      ``"export"`` section.
    formats: subset of :data:`FORMATS`.
    texture_size: texture side in texels.
    units: OBJ/PLY length unit (GLB is always metres).
    fill_rings: blend width of the unseen-part fill, in mesh edges.
    feather: overlay edge feather, in aligned pixels.
    pixels, irradiance, photo_trust: [V, 2] aligned-crop positions of the posed vertices,
      [V, 3] fitted irradiance and [V] photo trust (`refinement.direct_albedo`): with them
      and `photo` / `transform`, the fine UV texture carries the photo's full-resolution
      detail where the photo is trusted (`detail_texture`).
    head_model: the whole head (``morphable.head.load_head``; needed for ``head``).
    coeffs: [N] the face's coefficients in ``model.layout`` (needed for ``head``).
    eye_colors: iris, teeth colours for the head (``export.eye_colors``); default: generic.
    unseen_filled: the fine albedo's unseen parts are filled already (the pipeline's texture
      stage does it, `pipeline.refine`): `visibility` is only reported, not used to fill.

  Returns:
    The written paths (strings), in writing order; the JSON, if any, is last.

  Raises:
    ValueError: bad formats, name, shapes, or inputs missing for the requested formats.
  """
  formats = check_formats(formats)
  name = check_name(name)
  num = model.num_vertices
  shape_dm = _per_vertex(vertices, num, "vertices")
  fine = _per_vertex(fine_albedo, num, "fine_albedo")
  coarse = _per_vertex(coarse_albedo, num, "coarse_albedo")
  vis = None if visibility is None else _per_vertex(visibility, num, "visibility", channels=None)
  lit = None if lit_colors is None else _per_vertex(lit_colors, num, "lit_colors")
  if units not in mesh_io.UNIT_SCALE_FROM_DM:
    raise ValueError(f"units must be one of {sorted(mesh_io.UNIT_SCALE_FROM_DM)}, got {units!r}")
  if "png" in formats:
    missing = [k for k, v in (("lit_colors", lit), ("photo", photo), ("transform", transform),
                              ("renders", renders)) if v is None]
    if missing:
      raise ValueError(f"format 'png' needs {', '.join(missing)}")
    if not isinstance(renders, overlay.AlignedRenders):
      raise ValueError(f"renders must be an overlay.AlignedRenders, got {type(renders).__name__}")
    _check_png_inputs(photo, transform, renders)
  if "head" in formats and (head_model is None or coeffs is None):
    raise ValueError("format 'head' needs head_model and coeffs")

  albedo = fine
  if vis is not None and not unseen_filled:
    albedo = invisible_fill.fill_invisible(fine, vis, model.symmetry_pairs, coarse,
                                           model.triangles, rings=fill_rings)
  output_dir = pathlib.Path(output_dir)
  output_dir.mkdir(parents=True, exist_ok=True)
  paths = {p.name: p for p in planned_files(output_dir, name, formats)}
  path = lambda suffix: paths[f"{name}{suffix}"]  # noqa: E731
  written: List[pathlib.Path] = []

  # Textures: every colour set (and the detail layer's inputs) in one UV rasterization.
  layers = {}
  if {"obj", "glb", "png", "head"} & set(formats):
    layers["fine"] = albedo
    if all(v is not None for v in (pixels, irradiance, photo_trust, photo, transform)):
      layers["detail"] = np.concatenate(
          [_per_vertex(pixels, num, "pixels", channels=2),
           _per_vertex(irradiance, num, "irradiance"),
           _per_vertex(photo_trust, num, "photo_trust", channels=None)[:, None]], axis=1)
  if "png" in formats:
    layers["coarse"] = coarse
    layers["lit"] = lit
  textures = {}
  if layers:
    stacked = np.concatenate(list(layers.values()), axis=1)
    baked = uv_texture.bake_model_texture(model, stacked, texture_size)
    bounds = np.cumsum([0] + [layer.shape[1] for layer in layers.values()])
    channels = {key: baked.image[..., bounds[i]:bounds[i + 1]] for i, key in enumerate(layers)}
    if "detail" in channels:
      inputs = channels.pop("detail")
      detail = detail_texture.detail_albedo(photo, transform, inputs[..., :2], inputs[..., 2:5])
      channels["fine"] = detail_texture.blend_detail(channels["fine"], detail, inputs[..., 5],
                                                     baked.coverage)
    textures = {key: uv_texture.to_uint8(value) for key, value in channels.items()}

  normals = mesh_io.vertex_normals(shape_dm, model.triangles)
  if {"obj", "png", "head"} & set(formats):
    written.append(atomic.write_image(path("_texture.png"), textures["fine"]))
  if "obj" in formats:
    written += mesh_io.write_obj(path(".obj"), mesh_io.convert_units(shape_dm, units),
                                 model.triangles, model.uv, model.triangle_uv,
                                 texture_file=f"{name}_texture.png", normals=normals, units=units)
  if "ply" in formats:
    written.append(mesh_io.write_ply(path(".ply"), mesh_io.convert_units(shape_dm, units),
                                     model.triangles, albedo, normals=normals))
  if "glb" in formats:
    written.append(mesh_io.write_glb(path(".glb"),
                                     mesh_io.convert_units(shape_dm, mesh_io.GLB_UNITS),
                                     model.triangles, model.uv, model.triangle_uv,
                                     textures["fine"], normals=normals))
  head = head_view = None
  head_colors = eye_colors or head_mesh.EyeMouthColors()
  if "head" in formats:
    parts = model.layout.split(np.asarray(coeffs, np.float32).reshape(-1))
    head_view = _photo_view(head_colors, shape_dm, pixels, photo, transform)
    head = head_mesh.build_head(model, head_model, parts["id"], parts["exp"], albedo,
                                head_colors, texture_size=texture_size, photo=head_view)
    written += head_export.write_head(output_dir, name, head, textures["fine"], units=units)
  if "png" in formats:
    written.append(atomic.write_image(path("_coarse_texture.png"), textures["coarse"]))
    written.append(atomic.write_image(path("_lit_texture.png"), textures["lit"]))
    pasted = overlay.paste_back(photo, renders.fine, renders.mask, transform, feather=feather)
    written.append(atomic.write_image(path("_overlay.png"), pasted))
    panels = [overlay.composite(r, renders.mask, renders.crop)
              for r in (renders.coarse, renders.fine, renders.shape)]
    strip = overlay.comparison_strip(renders.crop, *panels)
    written.append(atomic.write_image(path("_strip.png"), strip))
  if "json" in formats:
    unseen_fill = None
    if vis is not None:
      unseen_fill = ({"method": "filled before export (pipeline texture stage)"}
                     if unseen_filled else
                     {"method": "mirror colour where the mirror is seen, coarse albedo "
                                "elsewhere", "rings": fill_rings})
      unseen_fill["visible_fraction"] = float(np.mean(vis > 0.5))
    document = dict(report or {})
    document["export"] = report_lib.to_json_safe({
        "files": [p.name for p in written] + [path(".json").name],
        "formats": list(formats),
        "units": {"obj": mesh_io.UNIT_NAMES[units], "ply": mesh_io.UNIT_NAMES[units],
                  "glb": mesh_io.UNIT_NAMES[mesh_io.GLB_UNITS]},
        "geometry": "model-space shape (identity + expression), unposed, centred; +y up, +z front",
        "num_vertices": num,
        "num_triangles": model.num_triangles,
        "texture_size": int(texture_size),
        "unseen_fill": unseen_fill,
        "head": ({"num_vertices": int(len(head.base)),
                  "num_triangles": int(len(head.triangles)),
                  "morph_targets": list(head.exp_names),
                  "eye_mouth_colors": {"iris": head_colors.iris,
                                       "iris_radius": head_colors.iris_radius,
                                       "teeth": head_colors.teeth,
                                       "sources": head_colors.sources},
                  "eyes_and_mouth_from_photo": head_view is not None}
                 if head is not None else None),
    })
    written.append(atomic.write_json(path(".json"), report_lib.to_json_safe(document)))
  return [str(p) for p in written]
