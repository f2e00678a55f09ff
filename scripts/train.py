"""Trains one stage of the pipeline (resuming from its last checkpoint if there is one).

  python scripts/train.py --stage=rnet --flagfile=configs/rnet.cfg \
      --data='DATA/faces-*.tfrecord' --output_dir=runs/rnet [--steps=N | --epochs=E] \
      [--set=weights.photo=1.92 --set=identity=none ...]

Stages live in ``STAGES`` (name -> module). A stage module provides
``make_config(runtime: RuntimeConfig, **settings)`` (settings = the common
flags below that were given, by config field name) and ``train(config, strategy=None)``
returning a ``runtime.RunResult``; ``--set path=value`` then overrides any
field of the stage's (nested) config dataclass, e.g. ``--set
weights.landmark=2e-3`` or ``--set distill_targets=fits.npz``. Adding a stage
is one line in ``STAGES``.

Re-running the same command continues from the newest checkpoint in
``--checkpoint_dir`` (default ``<output_dir>/checkpoints``): model, optimizer,
step, epoch and the data iterator are restored; a longer ``--steps`` extends
the run. TensorBoard logs go to ``<output_dir>/tensorboard``.

Several machines: start the same command on each with ``--multi_worker`` and ``TF_CONFIG``
naming the cluster and that machine's task (README: "Several machines"); the run folder must
be one every worker mounts (a network file system).
"""

import importlib
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

# name -> module with make_config(runtime, **settings) and train(config).
STAGES = {
    "rnet": "facegcn_tf.training.rnet_trainer",
    "gcn": "facegcn_tf.training.gcn_trainer",
}

_STAGE = flags.DEFINE_string("stage", None, f"What to train: {', '.join(STAGES)}.", required=True)
_DATA = flags.DEFINE_string("data", None, "Glob of the prepare_data TFRecord shards.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Run folder (logs, exported weights).",
                                  required=True)
_CHECKPOINT_DIR = flags.DEFINE_string("checkpoint_dir", None,
                                      "Checkpoint folder (default <output_dir>/checkpoints).")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", None, "Global batch size.", lower_bound=1)
_STEPS = flags.DEFINE_integer("steps", None, "Train until this step (exclusive with --epochs).",
                              lower_bound=1)
_EPOCHS = flags.DEFINE_float("epochs", None, "Train for this many epochs (exclusive with --steps).")
_LEARNING_RATE = flags.DEFINE_float("learning_rate", None, "Initial learning rate.")
_FACE_MODEL = flags.DEFINE_enum("face_model", None, ["ict", "ict_coarse", "bfm"], "Face model.")
_FACE_MODEL_PATH = flags.DEFINE_string("face_model_path", None,
                                       "Face model file (default: asset search path).")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", None, "Training resolution (crops are 224).")
_SEED = flags.DEFINE_integer("seed", None, "Data order / augmentation seed.")
_CHECKPOINT_EVERY = flags.DEFINE_integer("checkpoint_every", 1000,
                                         "Save a checkpoint every N steps (0: only at the end).",
                                         lower_bound=0)
_MAX_TO_KEEP = flags.DEFINE_integer("max_to_keep", 3, "Checkpoints kept.", lower_bound=1)
_SUMMARY_EVERY = flags.DEFINE_integer("summary_every", 50, "TensorBoard scalars every N steps.",
                                      lower_bound=0)
_IMAGE_SUMMARY_EVERY = flags.DEFINE_integer("image_summary_every", 500,
                                            "TensorBoard image grids every N steps.", lower_bound=0)
_MIXED_PRECISION = flags.DEFINE_enum("mixed_precision", "auto", ["auto", "on", "off"],
                                     "mixed_float16 + loss scaling (auto: on with a GPU).")
_MIXED_POLICY = flags.DEFINE_enum("mixed_policy", "mixed_float16",
                                  ["mixed_float16", "mixed_bfloat16"],
                                  "Mixed-precision policy when mixed precision is on: float16 "
                                  "with loss scaling, or bfloat16 (CPUs/TPUs; no loss scaling).")
_SAVE_DATA_ITERATOR = flags.DEFINE_bool("save_data_iterator", True,
                                        "Checkpoint the input pipeline (exact data order on resume).")
