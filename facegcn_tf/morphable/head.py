"""The whole ICT head (face, scalp, neck, mouth, teeth, eyes) in the face model's frame.

Source file: ``ict_face_light/ict_head.npz`` on the asset search path (see
``shared/models/ict_face_light/README.md``): 26,719 vertices, the same 100 identity and
53 expression modes as ``ict_face_area.npz``, whose 9,409 vertices are its first ones.

What :func:`load_head` does to it, so that coefficients fitted on the face pose the head
in exactly the frame of :func:`facegcn_tf.morphable.ict.load_ict`:

* centimetres -> decimetres (x 0.1), and the **same** offset as the face model: the
  area-weighted centroid of the neutral face area (the first 9,409 vertices, its quads
  split along their shorter diagonal), not of the head;
* polygons -> triangles (quads along their shorter diagonal; the file's triangles have
  -1 as 4th index), with the face's winding fix applied to the whole head;
* the helper surfaces made for real-time eye shading (eye blend, eye occlusion, lacrimal
  fluid) are left out, and so are the eyelashes unless asked for; vertices are
  renumbered, keeping the face's 9,409 first;
* every triangle and vertex knows its part (:data:`PARTS`).

The face part is not subdivided here: the exporter (``export.head_mesh``) joins this head
to the subdivided face mesh (whose first 9,409 vertices are the same), reusing the face's
edge midpoints where the head is stitched to the face border.
"""

import dataclasses
import os
from typing import Optional, Tuple, Union

import numpy as np

from facegcn_tf import assets
from facegcn_tf.morphable import ict
from facegcn_tf.morphable import normals as normals_lib
from facegcn_tf.morphable import subdivision

HEAD_RELATIVE_PATH = "ict_face_light/ict_head.npz"
FACE_VERTEX_COUNT = 9409
FACE_POLYGON_COUNT = 9230
HELPER_PARTS = ("lacrimal_fluid_left", "lacrimal_fluid_right", "eye_blend_left",
                "eye_blend_right", "eye_occlusion_left", "eye_occlusion_right")
EYELASH_PARTS = ("eyelashes_left", "eyelashes_right")
_KEYS = ("neutral", "id_basis", "exp_basis", "exp_names", "polygons", "uv", "polygon_uv",
         "part_names", "part_vertex_range", "part_polygon_range", "landmarks68")


@dataclasses.dataclass(frozen=True)
class HeadModel:
  """The linear head model (decimetres, the face model's centred frame).

  Attributes:
    mean_shape: [V, 3] float32 neutral head.
    id_basis: [n_id, V, 3] float32 identity modes (coefficients ~ N(0, 1)).
    exp_basis: [n_exp, V, 3] float32 expression blendshapes (weights in [0, 1]).
    exp_names: the n_exp ARKit blendshape names.
    triangles: [F, 3] int32, counter-clockwise seen from outside.
    uv: [Vt, 2] float32 the file's UVs (tiled: part tiles at u in [k, k + 1)).
    triangle_uv: [F, 3] int32 into ``uv``.
    part_names: names of the kept parts; ``triangle_part`` [F] and ``vertex_part`` [V]
      index them.
    face_vertex_count: the first vertices that are the face area (9,409).
    offset_cm: [3] the centring offset subtracted (centimetres, file frame).
  """
  mean_shape: np.ndarray
  id_basis: np.ndarray
  exp_basis: np.ndarray
  exp_names: Tuple[str, ...]
  triangles: np.ndarray
  uv: np.ndarray
  triangle_uv: np.ndarray
  part_names: Tuple[str, ...]
  triangle_part: np.ndarray
  vertex_part: np.ndarray
  face_vertex_count: int
  offset_cm: np.ndarray

  @property
  def num_vertices(self) -> int:
    return len(self.mean_shape)

  def part_triangles(self, *names: str) -> np.ndarray:
    """[F] bool: the triangles of the named parts."""
    ids = [self.part_names.index(n) for n in names if n in self.part_names]
    return np.isin(self.triangle_part, ids)

  def part_vertices(self, *names: str) -> np.ndarray:
    """[V] bool: the vertices of the named parts (a stitched border vertex is the face's)."""
    ids = [self.part_names.index(n) for n in names if n in self.part_names]
    return np.isin(self.vertex_part, ids)

  def shape(self, id_coeffs, exp_coeffs) -> np.ndarray:
    """[V, 3] float32 head for one coefficient set ([n_id], [n_exp])."""
    out = self.mean_shape.astype(np.float64)
    out = out + np.tensordot(np.asarray(id_coeffs, np.float64), self.id_basis, axes=1)
    out = out + np.tensordot(np.asarray(exp_coeffs, np.float64), self.exp_basis, axes=1)
    return out.astype(np.float32)


