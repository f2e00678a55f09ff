"""ICT Face Model Light (face area) as a :class:`MorphableModel`.

Source file: ``ict_face_light/ict_face_area.npz`` on the asset search path
(see ``shared/models/ict_face_light/README.md``): 9,409 vertices, 9,230
quads, 100 identity modes (coefficients ~ N(0, 1)), 53 ARKit-style
expression blendshapes (weights in [0, 1]), UVs with seams, 68 landmarks.

What :func:`load_ict` does to it:

* centimetres -> decimetres (x 0.1); centred on the neutral surface's
  area-weighted centroid (unchanged by midpoint subdivision, so both
  resolutions share coordinates);
* each quad -> two triangles along its shorter diagonal (in the neutral
  shape), keeping the quads' winding, which is counter-clockwise seen from
  the front (checked, and flipped if a file ever says otherwise); the UV
  quads are split the same way;
* albedo: the project's stand-in model (``morphable.albedo``), built on the
  coarse mesh, since ICT ships none;
* ``subdivide=True`` (default): one midpoint subdivision, about 37k vertices
  and 74k triangles, close to the paper's BFM budget (35,709 / 70,789).
  Original vertices keep their indices (so ``landmarks68`` is unchanged),
  new vertices are edge midpoints appended after them; every basis, the
  albedo model and the UVs (per UV edge, so seams stay seams) are carried
  linearly;
* face region: the file's narrow inner face (its first ``narrow_face_quad_count`` quads,
  forehead to chin and cheek to cheek, no ears, neck or scalp) is what is fitted, rendered
  and composited (``MorphableModel.face_region``); the rest stays in the mesh for export;
* skin mask (``morphable.regions``) and left/right pairs
  (``morphable.symmetry``) are computed on the final mesh.
"""

import os
from typing import Optional, Union

import numpy as np

from facegcn_tf import assets
from facegcn_tf.morphable import albedo as albedo_lib
from facegcn_tf.morphable import normals as normals_lib
from facegcn_tf.morphable import regions
from facegcn_tf.morphable import subdivision
from facegcn_tf.morphable import symmetry
from facegcn_tf.morphable.model import CoeffLayout
from facegcn_tf.morphable.model import MorphableModel

ICT_RELATIVE_PATH = "ict_face_light/ict_face_area.npz"
HOW_TO_GET = ("The ICT Face Model Light (MIT) ships in the repository's shared models folder; "
              "copy shared/models/ict_face_light/ (with its LICENSE) to <repo>/assets/, "
              "set $FACEGCN_ASSETS to a folder holding it, or pass its path.")
CM_TO_DM = 0.1
_KEYS = ("neutral", "id_basis", "exp_basis", "exp_names", "quads", "uv", "quad_uv", "landmarks68")


def read_npz(path, keys=_KEYS, what: str = "ICT face-area model file", optional=()) -> dict:
  """The arrays ``keys`` (and those of ``optional`` it has) of an ``.npz`` model file
  (ValueError naming ``what`` if unusable)."""
  try:
    data = np.load(path, allow_pickle=False)
  except Exception as err:  # not a zip / npy file, unreadable, pickled
    raise ValueError(
        f"{path}: cannot read the {what} ({type(err).__name__}: {err})") from err
  if not isinstance(data, np.lib.npyio.NpzFile):
    raise ValueError(f"{path}: not an {what} (an .npy array, not .npz)")
  with data:
    missing = [k for k in keys if k not in data.files]
    if missing:
      raise ValueError(f"{path}: not an {what} (missing keys {missing})")
    return {k: data[k] for k in tuple(keys) + tuple(optional) if k in data.files}


