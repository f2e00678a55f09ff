"""Builds Deep3DFace's ``BFM_model_front.mat`` from the BFM 2009 release.

Inputs (none may be redistributed by this project):

* ``01_MorphableModel.mat`` - BFM 2009 (University of Basel, registration):
  ``shapeMU [3N, 1]`` (micrometres), ``shapePC [3N, 199]``, ``shapeEV [199, 1]``,
  ``texMU [3N, 1]`` (0-255), ``texPC [3N, 199]``, ``texEV [199, 1]``; N = 53,490.
* ``Exp_Pca.bin`` - Guo et al.'s expression PCA on 53,215 vertices. Layout
  (little-endian): int32 ``k`` (number of components, 79), float32
  ``expMU[3n]``, float32 ``expPC[k * 3n]`` stored component after component
  (so ``expPC.reshape(k, 3n).T`` is ``[3n, k]``). n is not stored; it
  follows from the file size.
* From Deep3DFaceReconstruction's ``BFM/`` folder (MIT): ``std_exp.txt``
  (the k expression standard deviations), ``BFM_exp_idx.mat``
  (``trimIndex [n, 1]``, 1-based into the N BFM vertices),
  ``BFM_front_idx.mat`` (``idx [35709, 1]``, 1-based into the n expression
  vertices) and ``facemodel_info.mat`` (``tri``, ``point_buf``,
  ``tri_mask2``, ``keypoints``, ``frontmask2_idx``, ``skinmask``).

Formulas (paper_spec section 2.3, Deep3DFace ``transferBFM09``), with
``front = idx - 1`` and ``shape_index = (trimIndex - 1)[front]``:

    idBase    = (shapePC * shapeEV^T / 1e5)[:, :80]  rows of vertices shape_index
    exBase    = (expPC * std_exp^T / 1e5)[:, :64]    rows of vertices front
    texBase   = (texPC * texEV^T)[:, :80]            rows of vertices shape_index
    meanshape = shapeMU / 1e5                        vertices shape_index, [1, 3V]
    meantex   = texMU                                vertices shape_index, [1, 3V]

"rows of vertices" selects, per vertex, its three xyz rows. Bases and means
are written as float32; the facemodel_info arrays are copied unchanged.
"""

import dataclasses
import os
import pathlib
from typing import Dict, Optional, Union

import numpy as np
import scipy.io

from facegcn_tf import assets
from facegcn_tf.errors import AssetNotFoundError

PathLike = Union[str, os.PathLike]

SOURCES = {
    "morphable_model": ("01_MorphableModel.mat",
                        "BFM 2009 from the University of Basel (https://faces.dmi.unibas.ch/bfm/, "
                        "registration required)"),
    "exp_pca": ("Exp_Pca.bin",
                "Guo et al.'s expression basis, in Coarse_Dataset.zip of github.com/Juyong/3DFace"),
    "std_exp": ("std_exp.txt", "Deep3DFaceReconstruction's BFM/ folder (GitHub, MIT)"),
    "exp_idx": ("BFM_exp_idx.mat", "Deep3DFaceReconstruction's BFM/ folder (GitHub, MIT)"),
    "front_idx": ("BFM_front_idx.mat", "Deep3DFaceReconstruction's BFM/ folder (GitHub, MIT)"),
    "facemodel_info": ("facemodel_info.mat",
                       "Deep3DFaceReconstruction's BFM/ folder (GitHub, MIT)"),
}
INFO_KEYS = ("tri", "point_buf", "tri_mask2", "keypoints", "frontmask2_idx", "skinmask")
OUTPUT_NAME = "BFM_model_front.mat"


@dataclasses.dataclass(frozen=True)
class Sizes:
  """How many leading components to keep (Deep3DFace: 80 / 64 / 80)."""
  n_id: int = 80
  n_exp: int = 64
  n_tex: int = 80


