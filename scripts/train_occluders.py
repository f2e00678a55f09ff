"""Trains the occluder network the coarse fit uses, on synthetic occluded faces.

  python scripts/train_occluders.py --flagfile=configs/occluders.cfg \
      [--output_dir=runs/occluders] [--output=assets/occluders/occluder_net.npz]

Draws `--samples` random faces of the face model over non-face pictures, with synthetic
sunglasses, frames (with `--lens_share`, some with tinted see-through lenses), hands,
surgical masks and hair strands (`training.occluder_data`), and trains the U-Net of
`networks.occluder_net` on them (`training.occluder_trainer`). No real face is used.

The run folder `--output_dir` keeps checkpoints every `--checkpoint_every` steps and
TensorBoard logs: run the same command again after a crash or a kill and it resumes from
the last checkpoint (the pairs are drawn again from their seed), ending with the weights an
uninterrupted run gives. `--init_weights` fine-tunes a trained network instead of starting
from random weights. The weights the project ships
(`facegcn_tf/assets/trained/occluder_net.npz`) were made with configs/occluders.cfg, about
20 minutes on two CPU cores; a file at `--output` on the asset search path (default
``assets/occluders/``) is used instead of them.
"""

import dataclasses
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

_OUTPUT = flags.DEFINE_string("output", "assets/occluders/occluder_net.npz",
                              "Where the weights go (.npz).")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", "runs/occluders",
                                  "Run folder: checkpoints and TensorBoard logs.")
_CHECKPOINT_EVERY = flags.DEFINE_integer("checkpoint_every", 250,
                                         "Steps between checkpoints.", lower_bound=0)
_PROGRESS = flags.DEFINE_boolean("progress", True, "Show a progress bar.")
_FACE_MODEL = flags.DEFINE_enum("face_model", "ict", ["ict", "ict_coarse", "bfm"],
                                "Face model the synthetic faces come from.")
_MODEL_PATH = flags.DEFINE_string("model_path", None, "Model file (default: asset search path).")
_SAMPLES = flags.DEFINE_integer("samples", 6000, "Synthetic pairs.", lower_bound=1)
_STEPS = flags.DEFINE_integer("steps", 3000, "Training steps.", lower_bound=1)
_BATCH = flags.DEFINE_integer("batch_size", 32, "Pairs per step.", lower_bound=1)
_RATE = flags.DEFINE_float("learning_rate", 1e-3, "Adam's learning rate.", lower_bound=0.0)
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the pairs and of the training.")
_LENS_SHARE = flags.DEFINE_float("lens_share", 0.0,
                                 "Share of frames drawn with tinted see-through lenses.",
                                 lower_bound=0.0, upper_bound=1.0)
_INIT = flags.DEFINE_string("init_weights", None,
                            "Fine-tune from this occluder_net.npz instead of random weights "
                            "('default': the weights the fitter uses, from the asset search "
                            "path).")


def main(argv):
  del argv
  from facegcn_tf.assets import loaders
  from facegcn_tf.errors import FaceGCNError
  from facegcn_tf.morphable import load_model
  from facegcn_tf.render.renderer import FaceRenderer
  from facegcn_tf.training import occluder_data, occluder_trainer
  from facegcn_tf.training import runtime as rt

  start = time.time()
  renderer = FaceRenderer(load_model(_FACE_MODEL.value, _MODEL_PATH.value))
  data_config = occluder_data.OccluderDataConfig(samples=_SAMPLES.value, seed=_SEED.value,
                                                 lens_share=_LENS_SHARE.value)
  config = occluder_trainer.OccluderTrainConfig(
      steps=_STEPS.value, batch_size=_BATCH.value, learning_rate=_RATE.value, seed=_SEED.value)
  runtime_config = rt.RuntimeConfig(
      output_dir=_OUTPUT_DIR.value, checkpoint_every=_CHECKPOINT_EVERY.value,
      image_summary_every=0, save_data_iterator=False, progress=_PROGRESS.value,
      mixed_precision=False, seed=_SEED.value)
  pairs = occluder_data.occluder_pairs(renderer, data_config)
  print(f"drew {len(pairs.images)} synthetic pairs in {time.time() - start:.0f} s", flush=True)
  data_settings = dict(dataclasses.asdict(data_config), face_model=_FACE_MODEL.value)
  try:
    initial = None
    if _INIT.value:
      initial = loaders.load_occluder_net(None if _INIT.value == "default" else _INIT.value)
      data_settings["init_weights"] = _INIT.value
    run = occluder_trainer.train_occluder_net(pairs, config, runtime_config,
                                              data_settings=data_settings, initial=initial)
  except (FaceGCNError, ValueError) as e:
    sys.exit(f"train_occluders.py: error: {str(e).splitlines()[0]}")
  path = occluder_trainer.save_occluder_net(run.net, _OUTPUT.value)
  result = run.result
  begun = f"resumed at step {result.first_step}" if result.first_step else "started at step 0"
  loss = result.last_scalars.get("loss")
  print(f"{begun}, now at step {result.last_step}; last loss "
        f"{'n/a' if loss is None else f'{loss:.4f}'}; wrote {path} ({time.time() - start:.0f} s)")


if __name__ == "__main__":
  app.run(main)
