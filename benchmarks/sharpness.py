"""Detail kept at the photo's own resolution (#11): per-vertex colour vs the UV texture (with
and without the full-resolution detail layer), each rendered at the resolution the face has
in the original photo and compared with the photo there (`pipeline.sharpness`)."""

import dataclasses
import pathlib
import tempfile

import cv2
import numpy as np

from facegcn_tf import pipeline
from facegcn_tf.data import examples
from facegcn_tf.pipeline import sharpness

TITLE = "Sharpness at the photo's resolution: per-vertex colour vs UV texture (default preset)"


def run(quick: bool):
  rows = []
  settings = pipeline.Settings.from_preset("default", formats=("obj",), texture_size=1024)
  reconstructor = pipeline.Reconstructor(settings)
  renderer = reconstructor.components.renderer
  with tempfile.TemporaryDirectory() as tmp:
    tmp = pathlib.Path(tmp)
    photos = examples.write_example_photos(tmp / "examples")
    for path in photos[:1] if quick else photos:
      result = reconstructor.reconstruct(path)
      plain = dataclasses.replace(result, name=f"{result.name}_plain", photo_trust=None)
      figures = {}
      for label, face in (("detail layer", result), ("no detail layer", plain)):
        face.save(tmp / "out", formats=("obj",), texture_size=settings.texture_size)
        texture = cv2.imread(str(tmp / "out" / f"{face.name}_texture.png"))[..., ::-1]
        figures[label] = sharpness.sharpness_figures(renderer, face, np.ascontiguousarray(texture))
      name = pathlib.Path(path).stem
      side = int(figures["detail layer"]["side_px"])
      rows.append((f"{name}: render side at photo resolution", side, "px"))
      for key, unit in (("psnr", "dB"), ("ssim", "")):
        suffix = "_db" if key == "psnr" else ""
        rows.append((f"{name}: {key.upper()} per-vertex colour",
                     figures["detail layer"][f"{key}_vertex{suffix}"], unit))
        for label in ("no detail layer", "detail layer"):
          rows.append((f"{name}: {key.upper()} UV texture, {label}",
                       figures[label][f"{key}_texture{suffix}"], unit))
  return rows
