"""Photos -> aligned-face TFRecord shards (resumable).

  python scripts/prepare_data.py --input_dir PHOTOS --output_dir DATA \
      [--shard_size=256] [--min_confidence=0.9] [--identity=dlib|none] [--max_images=N]

For each photo (sorted, sub-folders included): load, MTCNN detection (most
confident face), MediaPipe 468 landmarks, Deep3DFace alignment to 224x224 on
the face model's 5-point template, face/skin/region masks, and optionally the
identity features of the aligned crop. Writes ``faces-NNNNN.tfrecord`` plus a
JSON manifest per shard; a re-run skips finished shards. Photos that fail
(unreadable, no face) are listed at the end with a one-line reason.

  python scripts/prepare_data.py --input_dir PHOTOS --output_dir DATA --runner=DirectRunner
  python scripts/prepare_data.py ... --runner=FlinkRunner \
      --beam_options="--flink_master=HOST:8081 --environment_type=EXTERNAL ..."

With ``--runner`` other than ``local`` the same shards are made by an Apache Beam pipeline
(facegcn_tf.scale.prepare); failures also go to ``DATA/failures.txt``. Both folders may be
remote (``gs://bucket/...``; README: "On a cluster").
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from facegcn_tf import scale  # noqa: E402  (its flags' help; imports no Beam)

_INPUT_DIR = flags.DEFINE_string("input_dir", None, "Folder of photos (or gs://...).",
                                 required=True)
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Folder for the shards (or gs://...).",
                                  required=True)
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
_RUNNER = flags.DEFINE_string("runner", scale.LOCAL_RUNNER, scale.RUNNER_HELP)
_BEAM_OPTIONS = flags.DEFINE_string("beam_options", "", scale.BEAM_OPTIONS_HELP)


def _read_skip_list(path):
  if not path:
    return []
  with open(path, "r", encoding="utf-8") as f:
    return [line.strip() for line in f if line.strip() and not line.startswith("#")]


def _run_beam(settings, skip):
  """The same shards by an Apache Beam pipeline on --runner."""
  # pylint: disable=import-outside-toplevel
  from facegcn_tf.scale import options as beam_options
  from facegcn_tf.scale import prepare as beam_prepare
  # pylint: enable=import-outside-toplevel
  try:
    options = beam_options.pipeline_options(_RUNNER.value, _BEAM_OPTIONS.value)
  except ValueError as err:
    raise app.UsageError(str(err)) from None
  summary = beam_prepare.prepare(
      _INPUT_DIR.value, _OUTPUT_DIR.value, settings, options, shard_size=_SHARD_SIZE.value,
      max_images=_MAX_IMAGES.value, skip=skip, recursive=_RECURSIVE.value)
  print(f"{summary.done} faces prepared in {summary.shards - summary.resumed} shards under "
        f"{_OUTPUT_DIR.value} ({summary.resumed} already complete and skipped) on "
        f"{_RUNNER.value}; {summary.failed} failed, {summary.skipped} skipped by the skip list.")
  for path in summary.removed_stale:
    print(f"removed stale shard file {path}")
  failures = beam_options.read_failures(_OUTPUT_DIR.value)
  if failures:
    print(f"Failures (also in {_OUTPUT_DIR.value}/{beam_options.FAILURES_FILE}):")
    for path, reason in sorted(failures.items()):
      print(f"  {path}: {reason}")


def main(argv):
  del argv
  from facegcn_tf import storage  # pylint: disable=import-outside-toplevel
  if not storage.is_dir(_INPUT_DIR.value):
    raise app.UsageError(f"--input_dir '{_INPUT_DIR.value}' does not exist or is not a directory")
  from tqdm import tqdm  # pylint: disable=import-outside-toplevel

  from facegcn_tf.data import dataset  # pylint: disable=import-outside-toplevel
  from facegcn_tf.training.preparation import PrepareSettings  # pylint: disable=import-outside-toplevel

  try:  # Fail fast, before any model is loaded.
    names = dataset.list_images(_INPUT_DIR.value, recursive=_RECURSIVE.value)
    skip = _read_skip_list(_SKIP_LIST.value)
  except OSError as err:
    raise app.UsageError(str(err)) from None
  settings = PrepareSettings(
      face_model=_FACE_MODEL.value, model_path=_MODEL_PATH.value,
      min_confidence=_MIN_CONFIDENCE.value, identity=_IDENTITY.value,
      forehead=_FOREHEAD.value, align_method=_ALIGN_METHOD.value)
  if _RUNNER.value != scale.LOCAL_RUNNER:
    _run_beam(settings, skip)
    return
  preprocessor, feature_fn, config = settings.build()
  total = len(names) if _MAX_IMAGES.value is None else min(len(names), _MAX_IMAGES.value)
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
