"""What ``prepare_data.py`` recorded about a TFRecord set, checked against the run's face model.

``prepare_data.py`` writes, next to each shard, a JSON manifest whose ``config`` names the
face model (``face_model``), its 5-point alignment template (``template5``, [5, 3]) and the
alignment fit (``align_method``). Crops aligned to one model's template do not fit another's
(the projected mesh lands off the face), so the coarse stage (``fit_data.py``) and the GCN
trainer call :func:`check_preparation` first and stop with one line on a mismatch. Shards
without a manifest, or with a config that records none of this (older sets, synthetic
records), pass unchecked.
"""

import dataclasses
import json
import os
from typing import Optional

import numpy as np
import tensorflow as tf

from facegcn_tf import storage
from facegcn_tf.errors import FaceGCNError

TEMPLATE_TOLERANCE = 1e-4     # the manifest stores the template rounded to 6 decimals
DEFAULT_ALIGN_METHOD = "scale_translation"


class PreparationMismatchError(FaceGCNError, ValueError):
  """The records were prepared for another face model / alignment than this run uses."""


@dataclasses.dataclass(frozen=True)
class Preparation:
  """What the manifests say (None where they say nothing).

  Attributes:
    face_model: the face model named at preparation.
    template5: [5, 3] the alignment template.
    align_method: "scale_translation" or "pos".
    shards_checked: how many shards had a manifest with a config.
  """
  face_model: Optional[str]
  template5: Optional[np.ndarray]
  align_method: Optional[str]
  shards_checked: int

  @property
  def fit_method(self) -> str:
    """The alignment fit of the crops (the identity encoder's crop window depends on it)."""
    return self.align_method or DEFAULT_ALIGN_METHOD


def _manifest_config(shard: str) -> Optional[dict]:
  path = os.path.splitext(shard)[0] + ".json"
  try:
    manifest = json.loads(storage.read_text(path))
  except (OSError, ValueError):
    return None
  config = manifest.get("config") if isinstance(manifest, dict) else None
  return config if isinstance(config, dict) and config else None


def read_preparation(pattern: str) -> Preparation:
  """The preparation settings of the shards matching `pattern`.

  Raises:
    FileNotFoundError: nothing matches.
    PreparationMismatchError: the shards were prepared with different settings.
  """
  files = sorted(tf.io.gfile.glob(pattern))
  if not files:
    raise FileNotFoundError(f"no TFRecord files match '{pattern}'")
  seen = {}
  for shard in files:
    config = _manifest_config(shard)
    if config is None:
      continue
    key = (config.get("face_model"), json.dumps(config.get("template5")),
           config.get("align_method"))
    seen.setdefault(key, shard)
  if len(seen) > 1:
    (a, sa), (b, sb) = list(seen.items())[:2]
    raise PreparationMismatchError(
        f"the shards of '{pattern}' were prepared differently ('{os.path.basename(sa)}': face "
        f"model {a[0]}, {a[2]}; '{os.path.basename(sb)}': face model {b[0]}, {b[2]}); "
        "prepare them again with one prepare_data.py command")
  if not seen:
    return Preparation(None, None, None, 0)
  (face_model, template, align_method), _ = next(iter(seen.items()))
  template5 = None if template in (None, "null") else np.asarray(json.loads(template), np.float64)
  return Preparation(face_model, template5, align_method,
                     sum(_manifest_config(f) is not None for f in files))


def check_preparation(pattern: str, model, align_method: Optional[str] = None) -> Preparation:
  """Raises `PreparationMismatchError` (one line) when the shards do not fit `model`.

  Args:
    pattern: the shards' glob.
    model: the run's `MorphableModel` (its ``name`` and ``template5``).
    align_method: the alignment fit the run expects, if it expects one.

  Returns:
    The `Preparation` (e.g. its ``fit_method`` for the identity encoder).
  """
  prep = read_preparation(pattern)
  hint = f"run prepare_data.py --face_model={model.name} again for this data"
  if prep.template5 is not None:
    template = np.asarray(model.template5, np.float64)
    if prep.template5.shape != template.shape or not np.allclose(
        prep.template5, template, atol=TEMPLATE_TOLERANCE):
      named = f"face model '{prep.face_model}'" if prep.face_model else "another face model"
      raise PreparationMismatchError(
          f"the records of '{pattern}' were aligned to the template of {named}, not to "
          f"'{model.name}''s; {hint}")
  if align_method and prep.align_method and prep.align_method != align_method:
    raise PreparationMismatchError(
        f"the records of '{pattern}' were aligned with --align_method={prep.align_method}, this "
        f"run expects {align_method}")
  return prep


@dataclasses.dataclass(frozen=True)
class PrepareSettings:
  """What ``prepare_data.py`` prepares with (its flags); picklable, so a Beam worker builds
  the same preprocessor from it (`build`) as the single-process run.

  Attributes:
    face_model: the face model whose mean-shape landmarks give the alignment template.
    model_path: its file (default: asset search path).
    min_confidence: MTCNN threshold.
    identity: "dlib" (128-d identity features stored with each face) or "none".
    forehead: mask region raised at the forehead (fraction of its height above the eyes).
    align_method: "scale_translation" or "pos".
  """
  face_model: str = "ict_coarse"
  model_path: Optional[str] = None
  min_confidence: float = 0.9
  identity: str = "dlib"
  forehead: float = 0.0
  align_method: str = DEFAULT_ALIGN_METHOD

  def manifest_config(self, template5: Optional[np.ndarray] = None) -> dict:
    """What each shard's manifest records (and a re-run compares); loads only the face model
    when `template5` is not given."""
    # pylint: disable=import-outside-toplevel
    from facegcn_tf.data import alignment
    from facegcn_tf.morphable import load_model
    # pylint: enable=import-outside-toplevel
    if template5 is None:
      template5 = load_model(self.face_model, self.model_path).template5
    return {
        "template5": np.round(template5, 6).tolist(),
        "min_confidence": self.min_confidence,
        "identity": self.identity,
        "forehead": self.forehead,
        "align_method": self.align_method,
        "size": alignment.ALIGNED_SIZE,
    }

  def build(self):
    """(preprocessor, feature_fn or None, manifest config): the models, loaded once."""
    # pylint: disable=import-outside-toplevel
    from facegcn_tf.assets import loaders
    from facegcn_tf.data.preprocess import FacePreprocessor
    from facegcn_tf.morphable import load_model
    # pylint: enable=import-outside-toplevel
    template5 = load_model(self.face_model, self.model_path).template5
    feature_fn = None
    if self.identity == "dlib":
      encoder = loaders.load_identity_encoder("dlib", template5=template5,
                                              fit_method=self.align_method)
      feature_fn = lambda batch: np.asarray(encoder(batch))  # noqa: E731
    preprocessor = FacePreprocessor(template5, min_confidence=self.min_confidence,
                                    forehead=self.forehead, align_method=self.align_method)
    return preprocessor, feature_fn, self.manifest_config(template5)


__all__ = ["Preparation", "PreparationMismatchError", "PrepareSettings", "check_preparation",
           "read_preparation"]
