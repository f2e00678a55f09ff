"""The exported head: the textured (subdivided) face joined to the rest of the ICT head.

``build_head(face_model, head_model, id_coeffs, exp_coeffs, face_albedo, eyes)`` gives a
:class:`HeadMesh` with two surfaces sharing one vertex list:

* ``face``: the face model's triangles, UVs and texture (the refined albedo), exactly as
  the face export;
* ``rest``: head and neck, mouth socket, eye sockets, gums and tongue, teeth, eyeballs,
  textured with their own atlas (:func:`atlas_uv`: the head file's UV tiles packed 2 x 2).

Vertices: the face model's V_f (its first 9,409 are the head's face vertices, midpoints
appended after them), then the head's vertices beyond the face. Where a head triangle is
stitched to a face border edge that the face subdivision split, the triangle is split at
the same midpoint, so the join has no T-junction. Positions are the same linear model
(identity + expression) for both, so coefficients fitted on the face pose everything.

Colours (albedo, [0, 1]; ``head_colors``): the skin of head and neck continues the face's
border colour, fading to the face's robust skin tone (a border colour far from the skin
tone, e.g. hair at the hairline, is not carried over); eye sockets are a darker skin,
the mouth socket dark red, gums and tongue pink, teeth off-white (``EyeMouthColors``);
the eyeballs are painted per texel: near-white sclera with a faint darker rim, the iris
(colour and radius from the photo, ``export.eye_colors``) and the pupil. Given the photo
and its fitted camera (``export.head_photo``), the eyeball and mouth-interior texels that
the photo shows through the eye and lip openings take the photo's own colours instead.
"""

import dataclasses
from typing import Dict, Optional, Tuple

import numpy as np

from facegcn_tf.export import head_photo
from facegcn_tf.export import uv_texture
from facegcn_tf.morphable import subdivision
from facegcn_tf.morphable.head import HeadModel
from facegcn_tf.morphable.model import MorphableModel
from facegcn_tf.morphable.normals import vertex_normals

# Head-file UV tile of each part -> slot in the 2 x 2 atlas (column, row).
_PART_TILE = {"head_and_neck": 1, "mouth_socket": 1, "eye_socket_left": 1,
              "eye_socket_right": 1, "gums_and_tongue": 2, "teeth": 3,
              "eyeball_left": 0, "eyeball_right": 0}
_TILE_SLOT = {0: (0, 0), 1: (1, 0), 2: (0, 1), 3: (1, 1)}
EYEBALLS = ("eyeball_left", "eyeball_right")


@dataclasses.dataclass(frozen=True)
class EyeMouthColors:
  """Albedo colours of the parts the photo rarely shows ([0, 1] RGB) and the iris size.

  iris_radius: iris radius over the eyeball radius, seen from the front (the sine of the
    iris' angular radius); 0.49 is about 5.9 mm on a 12 mm eyeball.
  landmarks: [68, 2] aligned-crop landmarks the colours were read from (their eye and lip
    contours are the openings ``head_photo`` takes the photo inside), or None.
  albedo_gain: the factor from the photo's colours to albedo the colours were scaled by.
  """
  iris: Tuple[float, float, float] = (0.33, 0.24, 0.17)
  iris_radius: float = 0.49
  sclera: Tuple[float, float, float] = (0.92, 0.90, 0.87)
  pupil: Tuple[float, float, float] = (0.03, 0.03, 0.03)
  teeth: Tuple[float, float, float] = (0.90, 0.87, 0.78)
  gums: Tuple[float, float, float] = (0.72, 0.36, 0.37)
  mouth_socket: Tuple[float, float, float] = (0.36, 0.13, 0.13)
  sources: Dict[str, str] = dataclasses.field(default_factory=dict)
  landmarks: Optional[np.ndarray] = dataclasses.field(default=None, compare=False)
  albedo_gain: float = 1.0


