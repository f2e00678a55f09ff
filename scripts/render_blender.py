"""Renders each exported head with Blender's own importers and measures its identity.

  python scripts/render_blender.py --outputs=outputs --photos=examples --renders=docs/images/blender

For every ``NAME_head.glb`` / ``NAME_head.obj`` in ``--outputs``: ``blender -b`` runs
tools/blender/render_head.py (Blender's glTF and OBJ importers, Cycles, soft light) at the
``--yaws``; then the dlib identity distance between the photo and each render is measured
with the project's identity encoder (the renders are detected and aligned like photos).
Writes the renders, a row of each head's renders (``NAME_blender.png``) and
``identity.json`` into ``--renders``, and prints a Markdown table.

``--references`` also reconstructs each photo (default settings) and measures, on the same
grey background, what bounds a render of the face alone: the photo's own pixels inside the
face's silhouette (eyes and mouth included), the pipeline's render lit like the photo with
the photo's eyes and mouth in the mesh's openings, and that render with the openings grey.
"""

import json
import pathlib
import shutil
import subprocess
import sys

from absl import app
from absl import flags

_OUTPUTS = flags.DEFINE_string("outputs", "outputs", "infer.py's --output_dir.")
_PHOTOS = flags.DEFINE_string("photos", "examples", "The photos given to infer.py.")
_RENDERS = flags.DEFINE_string("renders", "docs/images/blender", "Where renders go.")
_YAWS = flags.DEFINE_list("yaws", ["-30", "0", "30"], "Yaw angles in degrees.")
_SIZE = flags.DEFINE_integer("size", 512, "Render side in pixels.")
_SAMPLES = flags.DEFINE_integer("samples", 24, "Cycles samples per pixel.")
_FORMATS = flags.DEFINE_list("formats", ["glb", "obj"], "Which exported files to import.")
_BLENDER = flags.DEFINE_string("blender", "blender", "The Blender executable.")
_REFERENCES = flags.DEFINE_bool("references", False,
                                "Also measure the face-alone references (see the docstring).")

GREY = 0.53  # the Blender scene's background as it comes out in the renders (136/255)


