"""Morphable face models (ICT Face Model Light, BFM 2009) behind one interface.

``load_model(name)`` returns a :class:`MorphableModel`; see ``model.py`` for
the conventions (decimetres, +y up, +z to the viewer, counter-clockwise
triangles, Deep3DFace coefficient order).
"""

import os
from typing import Optional, Union

from facegcn_tf.morphable.model import BFM_LAYOUT
from facegcn_tf.morphable.model import COEFF_NAMES
from facegcn_tf.morphable.model import CoeffLayout
from facegcn_tf.morphable.model import MorphableModel

MODEL_NAMES = ("ict", "ict_coarse", "bfm")

__all__ = [
    "BFM_LAYOUT", "COEFF_NAMES", "CoeffLayout", "MODEL_NAMES", "MorphableModel", "load_model",
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