@dataclasses.dataclass(frozen=True)
class HeadMesh:
  """The exported head (decimetres, the face model's frame).

  Attributes:
    base: [V, 3] identity only (neutral expression).
    exp_basis: [K, V, 3] expression deltas; the posed head is base + weights . exp_basis.
    weights: [K] the fitted expression.
    exp_names: the K ARKit names.
    face_triangles, face_uv, face_triangle_uv: the face surface (face model's UV layout).
    rest_triangles, rest_uv, rest_triangle_uv: the rest, in the atlas layout.
    colors: [V, 3] per-vertex albedo (PLY; face vertices carry the face albedo).
    rest_texture: [S, S, 3] uint8 atlas of the rest.
    lower_teeth: [V] bool, the lower teeth (tests: jawOpen moves them down).
    num_face_vertices: V_f.
  """
  base: np.ndarray
  exp_basis: np.ndarray
  weights: np.ndarray
  exp_names: Tuple[str, ...]
  face_triangles: np.ndarray
  face_uv: np.ndarray
  face_triangle_uv: np.ndarray
  rest_triangles: np.ndarray
  rest_uv: np.ndarray
  rest_triangle_uv: np.ndarray
  colors: np.ndarray
  rest_texture: np.ndarray
  lower_teeth: np.ndarray
  num_face_vertices: int

  def posed(self, weights: Optional[np.ndarray] = None) -> np.ndarray:
    """[V, 3] float32 head under expression ``weights`` (default: the fitted ones)."""
    w = self.weights if weights is None else np.asarray(weights, np.float64)
    return (self.base + np.tensordot(w, self.exp_basis, axes=1)).astype(np.float32)

  @property
  def triangles(self) -> np.ndarray:
    """[F, 3] every triangle (face first)."""
    return np.concatenate([self.face_triangles, self.rest_triangles])


def atlas_uv(head: HeadModel) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
  """The rest's UVs in the 2 x 2 atlas.

  Returns:
    rest: [F] bool, the head's non-face triangles; uv: [Vt_rest, 2] one atlas UV per
    (file UV, tile) pair the rest uses; triangle_uv: [F_rest, 3] into it.
  """
  rest = head.triangle_part != head.part_names.index("face")
  corners = head.uv[head.triangle_uv[rest]]  # [F, 3, 2]
  parts = np.asarray(head.part_names)[head.triangle_part[rest]]
  tiles = np.array([_PART_TILE[p] for p in parts])
  col = np.array([_TILE_SLOT[t][0] for t in tiles], np.float32)
  row = np.array([_TILE_SLOT[t][1] for t in tiles], np.float32)
  local = corners.copy()
  local[..., 0] = np.clip(corners[..., 0] - tiles[:, None], 0.0, 1.0)
  local[..., 1] = np.clip(corners[..., 1], 0.0, 1.0)
  # 1 % margin in each cell keeps neighbouring tiles' texels apart.
  local = 0.01 + 0.98 * local
  # The two eyeballs share one file UV layout; each gets half of their cell (left, right) so
  # that each can carry its own photo colours (``head_photo``).
  for side, name in enumerate(EYEBALLS):
    half = parts == name
    local[half, :, 0] = (side + local[half, :, 0]) / 2
  uv = np.stack([(local[..., 0] + col[:, None]) / 2, (local[..., 1] + row[:, None]) / 2], -1)
  # One atlas UV per (file UV, tile): corners that shared a UV still do (no needless seams).
  keys = head.triangle_uv[rest].astype(np.int64) * 4 + tiles[:, None]
  _, first, inverse = np.unique(keys.reshape(-1), return_index=True, return_inverse=True)
  return (rest, uv.reshape(-1, 2)[first].astype(np.float32),
          inverse.reshape(-1, 3).astype(np.int32))


def _split_at_midpoints(triangles: np.ndarray, uv_index: np.ndarray, uv: np.ndarray,
                        midpoint: Dict[Tuple[int, int], int]):
  """Splits triangles at the given edge midpoints (fan from a midpoint; see module doc).

  Returns new triangles, their UV indices and the UV array with midpoint UVs appended.
  """
  out_t, out_uv, extra_uv = [], [], []
  next_uv = len(uv)
  for tri, tuv in zip(triangles.tolist(), uv_index.tolist()):
    ring, ring_uv = [], []
    for k in range(3):
      a, b = tri[k], tri[(k + 1) % 3]
      ring.append(a)
      ring_uv.append(tuv[k])
      m = midpoint.get((min(a, b), max(a, b)))
      if m is not None:
        ring.append(m)
        extra_uv.append((uv[tuv[k]] + uv[tuv[(k + 1) % 3]]) / 2)
        ring_uv.append(next_uv)
        next_uv += 1
    if len(ring) == 3:
      out_t.append(tri)
      out_uv.append(tuv)
      continue
    start = next(i for i in range(len(ring)) if ring[i] not in tri)
    ring, ring_uv = ring[start:] + ring[:start], ring_uv[start:] + ring_uv[:start]
    for i in range(1, len(ring) - 1):
      out_t.append([ring[0], ring[i], ring[i + 1]])
      out_uv.append([ring_uv[0], ring_uv[i], ring_uv[i + 1]])
  uv = np.concatenate([uv, np.asarray(extra_uv, np.float32).reshape(-1, 2)])
  return np.asarray(out_t, np.int32), np.asarray(out_uv, np.int32), uv


