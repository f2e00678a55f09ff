"""Fits the coarse 3DMM to every record of a TFRecord set once (resumable), for GCN training.

  python scripts/fit_data.py --data='DATA/faces-*.tfrecord' --face_model=ict \
      [--cache_dir=DATA/coarse_ict] [--batch_size=8] [--identity=dlib|none] [--fit_steps=1.0]
  python scripts/fit_data.py --data='DATA/faces-*.tfrecord' --face_model=bfm \
      --rnet_checkpoint=assets/rnet/FaceReconModel.pb        # the paper's frozen R-Net

With ``--rnet_checkpoint`` (a trained R-Net's ``rnet.weights.h5`` from ``train.py
--stage=rnet``, or Deep3DFace's ``FaceReconModel.pb`` for BFM) the coefficients are the R-Net's
regression instead of a fit. The records' preparation manifest must name this face model's
alignment template (``prepare_data.py --face_model``); a mismatch stops with one line.

With ``--rnet_checkpoint --rnet_init`` the fit starts from the R-Net's regression instead of
its own pose and appearance starts. With ``--runner`` other than ``local`` (DirectRunner,
FlinkRunner, SparkRunner, DataflowRunner; ``--beam_options`` passes further Beam flags) the
same cache is made by an Apache Beam pipeline (facegcn_tf.scale.fit); records that fail are
listed in ``<cache_dir>/failures.txt``.

Writes one ``<shard>.npz`` per shard (source paths, coefficients, final losses)
into ``--cache_dir`` (default ``<data folder>/coarse_<face model>``), the
folder ``scripts/train.py --stage=gcn`` reads. A re-run skips records that are
already fitted, so an interrupted run continues where it stopped.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from facegcn_tf import scale  # noqa: E402  (its flags' help; imports no Beam)

_DATA = flags.DEFINE_string("data", None, "Glob of the prepare_data TFRecord shards (local or "
                            "gs://...).", required=True)
_FACE_MODEL = flags.DEFINE_enum("face_model", "ict", ["ict", "ict_coarse", "bfm"],
                                "Face model to fit (the GCN stage's texture mesh).")
_MODEL_PATH = flags.DEFINE_string("model_path", None, "Face model file (default: asset search path).")
_CACHE_DIR = flags.DEFINE_string("cache_dir", None,
                                 "Output folder (default: <data folder>/coarse_<face model>).")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 8, "Records fitted together.", lower_bound=1)
_IDENTITY = flags.DEFINE_enum("identity", "dlib", ["dlib", "none"],
                              "Identity loss network of the fit (none: no identity term).")
_MASK = flags.DEFINE_enum("mask", "skin_mask", ["skin_mask", "face_mask", "region_mask"],
                          "Record mask weighing the photometric loss.")
_FIT_STEPS = flags.DEFINE_float("fit_steps", 1.0, "Scale of the fitter's iteration counts.",
                                lower_bound=0.01)
_RNET_CHECKPOINT = flags.DEFINE_string(
    "rnet_checkpoint", None, "R-Net coarse stage: rnet.weights.h5 (train.py --stage=rnet) or "
    "Deep3DFace's FaceReconModel.pb (--face_model=bfm); coefficients by regression, no fitting.")
_RNET_INIT = flags.DEFINE_bool(
    "rnet_init", False, "With --rnet_checkpoint: fit, starting from the R-Net's regression "
    "(instead of storing the regression).")
_PROGRESS = flags.DEFINE_bool("progress", True, "Show a progress bar.")
_RUNNER = flags.DEFINE_string("runner", scale.LOCAL_RUNNER, scale.RUNNER_HELP)
_BEAM_OPTIONS = flags.DEFINE_string("beam_options", "", scale.BEAM_OPTIONS_HELP)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  # pylint: disable=import-outside-toplevel
  import tensorflow as tf
  from tqdm import tqdm

  from facegcn_tf.errors import FaceGCNError
  from facegcn_tf.morphable import load_model
  from facegcn_tf.training import coarse_fits
  from facegcn_tf.training import preparation
  # pylint: enable=import-outside-toplevel

  if not tf.io.gfile.glob(_DATA.value):
    sys.exit(f"fit_data.py: error: no TFRecord files match --data='{_DATA.value}' "
             "(make them with scripts/prepare_data.py)")
  if _RNET_INIT.value and not _RNET_CHECKPOINT.value:
    sys.exit("fit_data.py: error: --rnet_init needs --rnet_checkpoint")
  try:
    model = load_model(_FACE_MODEL.value, _MODEL_PATH.value)
    prep = preparation.check_preparation(_DATA.value, model)
    settings = coarse_fits.CoarseSettings(
        face_model=_FACE_MODEL.value, model_path=_MODEL_PATH.value, identity=_IDENTITY.value,
        fit_method=prep.fit_method, fit_steps=_FIT_STEPS.value,
        rnet_checkpoint=_RNET_CHECKPOINT.value, rnet_init=_RNET_INIT.value)
    if _RUNNER.value != scale.LOCAL_RUNNER:
      _run_beam(settings, model)
      return
    total = len(coarse_fits.record_paths(_DATA.value))
    bar = tqdm(total=total, desc="fit", unit="face", disable=not _PROGRESS.value)
    coarse_fn, model = settings.build(model)
    summary = coarse_fits.cache_records(
        _DATA.value, coarse_fn, model.name, model.layout, cache_dir=_CACHE_DIR.value,
        batch_size=_BATCH_SIZE.value, mask_key=_MASK.value, progress=bar.update)
    bar.close()
  except (FaceGCNError, ValueError, FileNotFoundError) as err:
    sys.exit(f"fit_data.py: error: {str(err).splitlines()[0]}")
  print(f"{_how()} {summary.fitted} records, {summary.already_done} already done, "
        f"{summary.shards} shards, {summary.seconds:.1f} s -> {summary.cache_dir}")


def _how() -> str:
  if not _RNET_CHECKPOINT.value:
    return "fitted"
  return "fitted (from the R-Net's regression)" if _RNET_INIT.value else "regressed"


def _run_beam(settings, model):
  """The same cache by an Apache Beam pipeline on --runner."""
  # pylint: disable=import-outside-toplevel
  from facegcn_tf.scale import fit as beam_fit
  from facegcn_tf.scale import options as beam_options
  # pylint: enable=import-outside-toplevel
  options = beam_options.pipeline_options(_RUNNER.value, _BEAM_OPTIONS.value)
  summary = beam_fit.fit(_DATA.value, settings, model, options, cache_dir=_CACHE_DIR.value,
                         batch_size=_BATCH_SIZE.value, mask_key=_MASK.value)
  print(f"{_how()} {summary.fitted} records on {_RUNNER.value}, {summary.already_done} already "
        f"done, {summary.failed} failed, {summary.shards} shards -> {summary.cache_dir}")
  failures = beam_options.read_failures(summary.cache_dir)
  for path, reason in sorted(failures.items()):
    print(f"  FAILED {path}: {reason}")


if __name__ == "__main__":
  app.run(main)
