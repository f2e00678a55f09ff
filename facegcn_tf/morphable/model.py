"""The morphable-model interface every later stage uses.

A :class:`MorphableModel` is an immutable bundle of numpy arrays (float32 /
int32 / bool, all read-only) describing a linear face model:

    shape  = mean_shape  + sum_i alpha_i * id_basis[i] + sum_j beta_j * exp_basis[j]
    albedo = mean_albedo + sum_k delta_k * albedo_basis[k]

Conventions shared by every model (ICT, BFM):

* positions in **decimetres**, centred on the mean shape's vertex centroid,
  +y up, +z towards the viewer (the camera of paper_spec section 2.4 sits at
  z = +10 dm looking down -z);
* triangles wound **counter-clockwise seen from the front**, so
  ``cross(v1 - v0, v2 - v0)`` points out of the face (+z on the face front);
* ``uv`` in [0, 1] with v up (OBJ / OpenGL convention: v = 0 is the bottom
  row of a texture image); ``triangle_uv`` indexes ``uv`` per triangle corner,
  so a vertex on a UV seam has several UVs;
* "left" in ``symmetry_pairs`` is the subject's left, i.e. +x.

The 3DMM coefficient vector follows Deep3DFace's order (id, exp, tex, angles,
gamma, trans); :class:`CoeffLayout` slices it.
"""

import dataclasses
import functools
from typing import Dict, Optional

import numpy as np

from facegcn_tf.data import alignment

COEFF_NAMES = ("id", "exp", "tex", "angles", "gamma", "trans")


@dataclasses.dataclass(frozen=True)
class CoeffLayout:
  """Sizes of the parts of a coefficient vector, in Deep3DFace's order.

  BFM (Deep3DFace): ``CoeffLayout(80, 64, 80)``, total 257.
  """
  n_id: int
  n_exp: int
  n_tex: int
  n_angles: int = dataclasses.field(default=3, init=False)
  n_gamma: int = dataclasses.field(default=27, init=False)
  n_trans: int = dataclasses.field(default=3, init=False)

  def __post_init__(self):
    for name in ("n_id", "n_exp", "n_tex"):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"CoeffLayout.{name} must be a non-negative int, got {value!r}")
      object.__setattr__(self, name, int(value))

  @property
  def sizes(self) -> Dict[str, int]:
    """Part name -> length, in coefficient order."""
    return {"id": self.n_id, "exp": self.n_exp, "tex": self.n_tex,
            "angles": self.n_angles, "gamma": self.n_gamma, "trans": self.n_trans}

  @property
  def total(self) -> int:
    """Length of the whole coefficient vector."""
    return sum(self.sizes.values())

  def slices(self) -> Dict[str, slice]:
    """Part name -> slice of the last axis of a coefficient vector."""
    out, start = {}, 0
    for name, size in self.sizes.items():
      out[name] = slice(start, start + size)
      start += size
    return out

  def split(self, coeffs) -> Dict[str, object]:
    """Splits ``coeffs [..., total]`` (numpy array or tf tensor) into its parts.

    Returns:
      dict name -> ``coeffs[..., slice]`` (same type as the input), e.g. for
      ``[B, total]`` input, ``"id"`` is ``[B, n_id]``.

    Raises:
      ValueError: the last axis is known and is not ``total`` long.
    """
    shape = getattr(coeffs, "shape", None)
    if shape is None:
      raise ValueError(f"coefficients must be an array or tensor, got {type(coeffs).__name__}")
    if getattr(shape, "rank", 0) is None:  # tf tensor of unknown rank: slice, TF checks later
      return {name: coeffs[..., s] for name, s in self.slices().items()}
    if len(shape) == 0:
      raise ValueError("coefficients must have at least one axis of length "
                       f"{self.total}, got a scalar")
    last = shape[-1]
    if last is not None and int(last) != self.total:
      raise ValueError(f"coefficient vector has length {int(last)} on its last axis, "
                       f"expected {self.total} ({self.sizes})")
    return {name: coeffs[..., s] for name, s in self.slices().items()}


BFM_LAYOUT = CoeffLayout(80, 64, 80)