def _face_midpoints(face_model: MorphableModel, head: HeadModel) -> Dict[Tuple[int, int], int]:
  """Edge (a, b) of the coarse face -> its midpoint vertex in the subdivided face model."""
  num = head.face_vertex_count
  if face_model.num_vertices == num:
    return {}
  coarse = head.triangles[head.triangle_part == head.part_names.index("face")]
  edges, _ = subdivision.unique_edges(coarse)
  if num + len(edges) != face_model.num_vertices:
    raise ValueError(f"the face model ({face_model.num_vertices} vertices) is neither the head's "
                     f"face area nor its midpoint subdivision ({num + len(edges)})")
  return {(int(min(a, b)), int(max(a, b))): num + i for i, (a, b) in enumerate(edges)}


def _skin_continuation(face_albedo: np.ndarray, skin_mask: np.ndarray, positions: np.ndarray,
                       border: np.ndarray, targets: np.ndarray,
                       reach: float = 0.35) -> np.ndarray:
  """Skin colour of ``targets`` vertices: the nearest border colours fading to the skin tone.

  Args:
    face_albedo: [V, 3] colours of every vertex index in ``positions`` (only borders used).
    skin_mask: [V_f] bool face vertices that are skin (the robust tone's sample).
    positions: [V, 3]; border: [B] indices of face border vertices; targets: [T] indices.
    reach: decimetres over which the border colour fades into the tone.
  """
  from scipy.spatial import cKDTree  # pylint: disable=import-outside-toplevel
  samples = face_albedo[:len(skin_mask)][skin_mask]
  tone = np.median(samples, axis=0)
  spread = np.percentile(np.linalg.norm(samples - tone, axis=1), 80) + 0.03
  border_colors = face_albedo[border]
  far = np.linalg.norm(border_colors - tone, axis=1) > 2.0 * spread  # hair, shadow, occluder
  border_colors = np.where(far[:, None], tone, border_colors)
  tree = cKDTree(positions[border])
  dist, idx = tree.query(positions[targets], k=8)
  w = np.exp(-(dist / 0.05) ** 2) + 1e-9
  near = np.sum(border_colors[idx] * w[..., None], axis=1) / np.sum(w, axis=1)[:, None]
  fade = np.clip(dist[:, 0] / reach, 0.0, 1.0)[:, None]
  fade = fade * fade * (3 - 2 * fade)
  return (1 - fade) * near + fade * tone, tone


def _eyeball_frame(v: np.ndarray) -> Tuple[np.ndarray, float]:
  """Centre and radius of an eyeball's [N, 3] vertices (looking along +z; the cornea bulges
  in front, so the centre is one radius in front of the back)."""
  radius = float(np.mean(v.max(0)[:2] - v.min(0)[:2]) / 2)
  centre = (v.min(0) + v.max(0)) / 2
  centre[2] = v[:, 2].min() + radius
  return centre, radius


def inner_eye_shells(head: HeadModel) -> np.ndarray:
  """[F] bool: the inner of each eyeball's two shells.

  ICT's eyeball part has an outer shell (sclera + cornea) and an inner one (iris) sharing
  one UV layout; the export paints the outer shell opaque and leaves the inner out.
  """
  from scipy.sparse import csgraph, coo_matrix  # pylint: disable=import-outside-toplevel
  out = np.zeros(len(head.triangles), bool)
  for name in EYEBALLS:
    faces = np.flatnonzero(head.part_triangles(name))
    tris = head.triangles[faces]
    verts, local = np.unique(tris, return_inverse=True)
    local = local.reshape(-1, 3)
    rows = np.concatenate([local[:, 0], local[:, 1], local[:, 2]])
    cols = np.concatenate([local[:, 1], local[:, 2], local[:, 0]])
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(verts),) * 2)
    count, labels = csgraph.connected_components(graph, directed=False)
    if count < 2:
      continue
    front = [head.mean_shape[verts[labels == k], 2].max() for k in range(count)]
    out[faces[labels[local[:, 0]] != int(np.argmax(front))]] = True
  return out