_RUN_EAGERLY = flags.DEFINE_bool("run_eagerly", False,
                                 "Run the train step eagerly (debugging; short smoke runs).")
_PROGRESS = flags.DEFINE_bool("progress", True, "Show a progress bar.")
_MULTI_WORKER = flags.DEFINE_bool(
    "multi_worker", False, "One worker of a multi-machine run (tf.distribute."
    "MultiWorkerMirroredStrategy; TF_CONFIG names the cluster and this worker).")
_SET = flags.DEFINE_multi_string("set", [], "Override a stage setting: path=value "
                                 "(e.g. weights.photo=1.92, identity=none).")

# flag -> config field, passed to make_config only when given.
_COMMON = {
    "data": _DATA, "batch_size": _BATCH_SIZE, "steps": _STEPS, "epochs": _EPOCHS,
    "learning_rate": _LEARNING_RATE, "face_model": _FACE_MODEL,
    "face_model_path": _FACE_MODEL_PATH, "image_size": _IMAGE_SIZE, "seed": _SEED,
}


def _usage_error(message: str) -> None:
  """One line on stderr and exit status 2 (absl's UsageError would print the whole help)."""
  sys.stderr.write(f"train.py: usage error: {message} (see --helpshort)\n")
  sys.exit(2)


def main(argv):
  if len(argv) > 1:
    _usage_error(f"unexpected arguments: {' '.join(argv[1:])}")
  if _STAGE.value not in STAGES:
    _usage_error(f"--stage={_STAGE.value}: no such training stage; available: "
                         f"{', '.join(STAGES)}")
  if _STEPS.value is not None and _EPOCHS.value is not None:
    # A flagfile may set one and the command line the other: the command line wins.
    on_command_line = {a.split("=")[0] for a in sys.argv[1:]}
    if "--steps" in on_command_line and "--epochs" not in on_command_line:
      flags.FLAGS.epochs = None
    elif "--epochs" in on_command_line and "--steps" not in on_command_line:
      flags.FLAGS.steps = None
    else:
      _usage_error("give only one of --steps and --epochs")

  from facegcn_tf.errors import FaceGCNError  # pylint: disable=import-outside-toplevel
  from facegcn_tf.training import runtime  # pylint: disable=import-outside-toplevel

  strategy = None
  if _MULTI_WORKER.value:   # first: it configures TF's collective ops at start-up
    try:
      strategy = runtime.make_strategy(multi_worker=True)
    except ValueError as e:
      _usage_error(f"--multi_worker: {e}")
  stage = importlib.import_module(STAGES[_STAGE.value])
  mixed = {"auto": None, "on": True, "off": False}[_MIXED_PRECISION.value]
  try:
    runtime_config = runtime.RuntimeConfig(
        output_dir=_OUTPUT_DIR.value, checkpoint_dir=_CHECKPOINT_DIR.value,
        checkpoint_every=_CHECKPOINT_EVERY.value, max_to_keep=_MAX_TO_KEEP.value,
        summary_every=_SUMMARY_EVERY.value, image_summary_every=_IMAGE_SUMMARY_EVERY.value,
        mixed_precision=mixed,
        mixed_policy=_MIXED_POLICY.value,
        save_data_iterator=_SAVE_DATA_ITERATOR.value,
        progress=_PROGRESS.value, seed=_SEED.value or 0, run_eagerly=_RUN_EAGERLY.value)
    settings = {name: flag.value for name, flag in _COMMON.items() if flag.value is not None}
    config = stage.make_config(runtime_config, **settings)
    config = runtime.override_config(config, _SET.value)
  except (TypeError, ValueError) as e:
    _usage_error(str(e).splitlines()[0])

  try:
    result = stage.train(config, strategy=strategy)
  except (FaceGCNError, ValueError, FileNotFoundError) as e:
    sys.exit(f"train.py: error: {str(e).splitlines()[0]}")
  start = (f"resumed at step {result.first_step}" if result.first_step
           else "started at step 0")
  losses = ", ".join(f"{k}={v:.4g}" for k, v in sorted(result.last_scalars.items()))
  print(f"{_STAGE.value}: {start}, now at step {result.last_step} ({result.seconds:.1f} s); "
        f"last checkpoint {result.checkpoint}; {losses or 'no steps run'}")


if __name__ == "__main__":
  app.run(main)
