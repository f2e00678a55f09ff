"""Photos -> aligned-face TFRecord shards (resumable).

  python scripts/prepare_data.py --input_dir PHOTOS --output_dir DATA \
      [--shard_size=256] [--min_confidence=0.9] [--identity=dlib|none] [--max_images=N]

For each photo (sorted, sub-folders included): load, MTCNN detection (most
confident face), MediaPipe 468 landmarks, Deep3DFace alignment to 224x224 on
the face model's 5-point template, face/skin/region masks, and optionally the
identity features of the aligned crop. Writes ``faces-NNNNN.tfrecord`` plus a
JSON manifest per shard; a re-run skips finished shards. Photos that fail
(unreadable, no face) are listed at the end with a one-line reason.
"""

import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

_INPUT_DIR = flags.DEFINE_string("input_dir", None, "Folder of photos.", required=True)
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Folder for the shards.", required=True)
_SHARD_SIZE = flags.DEFINE_integer("shard_size", 256, "Photos per shard.", lower_bound=1)
_MIN_CONFIDENCE = flags.DEFINE_float("min_confidence", 0.9, "MTCNN score threshold.",
                                     lower_bound=0.0, upper_bound=1.0)
_IDENTITY = flags.DEFINE_enum("identity", "dlib", ["dlib", "none"],
                              "Identity features stored with each face (dlib: 128-d "
                              "descriptor of facegcn_tf.networks.identity; none: no features).")
_MAX_IMAGES = flags.DEFINE_integer("max_images", None, "Use only the first N photos (sorted).",
                                   lower_bound=0)
_SKIP_LIST = flags.DEFINE_string("skip_list", None,
                                 "Text file of photo paths (relative to --input_dir) to leave out.")
_FACE_MODEL = flags.DEFINE_enum("face_model", "ict_coarse", ["ict", "ict_coarse", "bfm"],
                                "Face model whose mean-shape landmarks give the alignment "
                                "template (ict and ict_coarse give the same template).")
_MODEL_PATH = flags.DEFINE_string("model_path", None,
                                  "Face model file (default: asset search path).")
_FOREHEAD = flags.DEFINE_float("forehead", 0.0, "Raise the mask region at the forehead by this "
                               "fraction of its height above the eyes.", lower_bound=0.0)
_ALIGN_METHOD = flags.DEFINE_enum(
    "align_method", "scale_translation", ["scale_translation", "pos"],
    "Alignment fit: least-squares scale + translation of the template's x, y (default), or "
    "Deep3DFace's POS affine fit.")
_RECURSIVE = flags.DEFINE_bool("recursive", True, "Also read photos in sub-folders.")


def _read_skip_list(path):
  if not path:
    return []
  with open(path, "r", encoding="utf-8") as f:
    return [line.strip() for line in f if line.strip() and not line.startswith("#")]


def _identity_feature_fn(template5, fit_method):
  """The dlib identity encoder as a numpy callable, imported only when asked for."""
  try:
    from facegcn_tf.assets import loaders  # pylint: disable=import-outside-toplevel
  except ImportError as err:
    raise app.UsageError(f"--identity=dlib needs facegcn_tf.assets.loaders ({err}); "
                         "use --identity=none") from err
  import numpy as np  # pylint: disable=import-outside-toplevel
  encoder = loaders.load_identity_encoder("dlib", template5=template5, fit_method=fit_method)
  return lambda batch: np.asarray(encoder(batch))


def main(argv):
  del argv
  if not pathlib.Path(_INPUT_DIR.value).is_dir():  # Before the slow imports.
    raise app.UsageError(f"--input_dir '{_INPUT_DIR.value}' does not exist or is not a directory")
  import numpy as np  # pylint: disable=import-outside-toplevel
  from tqdm import tqdm  # pylint: disable=import-outside-toplevel

  from facegcn_tf.data import alignment, dataset  # pylint: disable=import-outside-toplevel
  from facegcn_tf.data.preprocess import FacePreprocessor  # pylint: disable=import-outside-toplevel
  from facegcn_tf.morphable import load_model  # pylint: disable=import-outside-toplevel

  try:  # Fail fast, before any model is loaded.
    names = dataset.list_images(_INPUT_DIR.value, recursive=_RECURSIVE.value)
    skip = _read_skip_list(_SKIP_LIST.value)
  except OSError as err:
    raise app.UsageError(str(err)) from None
  model = load_model(_FACE_MODEL.value, _MODEL_PATH.value)
  template5 = model.template5
  feature_fn = (_identity_feature_fn(template5, _ALIGN_METHOD.value)
                if _IDENTITY.value == "dlib" else None)
  preprocessor = FacePreprocessor(template5, min_confidence=_MIN_CONFIDENCE.value,
                                  forehead=_FOREHEAD.value, align_method=_ALIGN_METHOD.value)
  total = len(names) if _MAX_IMAGES.value is None else min(len(names), _MAX_IMAGES.value)
  config = {
      "template5": np.round(template5, 6).tolist(),
      "min_confidence": _MIN_CONFIDENCE.value,
      "identity": _IDENTITY.value,
      "forehead": _FOREHEAD.value,
      "align_method": _ALIGN_METHOD.value,
      "size": alignment.ALIGNED_SIZE,
  }
  with tqdm(total=total, unit="img", desc="prepare_data") as bar:
    summary = dataset.prepare_directory(
        _INPUT_DIR.value, _OUTPUT_DIR.value, preprocessor, shard_size=_SHARD_SIZE.value,
        feature_fn=feature_fn, max_images=_MAX_IMAGES.value,
        skip=skip, config=config, progress=bar.update,
        recursive=_RECURSIVE.value)

  written = len(summary.shards) - summary.num_resumed_shards
  print(f"{summary.num_done} faces in {len(summary.shards)} shards under {_OUTPUT_DIR.value} "
        f"({written} written, {summary.num_resumed_shards} already complete and skipped); "
        f"{len(summary.failures)} failed, {summary.num_skipped} skipped by the skip list.")
  for path in summary.removed_stale:
    print(f"removed stale shard file {path}")
  if summary.failures:
    print("Failures:")
    for failure in summary.failures:
      print(f"  {failure.path}: {failure.reason}")


if __name__ == "__main__":
  app.run(main)