def find_sources(bfm_dir: PathLike, aux_dir: Optional[PathLike] = None) -> Dict[str, pathlib.Path]:
  """Locates the six input files.

  Args:
    bfm_dir: folder holding ``01_MorphableModel.mat`` (and, unless
      ``aux_dir`` is given, the other five files).
    aux_dir: folder holding ``Exp_Pca.bin`` and Deep3DFace's ``BFM/`` files,
      looked for there first, then in ``bfm_dir`` (``01_MorphableModel.mat``:
      ``bfm_dir`` first, then ``aux_dir``).

  Returns:
    dict source key (see :data:`SOURCES`) -> path.

  Raises:
    AssetNotFoundError: one line naming every missing file and where it comes from.
  """
  dirs = [pathlib.Path(d).expanduser() for d in (aux_dir, bfm_dir) if d]
  found, missing = {}, []
  for key, (name, origin) in SOURCES.items():
    order = dirs[::-1] if key == "morphable_model" else dirs
    hits = [d / name for d in order if (d / name).is_file()]
    if hits:
      found[key] = hits[0]
    else:
      missing.append(f"{name} ({origin})")
  if missing:
    looked = ", ".join(str(d) for d in dirs)
    raise AssetNotFoundError(
        f"BFM conversion inputs not found in {looked}: " + "; ".join(missing) + ".")
  return found


def read_exp_pca(path: PathLike) -> Dict[str, np.ndarray]:
  """Reads ``Exp_Pca.bin``.

  Returns:
    ``{"expMU": [3n] float32, "expPC": [3n, k] float32}``.

  Raises:
    ValueError: the size does not match the header.
  """
  raw = pathlib.Path(path).read_bytes()
  if len(raw) < 4:
    raise ValueError(f"{path}: too short for an Exp_Pca.bin file ({len(raw)} bytes)")
  k = int(np.frombuffer(raw, dtype="<i4", count=1)[0])
  floats = (len(raw) - 4) // 4
  if k <= 0 or (len(raw) - 4) % 4 or floats % (3 * (k + 1)):
    raise ValueError(f"{path}: {len(raw)} bytes do not fit an int32 component count ({k}) "
                     "followed by float32 expMU[3n] and expPC[k * 3n]")
  n3 = floats // (k + 1)
  values = np.frombuffer(raw, dtype="<f4", offset=4)
  return {"expMU": values[:n3].copy(), "expPC": values[n3:].reshape(k, n3).T.copy()}


def _vertex_rows(matrix: np.ndarray, vertex_index: np.ndarray) -> np.ndarray:
  """Rows ``3i, 3i+1, 3i+2`` for each vertex i of ``vertex_index`` (``[3N, C]`` -> ``[3V, C]``)."""
  columns = matrix.shape[1]
  return matrix.reshape(-1, 3, columns)[vertex_index].reshape(-1, columns)


def _indices(data: dict, key: str, upper: int, where) -> np.ndarray:
  if key not in data:
    raise ValueError(f"{where}: missing key '{key}'")
  index = np.asarray(data[key]).ravel().astype(np.int64) - 1
  if index.size == 0 or index.min() < 0 or index.max() >= upper:
    raise ValueError(f"{where}: '{key}' must hold 1-based indices in [1, {upper}]")
  return index