def _polygons_to_triangles(polygons: np.ndarray, corners_uv: np.ndarray,
                           vertices: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Quads (shorter diagonal) and triangles (-1 4th index) -> triangles, their UVs and the
  index of the polygon each comes from."""
  is_tri = polygons[:, 3] < 0
  quads = np.where(is_tri[:, None], polygons[:, [0, 1, 2, 2]], polygons)
  quads_uv = np.where(is_tri[:, None], corners_uv[:, [0, 1, 2, 2]], corners_uv)
  split = subdivision.shorter_diagonal_is_02(quads, vertices)
  split = np.where(is_tri, True, split)  # (0, 1, 2) + degenerate (0, 2, 2): dropped below
  tris = subdivision.quads_to_triangles(quads, split)
  tris_uv = subdivision.quads_to_triangles(quads_uv, split)
  source = np.repeat(np.arange(len(polygons)), 2)
  keep = ~np.repeat(is_tri, 2) | (np.arange(len(tris)) % 2 == 0)
  return tris[keep], tris_uv[keep], source[keep]


def load_head(path: Optional[Union[str, os.PathLike]] = None,
              include_eyelashes: bool = False) -> HeadModel:
  """Loads ``ict_head.npz`` in the face model's frame (see the module docstring).

  Raises:
    AssetNotFoundError: the file is not on the search path.
    ValueError: the file is not a valid ICT head file.
  """
  found = assets.find_asset(HEAD_RELATIVE_PATH, explicit=path, how_to_get=ict.HOW_TO_GET,
                            alternatives=("ict_head.npz",))
  raw = ict.read_npz(found, _KEYS, "ICT head file")
  neutral_cm = raw["neutral"].astype(np.float64)
  part_names = [str(n) for n in raw["part_names"]]
  vranges, pranges = raw["part_vertex_range"], raw["part_polygon_range"]
  if part_names[0] != "face" or tuple(vranges[0]) != (0, FACE_VERTEX_COUNT):
    raise ValueError(f"{found}: the first part must be the 9,409-vertex face")
  dropped = set(HELPER_PARTS) | (set() if include_eyelashes else set(EYELASH_PARTS))
  kept = [i for i, n in enumerate(part_names) if n not in dropped]

  tris, tris_uv, source = _polygons_to_triangles(raw["polygons"], raw["polygon_uv"], neutral_cm)
  polygon_part = np.zeros(len(raw["polygons"]), np.int32)
  for i, (start, end) in enumerate(pranges):
    polygon_part[start:end] = i
  tri_part_file = polygon_part[source]
  vertex_part_file = np.zeros(len(neutral_cm), np.int32)
  for i, (start, end) in enumerate(vranges):
    vertex_part_file[start:end] = i

  # Centring and winding exactly as load_ict does on the face area.
  face_tris = tris[tri_part_file == 0]
  neutral_dm = neutral_cm * ict.CM_TO_DM
  face_dm = neutral_dm[:FACE_VERTEX_COUNT]
  if not normals_lib.faces_viewer(face_dm, face_tris):
    tris, tris_uv = tris[:, [0, 2, 1]], tris_uv[:, [0, 2, 1]]
  offset_dm = normals_lib.surface_centroid(face_dm, tris[tri_part_file == 0])

  keep_vertex = np.isin(vertex_part_file, kept)
  keep_tri = np.isin(tri_part_file, kept)
  new_index = np.full(len(neutral_cm), -1, np.int64)
  new_index[keep_vertex] = np.arange(int(keep_vertex.sum()))
  triangles = new_index[tris[keep_tri]]
  if triangles.min() < 0:
    raise ValueError(f"{found}: a kept polygon uses a dropped vertex")
  part_map = {old: new for new, old in enumerate(kept)}
  scale = np.float32(ict.CM_TO_DM)
  return HeadModel(
      mean_shape=(neutral_dm[keep_vertex] - offset_dm).astype(np.float32),
      id_basis=raw["id_basis"][:, keep_vertex] * scale,
      exp_basis=raw["exp_basis"][:, keep_vertex] * scale,
      exp_names=tuple(str(n) for n in raw["exp_names"]),
      triangles=triangles.astype(np.int32),
      uv=raw["uv"].astype(np.float32),
      triangle_uv=tris_uv[keep_tri].astype(np.int32),
      part_names=tuple(part_names[i] for i in kept),
      triangle_part=np.array([part_map[p] for p in tri_part_file[keep_tri]], np.int32),
      vertex_part=np.array([part_map[p] for p in vertex_part_file[keep_vertex]], np.int32),
      face_vertex_count=FACE_VERTEX_COUNT,
      offset_cm=(offset_dm / ict.CM_TO_DM).astype(np.float32),
  )


__all__ = ["HeadModel", "load_head", "HELPER_PARTS", "EYELASH_PARTS"]
