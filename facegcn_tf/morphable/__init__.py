"""Morphable face models (ICT Face Model Light, BFM 2009) behind one interface.

``load_model(name)`` returns a :class:`MorphableModel`; see ``model.py`` for
the conventions (decimetres, +y up, +z to the viewer, counter-clockwise
triangles, Deep3DFace coefficient order). ``load_fitting_model(name)`` gives
the coarser model a face model's coefficients are fitted on (ICT's on
``ict_coarse``).
"""

import os
from typing import Optional, Union

from facegcn_tf.morphable.model import BFM_LAYOUT
from facegcn_tf.morphable.model import COEFF_NAMES
from facegcn_tf.morphable.model import CoeffLayout
from facegcn_tf.morphable.model import MorphableModel

MODEL_NAMES = ("ict", "ict_coarse", "bfm")
# Face model -> the coarser model with the same coefficients that the fitter works on.
_FITTED_ON = {"ict": "ict_coarse"}

__all__ = [
    "BFM_LAYOUT", "COEFF_NAMES", "CoeffLayout", "MODEL_NAMES", "MorphableModel",
    "fitting_model_name", "load_fitting_model", "load_model",
]


def load_model(name: str, path: Optional[Union[str, os.PathLike]] = None) -> MorphableModel:
  """Loads a model by name.

  Args:
    name: ``"ict"`` (ICT, subdivided, ~37k vertices, the default texture
      mesh), ``"ict_coarse"`` (ICT, 9,409 vertices) or ``"bfm"`` (BFM 2009
      front model, user-supplied).
    path: model file or folder; default: the asset search path.

  Raises:
    ValueError: unknown name, or an invalid model file.
    AssetNotFoundError: the model file is missing (the message says how to get it).
  """
  if name in ("ict", "ict_coarse"):
    from facegcn_tf.morphable import ict  # pylint: disable=g-import-not-at-top
    return ict.load_ict(path, subdivide=(name == "ict"))
  if name == "bfm":
    from facegcn_tf.morphable import bfm  # pylint: disable=g-import-not-at-top
    return bfm.load_bfm(path)
  raise ValueError(f"unknown morphable model '{name}'; choose one of {', '.join(MODEL_NAMES)}")


def fitting_model_name(name: str) -> Optional[str]:
  """The model the coefficients of face model ``name`` are fitted on, or None for ``name`` itself.

  ICT (~37k vertices, the subdivided texture mesh) is fitted on ``"ict_coarse"``
  (its 9,409-vertex base mesh, same coefficients): a fit at a quarter of the
  cost, and the coefficients carry over unchanged.

  Raises:
    ValueError: unknown name.
  """
  if name not in MODEL_NAMES:
    raise ValueError(f"unknown morphable model '{name}'; choose one of {', '.join(MODEL_NAMES)}")
  return _FITTED_ON.get(name)


def load_fitting_model(name: str,
                       path: Optional[Union[str, os.PathLike]] = None) -> Optional[MorphableModel]:
  """Loads :func:`fitting_model_name`'s model from ``path`` (as :func:`load_model`), or None."""
  fitted_on = fitting_model_name(name)
  return None if fitted_on is None else load_model(fitted_on, path)
