"""Trains the occluder network the coarse fit uses, on synthetic occluded faces.

  python scripts/train_occluders.py --flagfile=configs/occluders.cfg \
      [--output=assets/occluders/occluder_net.npz]

Draws `--samples` random faces of the face model over non-face pictures, with synthetic
sunglasses, frames, hands, surgical masks and hair strands (`training.occluder_data`), and
trains the U-Net of `networks.occluder_net` on them (`training.occluder_trainer`). No real
face is used. The weights the project ships (`facegcn_tf/assets/trained/occluder_net.npz`)
were made with the defaults of configs/occluders.cfg, about 25 minutes on two CPU cores;
a file at `--output` on the asset search path (default ``assets/occluders/``) is used
instead of them.
"""

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

_OUTPUT = flags.DEFINE_string("output", "assets/occluders/occluder_net.npz",
                              "Where the weights go (.npz).")
_FACE_MODEL = flags.DEFINE_enum("face_model", "ict", ["ict", "ict_coarse", "bfm"],
                                "Face model the synthetic faces come from.")
_MODEL_PATH = flags.DEFINE_string("model_path", None, "Model file (default: asset search path).")
_SAMPLES = flags.DEFINE_integer("samples", 6000, "Synthetic pairs.", lower_bound=1)
_STEPS = flags.DEFINE_integer("steps", 3000, "Training steps.", lower_bound=1)
_BATCH = flags.DEFINE_integer("batch_size", 32, "Pairs per step.", lower_bound=1)
_RATE = flags.DEFINE_float("learning_rate", 1e-3, "Adam's learning rate.", lower_bound=0.0)
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the pairs and of the training.")


def main(argv):
  del argv
  from facegcn_tf.morphable import load_model
  from facegcn_tf.render.renderer import FaceRenderer
  from facegcn_tf.networks.occluder_net import OccluderNet
  from facegcn_tf.training import occluder_data, occluder_trainer

  start = time.time()
  renderer = FaceRenderer(load_model(_FACE_MODEL.value, _MODEL_PATH.value))
  data_config = occluder_data.OccluderDataConfig(samples=_SAMPLES.value, seed=_SEED.value)
  pairs = occluder_data.occluder_pairs(renderer, data_config)
  print(f"drew {len(pairs.images)} synthetic pairs in {time.time() - start:.0f} s", flush=True)
  config = occluder_trainer.OccluderTrainConfig(
      steps=_STEPS.value, batch_size=_BATCH.value, learning_rate=_RATE.value, seed=_SEED.value)
  net = OccluderNet(work_size=data_config.size)
  losses = occluder_trainer.train_occluder_net(
      pairs, config, net, log=lambda i, loss: print(f"step {i}: loss {loss:.4f}", flush=True))
  path = occluder_trainer.save_occluder_net(net, _OUTPUT.value)
  print(f"final loss {sum(losses[-100:]) / len(losses[-100:]):.4f}; wrote {path} "
        f"({time.time() - start:.0f} s)")


if __name__ == "__main__":
  app.run(main)
