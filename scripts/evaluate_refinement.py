"""Measures per-image GCN refinement against the coarse stage on real photos.

  python scripts/evaluate_refinement.py [--photos=a.jpg,b.png] [--face_model=ict] \
      [--steps=150] [--ablation=true] [--figure_prefix=docs/images/refine_] [--output_md=FILE]

Default photos: the public-domain astronaut (scikit-image) and Grace Hopper
(matplotlib). Prints the quality-bar table (masked PSNR, identity distance,
time) and the Fig. 7-style ablation table as markdown, and writes one
comparison figure per photo (aligned photo | each variant's render | overlay).
"""

import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

_PHOTOS = flags.DEFINE_list("photos", [], "Photos to evaluate (default: astronaut, Grace Hopper).")
_FACE_MODEL = flags.DEFINE_enum("face_model", "ict", ["ict", "ict_coarse", "bfm"], "Face model.")
_MODEL_PATH = flags.DEFINE_string("model_path", None, "Face model file (default: asset search path).")
_STEPS = flags.DEFINE_integer("steps", 150, "Refinement steps per image.", lower_bound=1)
_ABLATION = flags.DEFINE_bool("ablation", True, "All ablation rows (else coarse vs default only).")
_FIGURE_PREFIX = flags.DEFINE_string("figure_prefix", "docs/images/refine_",
                                     "Figures go to PREFIX<photo>.png ('' = none).")
_OUTPUT_MD = flags.DEFINE_string("output_md", None, "Also write the tables to this file.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  # pylint: disable=import-outside-toplevel
  import cv2

  from facegcn_tf.data import examples
  from facegcn_tf.data.image_io import load_image
  from facegcn_tf.errors import FaceGCNError
  from facegcn_tf.refinement import per_image
  from facegcn_tf.refinement import evaluation as ev
  # pylint: enable=import-outside-toplevel

  try:
    if _PHOTOS.value:
      photos = [(pathlib.Path(p).stem, load_image(p).rgb) for p in _PHOTOS.value]
    else:
      photos = list(examples.example_photos(examples.PORTRAITS).items())
    variants = ev.ABLATION if _ABLATION.value else (ev.COARSE, ev.DEFAULT)
    report = ev.evaluate(photos, _FACE_MODEL.value, per_image.PerImageConfig(steps=_STEPS.value),
                         variants, model_path=_MODEL_PATH.value)
  except (FaceGCNError, ValueError) as err:
    sys.exit(f"evaluate_refinement.py: error: {str(err).splitlines()[0]}")
  text = ev.markdown(report)
  print(text)
  print(f"coarse fit of {len(photos)} photos: {report.fit_seconds:.1f} s")
  if _OUTPUT_MD.value:
    pathlib.Path(_OUTPUT_MD.value).write_text(text, encoding="utf-8")
  if _FIGURE_PREFIX.value:
    for name in report.photos:
      path = f"{_FIGURE_PREFIX.value}{name}.png"
      os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
      cv2.imwrite(path, ev.figure(report, name)[..., ::-1])
      print(f"wrote {path}")


if __name__ == "__main__":
  app.run(main)
