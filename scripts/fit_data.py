"""Fits the coarse 3DMM to every record of a TFRecord set once (resumable), for GCN training.

  python scripts/fit_data.py --data='DATA/faces-*.tfrecord' --face_model=ict \
      [--cache_dir=DATA/coarse_ict] [--batch_size=8] [--identity=dlib|none] [--fit_steps=1.0]
  python scripts/fit_data.py --data='DATA/faces-*.tfrecord' --face_model=bfm \
      --rnet_checkpoint=assets/rnet/FaceReconModel.pb        # the paper's frozen R-Net

With ``--rnet_checkpoint`` (a trained R-Net's ``rnet.weights.h5`` from ``train.py
--stage=rnet``, or Deep3DFace's ``FaceReconModel.pb`` for BFM) the coefficients are the R-Net's
regression instead of a fit. The records' preparation manifest must name this face model's
alignment template (``prepare_data.py --face_model``); a mismatch stops with one line.

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

_DATA = flags.DEFINE_string("data", None, "Glob of the prepare_data TFRecord shards.",
                            required=True)
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
_PROGRESS = flags.DEFINE_bool("progress", True, "Show a progress bar.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  # pylint: disable=import-outside-toplevel
  import tensorflow as tf
  from tqdm import tqdm

  from facegcn_tf.errors import FaceGCNError
  from facegcn_tf.fitting.fitter import FitConfig
  from facegcn_tf.morphable import load_fitting_model, load_model
  from facegcn_tf.render.renderer import FaceRenderer
  from facegcn_tf.assets import loaders
  from facegcn_tf.training import coarse_fits
  from facegcn_tf.training import preparation
  # pylint: enable=import-outside-toplevel

  if not tf.io.gfile.glob(_DATA.value):
    sys.exit(f"fit_data.py: error: no TFRecord files match --data='{_DATA.value}' "
             "(make them with scripts/prepare_data.py)")
  try:
    model = load_model(_FACE_MODEL.value, _MODEL_PATH.value)
    prep = preparation.check_preparation(_DATA.value, model)
    total = len(coarse_fits.record_paths(_DATA.value))
    bar = tqdm(total=total, desc="fit", unit="face", disable=not _PROGRESS.value)
    if _RNET_CHECKPOINT.value:
      predictor = loaders.load_rnet_predictor(_RNET_CHECKPOINT.value, model.layout)
      summary = coarse_fits.regress_records(
          _DATA.value, predictor, model, cache_dir=_CACHE_DIR.value,
          batch_size=_BATCH_SIZE.value, progress=bar.update)
    else:
      fit_model = load_fitting_model(_FACE_MODEL.value, _MODEL_PATH.value)
      encoder = None
      if _IDENTITY.value == "dlib":
        encoder = loaders.load_identity_encoder("dlib", template5=model.template5,
                                                fit_method=prep.fit_method)
      summary = coarse_fits.fit_records(
          _DATA.value, FaceRenderer(model), cache_dir=_CACHE_DIR.value,
          batch_size=_BATCH_SIZE.value, fit_config=FitConfig().scaled(_FIT_STEPS.value),
          fit_renderer=FaceRenderer(fit_model) if fit_model is not None else None,
          identity_encoder=encoder, mask_key=_MASK.value, progress=bar.update)
    bar.close()
  except (FaceGCNError, ValueError, FileNotFoundError) as err:
    sys.exit(f"fit_data.py: error: {str(err).splitlines()[0]}")
  how = "regressed" if _RNET_CHECKPOINT.value else "fitted"
  print(f"{how} {summary.fitted} records, {summary.already_done} already done, "
        f"{summary.shards} shards, {summary.seconds:.1f} s -> {summary.cache_dir}")


if __name__ == "__main__":
  app.run(main)
