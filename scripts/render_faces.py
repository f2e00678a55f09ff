"""Renders the face model with the rasterizer op: the mean face and random faces, to PNG.

  python scripts/render_faces.py --output_dir outputs/renders [--face_model=ict] [--count=8]

Writes `mean_face.png`, `random_XX.png` (lit) and `grid.png` (top row: albedo only;
bottom row: lit), 224×224 each.
"""

import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

_OUTPUT_DIR = flags.DEFINE_string("output_dir", "outputs/renders", "Where the PNGs go.")
_FACE_MODEL = flags.DEFINE_enum("face_model", "ict", ["ict", "ict_coarse", "bfm"], "Face model.")
_MODEL_PATH = flags.DEFINE_string("model_path", None, "Model file (default: asset search path).")
_COUNT = flags.DEFINE_integer("count", 7, "Number of random faces besides the mean face.", lower_bound=0)
_SEED = flags.DEFINE_integer("seed", 0, "Random seed.")
_SIZE = flags.DEFINE_integer("image_size", 224, "Image side in pixels.", lower_bound=16)


def main(argv):
  del argv
  import cv2
  import numpy as np
  import tensorflow as tf

  from facegcn_tf.morphable import load_model
  from facegcn_tf.render import light_presets
  from facegcn_tf.render.camera import Camera
  from facegcn_tf.render.random_faces import random_coefficients
  from facegcn_tf.render.renderer import FaceRenderer

  model = load_model(_FACE_MODEL.value, _MODEL_PATH.value)
  renderer = FaceRenderer(model, Camera().resized(_SIZE.value))
  coeffs = np.concatenate([
      np.zeros((1, model.layout.total), np.float32),
      random_coefficients(model.layout, _COUNT.value, _SEED.value,
                          bounded_expressions=model.name.startswith("ict"))])
  coeffs[0, model.layout.slices()["gamma"]] = light_presets.preset("front_top").numpy()  # mean face
  coeffs = tf.constant(coeffs)
  lit = renderer.render(coeffs, background=1.0)
  albedo = renderer.render(coeffs, lit=False, background=1.0, geometry=lit.geometry,
                           raster=lit.raster)

  out = pathlib.Path(_OUTPUT_DIR.value)
  out.mkdir(parents=True, exist_ok=True)
  to_bgr8 = lambda im: (np.clip(im, 0, 1)[..., ::-1] * 255 + 0.5).astype(np.uint8)  # noqa: E731
  lit_images = [to_bgr8(im) for im in lit.image.numpy()]
  albedo_images = [to_bgr8(im) for im in albedo.image.numpy()]
  names = ["mean_face.png"] + [f"random_{i:02d}.png" for i in range(_COUNT.value)]
  for name, image in zip(names, lit_images):
    cv2.imwrite(str(out / name), image)
  grid = np.concatenate([np.concatenate(albedo_images, 1), np.concatenate(lit_images, 1)], 0)
  cv2.imwrite(str(out / "grid.png"), grid)
  print(f"{model.name}: {model.num_vertices} vertices, {model.num_triangles} triangles; "
        f"wrote {len(names)} renders and grid.png to {out.resolve()}")


if __name__ == "__main__":
  app.run(main)
