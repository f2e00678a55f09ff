"""BFM 2009 "front" model (Deep3DFace's ``BFM_model_front.mat``), user-supplied.

BFM 2009 needs registration at the University of Basel and may not be
redistributed, so it is never bundled: make ``BFM_model_front.mat`` with
``scripts/convert_bfm.py`` (``morphable.bfm_convert``) and put it at
``assets/bfm/BFM_model_front.mat`` (or pass its path, or set
``$FACEGCN_ASSETS`` to a folder holding ``bfm/BFM_model_front.mat``).

File contents (paper_spec section 2.3): ``meanshape [1, 3V]`` (decimetres,
xyz interleaved), ``idBase [3V, 80]``, ``exBase [3V, 64]``, ``meantex [1, 3V]``
(0-255), ``texBase [3V, 80]`` (0-255 units), ``tri [F, 3]`` and
``keypoints [1, 68]`` (1-based). V = 35,709, F = 70,789 for the real model.

What :func:`load_bfm` does:

* bases -> ``[K, V, 3]``; albedo / 255 so that coefficients keep Deep3DFace's
  meaning (``(meantex + texBase @ delta) / 255``); the mean is clipped to
  [0, 1];
* mean shape centred on its **vertex mean**, exactly as Deep3DFace / the GCN
  code do (the R-Net's translation coefficients assume it);
* triangles and keypoints -> 0-based; winding checked to face +z (flipped if
  not);
* UVs: BFM has none; a cylindrical layout (``morphable.uv``), one UV per
  vertex (``triangle_uv = triangles``);
* ``skin_mask`` from the landmarks (``morphable.regions``), the same
  definition as for ICT; the file's own ``skinmask`` (Deep3DFace's narrower
  cheek/forehead region for its skin-colour loss) is not used;
* ``symmetry_pairs`` from the mean shape (``morphable.symmetry``), never
  BFM's ``face05_symlist.txt`` (the official GCN code applied those
  full-BFM indices to the front model, a bug).
"""

import os
from typing import Optional, Union

import numpy as np
import scipy.io

from facegcn_tf import assets
from facegcn_tf.morphable import normals as normals_lib
from facegcn_tf.morphable import regions
from facegcn_tf.morphable import symmetry
from facegcn_tf.morphable import uv as uv_lib
from facegcn_tf.morphable.model import CoeffLayout
from facegcn_tf.morphable.model import MorphableModel

BFM_RELATIVE_PATH = "bfm/BFM_model_front.mat"
BFM_ALTERNATIVES = ("BFM_model_front.mat", "bfm/bfm2009_face.mat")
HOW_TO_GET = (
    "BFM 2009 cannot be bundled: register at the University of Basel "
    "(https://faces.dmi.unibas.ch/bfm/) for 01_MorphableModel.mat, get Exp_Pca.bin and "
    "Deep3DFaceReconstruction's BFM/ files (BFM_front_idx.mat, BFM_exp_idx.mat, std_exp.txt, "
    "facemodel_info.mat), run 'python scripts/convert_bfm.py --bfm_dir=DIR' to build "
    "BFM_model_front.mat, and put it at assets/bfm/BFM_model_front.mat "
    "(or pass its path: --model_path to infer.py / prepare_data.py, --face_model_path to "
    "train.py; or set $FACEGCN_ASSETS to a folder holding bfm/BFM_model_front.mat).")
REQUIRED_KEYS = ("meanshape", "idBase", "exBase", "meantex", "texBase", "tri", "keypoints")


def find_bfm(path: Optional[Union[str, os.PathLike]] = None):
  """Path of ``BFM_model_front.mat`` (see :data:`HOW_TO_GET`); raises AssetNotFoundError."""
  return assets.find_asset(BFM_RELATIVE_PATH, explicit=path, how_to_get=HOW_TO_GET,
                           alternatives=BFM_ALTERNATIVES)


def _basis(array: np.ndarray, num_vertices: int, key: str, where) -> np.ndarray:
  """``[3V, K]`` (xyz interleaved) -> ``[K, V, 3]`` float32."""
  array = np.asarray(array)
  if array.ndim != 2 or array.shape[0] != 3 * num_vertices:
    raise ValueError(f"{where}: {key} has shape {array.shape}, expected [{3 * num_vertices}, K]")
  return np.ascontiguousarray(
      array.reshape(num_vertices, 3, -1).transpose(2, 0, 1), dtype=np.float32)


