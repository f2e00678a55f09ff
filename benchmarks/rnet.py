"""R-Net (ResNet-50 + coefficient heads) forward speed and one full training step.

Forward: the Keras R-Net at 224 px under tf.function, inference mode. Train step:
R-Net + render (subdivided ICT face, 224 px) + Deep3DFace losses incl. the dlib
identity term + Adam update, batch 4, synthetic rendered crops.
"""

import tempfile
import time

import tensorflow as tf

from benchmarks._timing import time_ms
from facegcn_tf.morphable.ict import load_ict
from facegcn_tf.networks.rnet import build_rnet
from facegcn_tf.render.random_faces import FacePrior, random_coefficients
from facegcn_tf.render.renderer import FaceRenderer
from facegcn_tf.training import rnet_trainer
from facegcn_tf.training import runtime

TITLE = "R-Net regressor: forward images/s and training step (CPU, 224 px)"


def run(quick: bool):
  repeats = 2 if quick else 5
  model = load_ict(subdivide=True)
  rows = []
  net = build_rnet(model.layout, 224)
  forward = tf.function(lambda x: net(x, training=False)[0])
  for batch in (1, 8):
    images = tf.random.uniform([batch, 224, 224, 3], 0, 255, seed=batch)
    ms = time_ms(lambda: forward(images).numpy(), repeats)
    rows.append((f"forward, batch {batch}", 1e3 * batch / ms, "images/s"))

  renderer = FaceRenderer(model)
  coeffs = random_coefficients(model.layout, 4, 0, FacePrior(max_yaw=20.0))
  out = renderer.render(tf.constant(coeffs), background=0.4)
  faces = {"image": tf.clip_by_value(out.image, 0, 1) * 255.0, "mask": out.mask,
           "landmarks": renderer.landmarks(out.geometry)}
  with tempfile.TemporaryDirectory() as tmp:
    config = rnet_trainer.RNetTrainConfig(
        runtime=runtime.RuntimeConfig(output_dir=tmp, checkpoint_every=0, summary_every=0,
                                      image_summary_every=0, progress=False),
        data="synthetic", batch_size=4, steps=1, image_size=224, identity="dlib")
    trainer = rnet_trainer.RNetTrainer(config, dataset=tf.data.Dataset.from_tensors(faces),
                                       face_model=model)
    step = trainer.step_function
    batch = trainer.prepare_batch(faces)
    start = time.perf_counter()
    step(batch)["loss"].numpy()
    rows.append(("train step, batch 4: first call (tracing)", time.perf_counter() - start, "s"))
    ms = time_ms(lambda: step(batch)["loss"].numpy(), repeats, warmup=1)
    rows.append(("train step, batch 4 (R-Net + render + losses + Adam)", ms / 1e3, "s"))
  rows.append(("R-Net parameters", f"{net.count_params():,}", ""))
  return rows