def reference_images(renders) -> dict:
  """Face-alone images from a reconstruction's aligned renders (``overlay.AlignedRenders``),
  each pasted in the middle of a grey canvas twice its side: name -> [2S, 2S, 3] uint8."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  import scipy.ndimage  # pylint: disable=import-outside-toplevel
  crop = renders.crop.astype(np.float32) / 255.0
  covered = renders.fine.sum(axis=-1, keepdims=True) > 0
  silhouette = scipy.ndimage.binary_fill_holes(renders.mask > 0.5)[..., None]
  openings = silhouette & ~covered
  size = crop.shape[0]

  def canvas(image):
    out = np.full((2 * size, 2 * size, 3), GREY, np.float32)
    out[size // 2:size // 2 + size, size // 2:size // 2 + size] = image
    return np.clip(np.rint(out * 255), 0, 255).astype(np.uint8)

  return {"photo_face": canvas(np.where(silhouette, crop, GREY)),
          "render_photo_eyes_mouth": canvas(np.where(covered, renders.fine,
                                                     np.where(openings, crop, GREY))),
          "render_grey_eyes_mouth": canvas(np.where(covered, renders.fine, GREY))}

BLENDER_SIDE = pathlib.Path(__file__).resolve().parent.parent / "tools" / "blender" / "render_head.py"


def main(argv):
  del argv
  import numpy as np  # pylint: disable=import-outside-toplevel
  from facegcn_tf import atomic, metrics  # pylint: disable=import-outside-toplevel
  from facegcn_tf.assets import loaders  # pylint: disable=import-outside-toplevel
  from facegcn_tf.data import image_io  # pylint: disable=import-outside-toplevel
  from facegcn_tf.data.preprocess import FacePreprocessor  # pylint: disable=import-outside-toplevel
  from facegcn_tf.morphable import load_model  # pylint: disable=import-outside-toplevel
  from facegcn_tf.pipeline.batch import output_names, resolve_inputs  # pylint: disable=import-outside-toplevel

  if shutil.which(_BLENDER.value) is None:
    raise app.UsageError(f"'{_BLENDER.value}' not found; scripts/setup.sh installs Debian's blender")
  outputs, renders = pathlib.Path(_OUTPUTS.value), pathlib.Path(_RENDERS.value)
  renders.mkdir(parents=True, exist_ok=True)
  photos = {name: path for path, name in output_names(resolve_inputs(_PHOTOS.value)).items()}
  model = load_model("ict")
  prep = FacePreprocessor(model.template5)
  encoder = loaders.load_identity_encoder("dlib", template5=model.template5)

  def features(rgb):
    face = prep.prepare_image(rgb)
    return encoder(face.aligned.image[None].astype(np.float32)).numpy()[0]

  table, rows = {}, []
  for glb in sorted(outputs.glob("*_head.glb")):
    name = glb.name[:-len("_head.glb")]
    photo_path = photos.get(name)
    reference = features(image_io.load_image(photo_path).rgb) if photo_path else None
    table[name] = {}
    images = []
    for fmt in _FORMATS.value:
      mesh = outputs / f"{name}_head.{fmt}"
      stem = renders / f"{name}_{fmt}"
      run = subprocess.run([_BLENDER.value, "-b", "--factory-startup", "--python",
                            str(BLENDER_SIDE), "--", "--mesh", str(mesh.resolve()),
                            "--out", str(stem.resolve()), f"--yaws={','.join(_YAWS.value)}",
                            "--size", str(_SIZE.value), "--samples", str(_SAMPLES.value)],
                           capture_output=True, text=True, check=False)
      if run.returncode != 0 or "Error" in run.stderr[-2000:]:
        print(run.stdout[-3000:], run.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"blender failed on {mesh}")
      for yaw in _YAWS.value:
        path = pathlib.Path(f"{stem}_yaw{int(round(float(yaw))):+d}.png")
        rgb = image_io.load_image(path).rgb
        images.append(rgb)
        try:
          dist = (float(metrics.identity_distance(reference, features(rgb)))
                  if reference is not None else None)
        except ValueError as err:  # no face found in the render
          dist, _ = None, print(f"{path}: {err}")
        table[name][f"{fmt}_yaw{int(round(float(yaw))):+d}"] = dist
        rows.append((name, fmt, yaw, dist))
    atomic.write_image(renders / f"{name}_blender.png", np.concatenate(images, axis=1))
  values = [d for _, _, _, d in rows if d is not None]
  summary = {"per_render": table, "mean": float(np.mean(values)) if values else None,
             "count": len(values), "yaws": _YAWS.value, "formats": _FORMATS.value}
  if _REFERENCES.value:
    from facegcn_tf.pipeline.reconstructor import Reconstructor  # pylint: disable=import-outside-toplevel
    reconstructor = Reconstructor.from_settings(formats=("json",))
    summary["references"] = {}
    for name in table:
      if name not in photos:
        continue
      reference = features(image_io.load_image(photos[name]).rgb)
      result = reconstructor.reconstruct(photos[name])
      summary["references"][name] = {}
      for kind, image in reference_images(result.renders).items():
        atomic.write_image(renders / f"{name}_{kind}.png", image)
        try:
          dist = float(metrics.identity_distance(reference, features(image)))
        except ValueError as err:
          print(f"{name} {kind}: {err}")
          dist = None
        summary["references"][name][kind] = dist
  atomic.write_json(renders / "identity.json", summary)
  print("| face | importer | yaw | identity distance |\n| --- | --- | --- | --- |")
  for name, fmt, yaw, dist in rows:
    print(f"| {name} | {fmt} | {yaw}° | {'n/a' if dist is None else f'{dist:.3f}'} |")
  print(f"\nmean over {len(values)} renders: {summary['mean']}")
  for name, dists in summary.get("references", {}).items():
    print(name, ", ".join(f"{k} {'n/a' if v is None else f'{v:.3f}'}" for k, v in dists.items()))


if __name__ == "__main__":
  app.run(main)