def _paint_eyes(local: np.ndarray, colors: EyeMouthColors) -> np.ndarray:
  """[..., 3] eyeball-local unit positions (+z front) -> [..., 3] albedo."""
  r = np.hypot(local[..., 0], local[..., 1])
  front = local[..., 2] > 0
  ri = colors.iris_radius
  sclera = np.asarray(colors.sclera, np.float32)
  # Faint darker, warmer rim towards the back and the corners (soft, not a line).
  rim = np.clip((r - ri) / (1 - ri), 0, 1) ** 2 * 0.10
  out = sclera * (1 - rim[..., None]) + np.array([0.03, 0.0, 0.0], np.float32) * rim[..., None]
  out = np.where(front[..., None] | (local[..., 2] > -0.2)[..., None], out, sclera * 0.85)
  iris = np.asarray(colors.iris, np.float32)
  t = np.clip(r / ri, 0, 1)
  # Limbal ring: the iris darkens towards its edge; a lighter collarette near the pupil.
  iris_col = iris * (0.75 + 0.35 * np.exp(-((t - 0.5) / 0.18) ** 2))[..., None]
  iris_col = np.where((t > 0.85)[..., None], iris * 0.55, iris_col)
  edge = np.clip((r - ri) / 0.03 + 0.5, 0, 1)[..., None]
  out = np.where(front[..., None], edge * out + (1 - edge) * iris_col, out)
  pupil = np.clip((r - 0.36 * ri) / 0.02 + 0.5, 0, 1)[..., None]
  return np.where(front[..., None], pupil * out + (1 - pupil) * np.asarray(colors.pupil), out)


