"""Measures the coarse 3DMM fitter: synthetic ground truth and the example photos.

  python scripts/evaluate_fitting.py [--faces=24] [--images_dir=docs/images]

Prints markdown tables (synthetic shape/pose errors beside the mean-face
baseline; landmark NME and masked PSNR on the astronaut and Grace Hopper
photos) and saves the photo overlays as `<images_dir>/fit_<name>.png`.
"""

import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

_FACES = flags.DEFINE_integer("faces", 24, "Synthetic faces to fit (0 to skip).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the synthetic faces.")
_BATCH = flags.DEFINE_integer("batch_size", 8, "Synthetic faces fitted jointly.")
_MODEL = flags.DEFINE_enum("model", "ict", ["ict", "ict_coarse"],
                           "Model that renders targets and results.")
_FIT_MODEL = flags.DEFINE_enum("fit_model", "ict_coarse", ["ict", "ict_coarse"],
                               "Model the fitter optimises (same coefficients).")
_PHOTOS = flags.DEFINE_bool("photos", True, "Fit the example photos.")
_IDENTITY = flags.DEFINE_bool("identity", False, "Use the dlib identity loss on the photos.")
_PHOTO_STEPS = flags.DEFINE_integer("photo_steps", None,
                                    "Photometric steps (default: FitConfig's).")
_IMAGES_DIR = flags.DEFINE_string("images_dir", "docs/images",
                                  "Where to save fit_<photo>.png overlays ('' to skip).")


def main(argv):
  del argv
  from PIL import Image  # pylint: disable=import-outside-toplevel

  from facegcn_tf.data import examples  # pylint: disable=import-outside-toplevel
  from facegcn_tf.fitting import evaluation  # pylint: disable=import-outside-toplevel
  from facegcn_tf.morphable import load_model  # pylint: disable=import-outside-toplevel
  from facegcn_tf.render.renderer import FaceRenderer  # pylint: disable=import-outside-toplevel

  from facegcn_tf.fitting.fitter import FitConfig  # pylint: disable=import-outside-toplevel

  config = FitConfig()
  if _PHOTO_STEPS.value is not None:
    config = config.replace(photo_steps=_PHOTO_STEPS.value)
  print(f"config: {config}")
  model = load_model(_MODEL.value)
  renderer = FaceRenderer(model)
  fit_renderer = (renderer if _FIT_MODEL.value == _MODEL.value
                  else FaceRenderer(load_model(_FIT_MODEL.value)))
  print(f"render model: {model.name} ({model.num_vertices} vertices); "
        f"fit model: {fit_renderer.model.name} ({fit_renderer.model.num_vertices} vertices)")

  if _FACES.value > 0:
    report = evaluation.evaluate_synthetic(renderer, count=_FACES.value, seed=_SEED.value,
                                           fit_renderer=fit_renderer, batch_size=_BATCH.value,
                                           config=config)
    print(f"\n## Synthetic faces (seed {_SEED.value}, batch {_BATCH.value})\n")
    print(evaluation.synthetic_table(report))
    print("\nper face (yaw deg, shape mm, mean face mm, rotation deg):")
    for row in zip(report.yaw_deg, report.shape_error_mm, report.mean_face_error_mm,
                   report.rotation_error_deg):
      print("  " + ", ".join(f"{v:.2f}" for v in row))

  if _PHOTOS.value:
    encoder = None
    if _IDENTITY.value:
      from facegcn_tf.assets import loaders  # pylint: disable=import-outside-toplevel
      encoder = loaders.load_identity_encoder("dlib", template5=model.template5)
    preprocessor = evaluation.photo_preprocessor(model)
    reports = []
    for name, rgb in examples.example_photos(examples.PORTRAITS).items():
      prepared = preprocessor.prepare_image(rgb, name)
      reports.append(evaluation.evaluate_photo(renderer, prepared, name, config=config,
                                               fit_renderer=fit_renderer, identity_encoder=encoder))
    print("\n## Example photos\n")
    print(evaluation.photo_table(reports))
    if _IMAGES_DIR.value:
      out_dir = pathlib.Path(_IMAGES_DIR.value)
      out_dir.mkdir(parents=True, exist_ok=True)
      for r in reports:
        path = out_dir / f"fit_{r.name}.png"
        # 256 colours without dithering: a third of the bytes, no visible loss on these panels.
        Image.fromarray(r.overlay).quantize(256, dither=Image.Dither.NONE).save(path, optimize=True)
        print(f"saved {path}")


if __name__ == "__main__":
  app.run(main)