def _one_based(array: np.ndarray, key: str, upper: int, where) -> np.ndarray:
  array = np.asarray(array)
  if not np.issubdtype(array.dtype, np.number) or array.size == 0:
    raise ValueError(f"{where}: {key} must be a non-empty numeric index array")
  if array.min() < 1 or array.max() > upper:
    raise ValueError(f"{where}: {key} must hold 1-based indices in [1, {upper}], "
                     f"got [{array.min()}, {array.max()}]")
  return array.astype(np.int64) - 1


def model_from_arrays(data: dict, where: str = "BFM model") -> MorphableModel:
  """Builds the model from the ``.mat`` contents (dict of arrays, keys as in the file)."""
  missing = [k for k in REQUIRED_KEYS if k not in data]
  if missing:
    raise ValueError(f"{where}: not a BFM_model_front.mat file (missing keys {missing})")
  meanshape = np.asarray(data["meanshape"], dtype=np.float64).ravel()
  if meanshape.size == 0 or meanshape.size % 3:
    raise ValueError(f"{where}: meanshape has {meanshape.size} values, not a multiple of 3")
  num = meanshape.size // 3
  mean_shape = meanshape.reshape(num, 3)
  meantex = np.asarray(data["meantex"], dtype=np.float64).ravel()
  if meantex.size != 3 * num:
    raise ValueError(f"{where}: meantex has {meantex.size} values, expected {3 * num}")
  tri = _one_based(data["tri"], "tri", num, where)
  if tri.ndim != 2 or tri.shape[1] != 3:
    raise ValueError(f"{where}: tri has shape {tri.shape}, expected [F, 3]")
  keypoints = _one_based(data["keypoints"], "keypoints", num, where).ravel()
  if keypoints.shape != (68,):
    raise ValueError(f"{where}: keypoints has {keypoints.size} entries, expected 68")
  id_basis = _basis(data["idBase"], num, "idBase", where)
  exp_basis = _basis(data["exBase"], num, "exBase", where)
  albedo_basis = _basis(data["texBase"], num, "texBase", where) / np.float32(255.0)

  mean_shape = mean_shape - mean_shape.mean(axis=0)
  triangles = normals_lib.orient_towards_viewer(mean_shape, tri)
  return MorphableModel(
      name="bfm",
      mean_shape=mean_shape.astype(np.float32),
      id_basis=id_basis,
      exp_basis=exp_basis,
      mean_albedo=np.clip(meantex.reshape(num, 3) / 255.0, 0.0, 1.0).astype(np.float32),
      albedo_basis=albedo_basis,
      triangles=triangles,
      uv=uv_lib.cylindrical_uv(mean_shape),
      triangle_uv=triangles,
      landmarks68=keypoints.astype(np.int32),
      skin_mask=regions.skin_mask(mean_shape, triangles, keypoints),
      symmetry_pairs=symmetry.mesh_mirror_pairs(mean_shape, triangles),
      layout=CoeffLayout(id_basis.shape[0], exp_basis.shape[0], albedo_basis.shape[0]),
      exp_names=(),
  )


def load_bfm(path: Optional[Union[str, os.PathLike]] = None) -> MorphableModel:
  """Loads ``BFM_model_front.mat`` as a :class:`MorphableModel` named ``"bfm"``.

  Args:
    path: the ``.mat`` file or a folder to search first; default: the asset
      search path (``assets/bfm/BFM_model_front.mat``, ``$FACEGCN_ASSETS``...).

  Raises:
    AssetNotFoundError: no file found; the message says how to make one.
    ValueError: the file is not a valid BFM_model_front.mat.
  """
  found = find_bfm(path)
  try:
    data = scipy.io.loadmat(str(found))
  except Exception as err:  # scipy raises several types on corrupt files
    raise ValueError(f"{found}: cannot read as a .mat file ({type(err).__name__}: {err})") from err
  return model_from_arrays(data, where=str(found))