def build_head(face_model: MorphableModel, head: HeadModel, id_coeffs, exp_coeffs,
               face_albedo: np.ndarray, colors: Optional[EyeMouthColors] = None,
               texture_size: int = 1024,
               photo: Optional[head_photo.PhotoView] = None) -> HeadMesh:
  """Joins the face model's mesh to the rest of ``head`` and colours the rest.

  Args:
    face_model: the exported face model (the ICT face area, coarse or subdivided).
    head: :func:`facegcn_tf.morphable.head.load_head`.
    id_coeffs: [n_id]; exp_coeffs: [n_exp] the fitted coefficients.
    face_albedo: [V_f, 3] the face's exported albedo in [0, 1].
    colors: eye and mouth colours (default :class:`EyeMouthColors`).
    texture_size: side of the rest's atlas.
    photo: the photo and fitted camera: the eyeballs' and mouth interior's texels that the
      photo shows through the eye and lip openings take its colours (``head_photo``);
      None: painted only.
  """
  colors = colors or EyeMouthColors()
  nf_head = head.face_vertex_count
  vf = face_model.num_vertices
  if tuple(face_model.exp_names or ()) != head.exp_names:
    raise ValueError("the face model's expression names differ from the head's")
  face_albedo = np.asarray(face_albedo, np.float32)
  alpha = np.asarray(id_coeffs, np.float64)
  beta = np.asarray(exp_coeffs, np.float64)
  # Positions: face model's vertices, then the head's beyond its face area.
  face_base = face_model.mean_shape + np.tensordot(alpha, face_model.id_basis, axes=1)
  rest_base = head.mean_shape[nf_head:] + np.tensordot(alpha, head.id_basis[:, nf_head:], axes=1)
  base = np.concatenate([face_base, rest_base]).astype(np.float32)
  exp_basis = np.concatenate([face_model.exp_basis, head.exp_basis[:, nf_head:]], axis=1)
  remap = np.concatenate([np.arange(nf_head), np.arange(vf, vf + head.num_vertices - nf_head)])

  rest_mask, uv, tri_uv = atlas_uv(head)
  keep = ~inner_eye_shells(head)[rest_mask]
  rest_tris = remap[head.triangles[rest_mask][keep]]
  tri_uv = tri_uv[keep]
  rest_tris, tri_uv, uv = _split_at_midpoints(rest_tris, tri_uv, uv,
                                              _face_midpoints(face_model, head))
  num = len(base)
  part = np.full(num, -1, np.int32)
  part[vf:] = head.vertex_part[nf_head:]
  names = head.part_names
  pick = lambda *n: np.isin(part, [names.index(x) for x in n])  # noqa: E731

  # Per-vertex albedo of the rest.
  vertex_colors = np.zeros((num, 3), np.float32)
  vertex_colors[:vf] = face_albedo
  used = np.zeros(num, bool)
  used[rest_tris.reshape(-1)] = True
  border = np.flatnonzero(used[:vf])
  skin_parts = pick("head_and_neck", "eye_socket_left", "eye_socket_right")
  targets = np.flatnonzero(skin_parts)
  skin, tone = _skin_continuation(vertex_colors, face_model.skin_mask.astype(bool), base,
                                  border, targets)
  vertex_colors[targets] = skin
  sockets = pick("eye_socket_left", "eye_socket_right")
  vertex_colors[sockets] *= np.array([0.85, 0.72, 0.72], np.float32)
  vertex_colors[pick("mouth_socket")] = colors.mouth_socket
  vertex_colors[pick("gums_and_tongue")] = colors.gums
  vertex_colors[pick("teeth")] = colors.teeth

  # Eyeballs: bake eyeball-local coordinates and paint each texel.
  local = np.zeros((num, 3), np.float32)
  for name in EYEBALLS:
    sel = pick(name)
    centre, radius = _eyeball_frame(base[sel & used])
    local[sel] = (base[sel] - centre) / radius
    vertex_colors[sel] = _paint_eyes(local[sel], colors)
  is_eye = pick(*EYEBALLS).astype(np.float32)[:, None]
  layers = [vertex_colors, local, is_eye]
  if photo is not None:  # where the texels are, as fitted: posed positions and normals
    posed = (base + np.tensordot(beta, exp_basis, axes=1)).astype(np.float32)
    is_mouth = pick("teeth", "gums_and_tongue", "mouth_socket").astype(np.float32)[:, None]
    layers += [posed, vertex_normals(posed, rest_tris), is_mouth]
  baked = uv_texture.bake_vertex_colors(np.concatenate(layers, axis=1), rest_tris, uv, tri_uv,
                                        texture_size)
  texture = baked.image[..., :3]
  eye_texels = baked.image[..., 6] > 0.5
  painted = _paint_eyes(baked.image[..., 3:6] / np.maximum(
      np.linalg.norm(baked.image[..., 3:6], axis=-1, keepdims=True), 1e-6), colors)
  texture = np.where(eye_texels[..., None], painted, texture)
  if photo is not None:
    image = baked.image.reshape(-1, baked.image.shape[-1])
    covered = baked.coverage.reshape(-1)
    eye = covered & (image[:, 6] > 0.5)
    mouth = covered & (image[:, 13] > 0.5)
    todo = eye | mouth
    seen, weight = head_photo.photo_texels(photo, image[todo, 7:10], image[todo, 10:13],
                                           eye[todo], mouth[todo])
    flat = texture.reshape(-1, 3)
    flat[todo] = weight[:, None] * seen + (1 - weight[:, None]) * flat[todo]
    texture = flat.reshape(texture.shape)

  teeth = pick("teeth")
  jaw = list(head.exp_names).index("jawOpen")
  lower = teeth & (exp_basis[jaw, :, 1] < -0.5 * np.abs(exp_basis[jaw, :, 1]).max())
  return HeadMesh(
      base=base, exp_basis=exp_basis.astype(np.float32), weights=beta.astype(np.float32),
      exp_names=head.exp_names,
      face_triangles=face_model.triangles.astype(np.int32), face_uv=face_model.uv,
      face_triangle_uv=face_model.triangle_uv.astype(np.int32),
      rest_triangles=rest_tris, rest_uv=uv, rest_triangle_uv=tri_uv,
      colors=np.clip(vertex_colors, 0, 1), rest_texture=uv_texture.to_uint8(texture),
      lower_teeth=lower, num_face_vertices=vf)


__all__ = ["EyeMouthColors", "HeadMesh", "atlas_uv", "build_head"]