def build_front_model(morphable_model: dict, exp_pca: Dict[str, np.ndarray], std_exp: np.ndarray,
                      exp_idx: dict, front_idx: dict, facemodel_info: dict,
                      sizes: Sizes = Sizes()) -> Dict[str, np.ndarray]:
  """Applies the module-docstring formulas to loaded inputs.

  Args:
    morphable_model: contents of ``01_MorphableModel.mat``.
    exp_pca: :func:`read_exp_pca` output.
    std_exp: ``[k]`` expression standard deviations.
    exp_idx: contents of ``BFM_exp_idx.mat`` (``trimIndex``).
    front_idx: contents of ``BFM_front_idx.mat`` (``idx``).
    facemodel_info: contents of ``facemodel_info.mat``.
    sizes: components to keep.

  Returns:
    dict of arrays to save as ``BFM_model_front.mat``.
  """
  for key in ("shapeMU", "shapePC", "shapeEV", "texMU", "texPC", "texEV"):
    if key not in morphable_model:
      raise ValueError(f"01_MorphableModel.mat: missing key '{key}'")
  shape_pc = np.asarray(morphable_model["shapePC"], dtype=np.float64)
  tex_pc = np.asarray(morphable_model["texPC"], dtype=np.float64)
  shape_ev = np.asarray(morphable_model["shapeEV"], dtype=np.float64).ravel()
  tex_ev = np.asarray(morphable_model["texEV"], dtype=np.float64).ravel()
  shape_mu = np.asarray(morphable_model["shapeMU"], dtype=np.float64).ravel()
  tex_mu = np.asarray(morphable_model["texMU"], dtype=np.float64).ravel()
  exp_pc = np.asarray(exp_pca["expPC"], dtype=np.float64)
  std_exp = np.asarray(std_exp, dtype=np.float64).ravel()
  n3 = shape_mu.size
  if n3 % 3 or shape_pc.shape[0] != n3 or tex_pc.shape[0] != n3 or tex_mu.size != n3:
    raise ValueError(f"01_MorphableModel.mat: inconsistent sizes shapeMU {shape_mu.size}, "
                     f"shapePC {shape_pc.shape}, texMU {tex_mu.size}, texPC {tex_pc.shape}")
  for name, pc, ev, keep in (("shape", shape_pc, shape_ev, sizes.n_id),
                             ("tex", tex_pc, tex_ev, sizes.n_tex),
                             ("exp", exp_pc, std_exp, sizes.n_exp)):
    if pc.shape[1] != ev.size or keep > ev.size:
      raise ValueError(f"{name} basis has {pc.shape[1]} components and {ev.size} deviations; "
                       f"cannot keep {keep}")
  n_exp_vertices = exp_pc.shape[0] // 3
  trim = _indices(exp_idx, "trimIndex", n3 // 3, "BFM_exp_idx.mat")
  if trim.size != n_exp_vertices:
    raise ValueError(f"BFM_exp_idx.mat has {trim.size} entries but Exp_Pca.bin has "
                     f"{n_exp_vertices} vertices")
  front = _indices(front_idx, "idx", n_exp_vertices, "BFM_front_idx.mat")
  shape_index = trim[front]

  id_base = _vertex_rows(shape_pc[:, :sizes.n_id] * shape_ev[:sizes.n_id] / 1e5, shape_index)
  ex_base = _vertex_rows(exp_pc[:, :sizes.n_exp] * std_exp[:sizes.n_exp] / 1e5, front)
  tex_base = _vertex_rows(tex_pc[:, :sizes.n_tex] * tex_ev[:sizes.n_tex], shape_index)
  meanshape = (shape_mu.reshape(-1, 3) / 1e5)[shape_index].reshape(1, -1)
  meantex = tex_mu.reshape(-1, 3)[shape_index].reshape(1, -1)
  out = {"meanshape": meanshape, "meantex": meantex, "idBase": id_base, "exBase": ex_base,
         "texBase": tex_base}
  out = {k: v.astype(np.float32) for k, v in out.items()}
  for key in INFO_KEYS:
    if key in facemodel_info:
      out[key] = np.asarray(facemodel_info[key])
  if "tri" not in out or "keypoints" not in out:
    raise ValueError("facemodel_info.mat: missing 'tri' or 'keypoints'")
  return out


def _loadmat(path: pathlib.Path) -> dict:
  try:
    return scipy.io.loadmat(str(path))
  except Exception as err:  # scipy raises several types on corrupt files
    raise ValueError(f"{path}: cannot read as a .mat file ({type(err).__name__}: {err})") from err


def convert(bfm_dir: PathLike, output: Optional[PathLike] = None,
            aux_dir: Optional[PathLike] = None, sizes: Sizes = Sizes()) -> pathlib.Path:
  """Reads the six inputs, writes ``BFM_model_front.mat``, returns its path.

  Args:
    bfm_dir: see :func:`find_sources`.
    output: output file; default ``<writable asset dir>/bfm/BFM_model_front.mat``
      (``$FACEGCN_ASSETS`` or ``<repo>/assets``), where :func:`bfm.load_bfm` looks.
    aux_dir: see :func:`find_sources`.
    sizes: components to keep.
  """
  paths = find_sources(bfm_dir, aux_dir)
  try:
    std_exp = np.loadtxt(paths["std_exp"], dtype=np.float64)
  except ValueError as err:
    raise ValueError(f"{paths['std_exp']}: not a list of numbers ({err})") from err
  model = build_front_model(
      morphable_model=_loadmat(paths["morphable_model"]),
      exp_pca=read_exp_pca(paths["exp_pca"]),
      std_exp=std_exp,
      exp_idx=_loadmat(paths["exp_idx"]),
      front_idx=_loadmat(paths["front_idx"]),
      facemodel_info=_loadmat(paths["facemodel_info"]),
      sizes=sizes)
  if output is None:
    output = assets.writable_asset_dir("bfm") / OUTPUT_NAME
  output = pathlib.Path(output).expanduser()
  output.parent.mkdir(parents=True, exist_ok=True)
  scipy.io.savemat(str(output), model)
  return output