def _frozen(array, dtype, name: str, ndim: Optional[int] = None) -> np.ndarray:
  out = np.array(array, dtype=dtype, copy=True)
  if ndim is not None and out.ndim != ndim:
    raise ValueError(f"MorphableModel.{name} must have {ndim} axes, got shape {out.shape}")
  out.setflags(write=False)
  return out


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class MorphableModel:
  """A linear face model; see the module docstring for the conventions.

  Shapes: V vertices, F triangles, Vt UV points, P symmetry pairs.

  Attributes:
    name: short model name, e.g. ``"ict"``, ``"ict_coarse"``, ``"bfm"``.
    mean_shape: ``[V, 3]`` float32, decimetres, centred.
    id_basis: ``[K_id, V, 3]`` float32 identity deltas per unit coefficient.
    exp_basis: ``[K_exp, V, 3]`` float32 expression deltas per unit coefficient.
    mean_albedo: ``[V, 3]`` float32 RGB in [0, 1].
    albedo_basis: ``[K_tex, V, 3]`` float32 albedo deltas per unit coefficient.
    triangles: ``[F, 3]`` int32, counter-clockwise seen from the front.
    uv: ``[Vt, 2]`` float32 in [0, 1].
    triangle_uv: ``[F, 3]`` int32 indices into ``uv``.
    landmarks68: ``[68]`` int32 vertex indices, iBUG/dlib order.
    skin_mask: ``[V]`` bool, face skin (no eyes, lips/mouth, nostrils).
    symmetry_pairs: ``[P, 2]`` int32 (left = +x, right = -x) vertex pairs.
    layout: the coefficient layout (``n_id = K_id`` etc.).
    exp_names: names of the expression modes (may be empty).
    face_region: ``[F]`` bool, the triangles of the inner face (forehead to chin, cheek to
      cheek: no ears, neck or scalp) that are fitted, rendered and composited; None: every
      triangle (BFM's front face is already that region).
  """
  name: str
  mean_shape: np.ndarray
  id_basis: np.ndarray
  exp_basis: np.ndarray
  mean_albedo: np.ndarray
  albedo_basis: np.ndarray
  triangles: np.ndarray
  uv: np.ndarray
  triangle_uv: np.ndarray
  landmarks68: np.ndarray
  skin_mask: np.ndarray
  symmetry_pairs: np.ndarray
  layout: CoeffLayout
  exp_names: tuple = ()
  face_region: Optional[np.ndarray] = None

  def __post_init__(self):
    setattr_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
    for key, dtype, ndim in (("mean_shape", np.float32, 2), ("id_basis", np.float32, 3),
                             ("exp_basis", np.float32, 3), ("mean_albedo", np.float32, 2),
                             ("albedo_basis", np.float32, 3), ("triangles", np.int32, 2),
                             ("uv", np.float32, 2), ("triangle_uv", np.int32, 2),
                             ("landmarks68", np.int32, 1), ("skin_mask", bool, 1),
                             ("symmetry_pairs", np.int32, 2)):
      setattr_(key, _frozen(getattr(self, key), dtype, key, ndim))
    setattr_("exp_names", tuple(str(n) for n in self.exp_names))
    region = (np.ones([len(self.triangles)], bool) if self.face_region is None
              else self.face_region)
    setattr_("face_region", _frozen(region, bool, "face_region", 1))
    if not isinstance(self.layout, CoeffLayout):
      raise ValueError(f"MorphableModel.layout must be a CoeffLayout, got {self.layout!r}")
    self._validate()

  def _validate(self):
    v = self.mean_shape.shape[0]
    f = self.triangles.shape[0]
    checks = [
        (self.mean_shape.shape == (v, 3), f"mean_shape {self.mean_shape.shape} is not [V, 3]"),
        (self.id_basis.shape == (self.layout.n_id, v, 3),
         f"id_basis {self.id_basis.shape} is not [{self.layout.n_id}, {v}, 3]"),
        (self.exp_basis.shape == (self.layout.n_exp, v, 3),
         f"exp_basis {self.exp_basis.shape} is not [{self.layout.n_exp}, {v}, 3]"),
        (self.albedo_basis.shape == (self.layout.n_tex, v, 3),
         f"albedo_basis {self.albedo_basis.shape} is not [{self.layout.n_tex}, {v}, 3]"),
        (self.mean_albedo.shape == (v, 3), f"mean_albedo {self.mean_albedo.shape} is not [{v}, 3]"),
        (self.triangles.shape == (f, 3) and f > 0,
         f"triangles {self.triangles.shape} is not [F, 3]"),
        (self.uv.shape[1:] == (2,), f"uv {self.uv.shape} is not [Vt, 2]"),
        (self.triangle_uv.shape == (f, 3), f"triangle_uv {self.triangle_uv.shape} is not [{f}, 3]"),
        (self.landmarks68.shape == (68,), f"landmarks68 {self.landmarks68.shape} is not [68]"),
        (self.skin_mask.shape == (v,), f"skin_mask {self.skin_mask.shape} is not [{v}]"),
        (self.symmetry_pairs.shape[1:] == (2,),
         f"symmetry_pairs {self.symmetry_pairs.shape} is not [P, 2]"),
        (self.face_region.shape == (f,) and self.face_region.any(),
         f"face_region {self.face_region.shape} is not [{f}] with at least one triangle"),
        (len(self.exp_names) in (0, self.layout.n_exp),
         f"exp_names has {len(self.exp_names)} names for {self.layout.n_exp} expression modes"),
    ]
    for ok, message in checks:
      if not ok:
        raise ValueError(f"MorphableModel '{self.name}': {message}")
    for key, array, upper in (("triangles", self.triangles, v),
                              ("triangle_uv", self.triangle_uv, len(self.uv)),
                              ("landmarks68", self.landmarks68, v),
                              ("symmetry_pairs", self.symmetry_pairs, v)):
      if array.size and (array.min() < 0 or array.max() >= upper):
        raise ValueError(f"MorphableModel '{self.name}': {key} has indices outside [0, {upper})")
    if self.uv.size and (self.uv.min() < 0 or self.uv.max() > 1):
      raise ValueError(f"MorphableModel '{self.name}': uv outside [0, 1]")
    if self.mean_albedo.min() < 0 or self.mean_albedo.max() > 1:
      raise ValueError(f"MorphableModel '{self.name}': mean_albedo outside [0, 1]")
    for key in ("mean_shape", "id_basis", "exp_basis", "mean_albedo", "albedo_basis"):
      if not np.all(np.isfinite(getattr(self, key))):
        raise ValueError(f"MorphableModel '{self.name}': {key} has non-finite values")

  def __repr__(self) -> str:
    return (f"MorphableModel(name={self.name!r}, vertices={self.num_vertices}, "
            f"triangles={self.num_triangles}, uv={len(self.uv)}, layout={self.layout})")

  @property
  def num_vertices(self) -> int:
    return int(self.mean_shape.shape[0])

  @property
  def num_triangles(self) -> int:
    return int(self.triangles.shape[0])

  @property
  def region_triangles(self) -> np.ndarray:
    """``[F', 3]`` int32: the triangles of ``face_region``."""
    return self.triangles[self.face_region]

  @functools.cached_property
  def region_vertex_mask(self) -> np.ndarray:
    """``[V]`` bool read-only: vertices of the face region's triangles."""
    out = np.zeros([self.num_vertices], bool)
    out[self.region_triangles.reshape(-1)] = True
    out.setflags(write=False)
    return out

  @functools.cached_property
  def template5(self) -> np.ndarray:
    """``[5, 3]`` float64 read-only: the 5-point alignment template of the mean shape.

    ``data.alignment.five_point_template(mean_shape[landmarks68])``: photos are
    aligned to the model's own face (eye centres, nose tip, mouth corners).
    """
    out = alignment.five_point_template(self.mean_shape[self.landmarks68])
    out.setflags(write=False)
    return out

  def _combine(self, mean, basis, coeffs, what: str) -> np.ndarray:
    if coeffs is None:
      return np.array(mean)
    coeffs = np.asarray(coeffs, dtype=np.float32)
    if coeffs.ndim == 0 or coeffs.shape[-1] != basis.shape[0]:
      raise ValueError(f"{what} coefficients have shape {coeffs.shape}, "
                       f"expected [..., {basis.shape[0]}]")
    return mean + np.tensordot(coeffs, basis, axes=([-1], [0]))

  def shape(self, id_coeffs=None, exp_coeffs=None) -> np.ndarray:
    """Vertex positions (numpy reference implementation).

    Args:
      id_coeffs: ``[..., K_id]`` or None (zeros).
      exp_coeffs: ``[..., K_exp]`` or None (zeros); batch axes broadcast.

    Returns:
      ``[..., V, 3]`` float32 decimetres.
    """
    out = self._combine(self.mean_shape, self.id_basis, id_coeffs, "identity")
    if exp_coeffs is not None:
      out = self._combine(out, self.exp_basis, exp_coeffs, "expression")
    return out.astype(np.float32)

  def albedo(self, tex_coeffs=None, clip: bool = True) -> np.ndarray:
    """Per-vertex albedo (numpy reference implementation).

    Args:
      tex_coeffs: ``[..., K_tex]`` or None (zeros: the mean albedo).
      clip: clip to [0, 1] as Deep3DFace does (``clip(tex, 0, 255)``).

    Returns:
      ``[..., V, 3]`` float32 RGB.
    """
    out = self._combine(self.mean_albedo, self.albedo_basis, tex_coeffs, "texture")
    if clip:
      out = np.clip(out, 0.0, 1.0)
    return out.astype(np.float32)