def load_ict(path: Optional[Union[str, os.PathLike]] = None, subdivide: bool = True,
             n_tex: int = 80) -> MorphableModel:
  """Loads the ICT face model.

  Args:
    path: the ``.npz`` file, or a folder holding it or ``ict_face_light/``
      (searched first); default: the asset search path (``facegcn_tf.assets``).
    subdivide: one midpoint subdivision (~37k vertices, name ``"ict"``);
      False gives the coarse 9,409-vertex mesh (name ``"ict_coarse"``).
    n_tex: number of stand-in albedo modes.

  Returns:
    The model; coefficient layout ``CoeffLayout(100, 53, n_tex)``.

  Raises:
    AssetNotFoundError: the file is not on the search path.
    ValueError: the file is not a valid ICT face-area model.
  """
  found = assets.find_asset(ICT_RELATIVE_PATH, explicit=path, how_to_get=HOW_TO_GET,
                            alternatives=("ict_face_area.npz",))
  raw = read_npz(found, optional=("narrow_face_quad_count",))
  neutral = raw["neutral"].astype(np.float64) * CM_TO_DM
  num = len(neutral)
  id_basis = raw["id_basis"].astype(np.float32) * np.float32(CM_TO_DM)
  exp_basis = raw["exp_basis"].astype(np.float32) * np.float32(CM_TO_DM)
  if neutral.shape != (num, 3) or id_basis.shape[1:] != (num, 3) or exp_basis.shape[1:] != (num, 3):
    raise ValueError(f"{found}: inconsistent shapes neutral {neutral.shape}, "
                     f"id_basis {id_basis.shape}, exp_basis {exp_basis.shape}")
  quads, quad_uv = raw["quads"], raw["quad_uv"]
  split = subdivision.shorter_diagonal_is_02(quads, neutral)
  triangles = subdivision.quads_to_triangles(quads, split)
  triangle_uv = subdivision.quads_to_triangles(quad_uv, split)
  # The narrow inner face: the file's first quads. quads_to_triangles keeps quad q's two
  # triangles at 2q, 2q + 1.
  narrow = int(raw.get("narrow_face_quad_count", len(quads)))
  if not 0 < narrow <= len(quads):
    raise ValueError(f"{found}: narrow_face_quad_count {narrow} is not in [1, {len(quads)}]")
  face_region = np.arange(len(triangles)) < 2 * narrow
  if not normals_lib.faces_viewer(neutral, triangles):
    triangles, triangle_uv = triangles[:, [0, 2, 1]], triangle_uv[:, [0, 2, 1]]
  neutral -= normals_lib.surface_centroid(neutral, triangles)
  landmarks = raw["landmarks68"].astype(np.int32)
  mean_albedo, albedo_basis = albedo_lib.stand_in_albedo_model(neutral, triangles, landmarks, n_tex)
  uv = raw["uv"].astype(np.float32)

  if subdivide:
    triangles, edges = subdivision.midpoint_subdivide(triangles, num)
    face_region = np.repeat(face_region, 4)   # triangle t's children are 4t .. 4t + 3
    neutral = subdivision.interpolate_midpoints(neutral, edges)
    id_basis = subdivision.interpolate_midpoints(id_basis, edges, axis=1)
    exp_basis = subdivision.interpolate_midpoints(exp_basis, edges, axis=1)
    mean_albedo = subdivision.interpolate_midpoints(mean_albedo, edges)
    albedo_basis = subdivision.interpolate_midpoints(albedo_basis, edges, axis=1)
    triangle_uv, uv_edges = subdivision.midpoint_subdivide(triangle_uv, len(uv))
    uv = subdivision.interpolate_midpoints(uv, uv_edges)

  skin = regions.skin_mask(neutral, triangles, landmarks)
  pairs = symmetry.mesh_mirror_pairs(neutral, triangles)
  return MorphableModel(
      name="ict" if subdivide else "ict_coarse",
      mean_shape=neutral.astype(np.float32),
      id_basis=id_basis,
      exp_basis=exp_basis,
      mean_albedo=mean_albedo,
      albedo_basis=albedo_basis,
      triangles=triangles,
      uv=uv,
      triangle_uv=triangle_uv,
      landmarks68=landmarks,
      skin_mask=skin,
      symmetry_pairs=pairs,
      layout=CoeffLayout(id_basis.shape[0], exp_basis.shape[0], n_tex),
      exp_names=tuple(str(n) for n in raw["exp_names"]),
      face_region=face_region,
  )
