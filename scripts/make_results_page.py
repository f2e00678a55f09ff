"""Builds docs/results.md from an infer.py output folder.

  python scripts/make_results_page.py --photos=examples --outputs=outputs --docs=docs

For every reconstructed face: the comparison strip (photo | coarse | fine | shape), the
overlay on the original photo, the UV texture, and a turntable of the textured mesh (the
exported PLY re-rendered at several yaw angles under a neutral light); then the evaluation
table (scripts/evaluate.py's) and a link to the benchmarks.
"""

import pathlib

from absl import app
from absl import flags

_PHOTOS = flags.DEFINE_string("photos", "examples", "The photos given to infer.py.")
_OUTPUTS = flags.DEFINE_string("outputs", "outputs", "infer.py's --output_dir.")
_DOCS = flags.DEFINE_string("docs", "docs", "Docs folder (results.md and images/ go there).")
_YAWS = flags.DEFINE_list("yaws", ["-60", "-30", "0", "30", "60"], "Turntable yaw angles (deg).")


# Sections of results.md this script does not make (measured by other scripts, e.g.
# scripts/render_blender.py's "Whole-head export"): kept from the existing page, in place,
# before "## Speed".
_GENERATED = ("Evaluation", "Faces", "Speed")


def _sections(markdown: str):
  """[(title, text)] of the '## ' sections of `markdown` (title None for the preamble)."""
  out, title, lines = [], None, []
  for line in markdown.splitlines():
    if line.startswith("## "):
      out.append((title, lines))
      title, lines = line[3:].strip(), []
    lines.append(line)
  out.append((title, lines))
  return [(t, "\n".join(body)) for t, body in out]


def _with_kept_sections(text: str, existing: pathlib.Path) -> str:
  """`text` with the existing page's other '## ' sections inserted before '## Speed'."""
  if not existing.exists():
    return text
  kept = [body.rstrip() + "\n" for title, body in _sections(existing.read_text())
          if title is not None and title not in _GENERATED]
  if not kept:
    return text
  head, sep, tail = text.partition("## Speed")
  return head + "\n".join(kept) + "\n" + sep + tail


def main(argv):
  del argv
  import json

  import cv2
  import numpy as np
  import trimesh

  from facegcn_tf import atomic
  from facegcn_tf.export import evaluation
  from facegcn_tf.pipeline.batch import output_names, resolve_inputs
  from facegcn_tf.morphable import load_model
  from facegcn_tf.render import light_presets
  from facegcn_tf.render import turntable as turntables
  from facegcn_tf.render.renderer import FaceRenderer

  outputs, docs = pathlib.Path(_OUTPUTS.value), pathlib.Path(_DOCS.value)
  images = docs / "images"
  images.mkdir(parents=True, exist_ok=True)
  names = list(output_names(resolve_inputs(_PHOTOS.value)).values())
  rows = evaluation.collect(outputs, names)
  ok = [r for r in rows if r["status"] == "ok"]
  renderers = {}

  def small(src: pathlib.Path, dst: pathlib.Path, width: int):
    image = cv2.imread(str(src))
    scale = min(1.0, width / image.shape[1])
    image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    atomic.write_bytes(dst, cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 88])[1].tobytes())

  sections = []
  for row in ok:
    name = row["name"]
    report = json.loads((outputs / f"{name}.json").read_text())
    model_name = report["model"]
    if model_name not in renderers:
      renderers[model_name] = FaceRenderer(load_model(model_name))
    renderer = renderers[model_name]
    layout = renderer.layout
    colors = np.asarray(trimesh.load(outputs / f"{name}.ply", process=False).visual.vertex_colors,
                        np.float32)[:, :3] / 255.0
    coeffs = np.zeros(layout.total, np.float32)
    for part in ("id", "exp"):
      coeffs[layout.slices()[part]] = report["coefficients"][part]
    frames = turntables.render_turntable(
        renderer, coeffs, [float(y) for y in _YAWS.value], vertex_colors=colors,
        gamma=light_presets.preset("studio"), background=1.0).image
    turntable = turntables.side_by_side(frames).numpy()
    atomic.write_bytes(images / f"result_{name}_turntable.jpg", cv2.imencode(
        ".jpg", (turntable[..., ::-1] * 255).astype(np.uint8),
        [cv2.IMWRITE_JPEG_QUALITY, 88])[1].tobytes())
    small(outputs / f"{name}_strip.png", images / f"result_{name}_strip.jpg", 900)
    small(outputs / f"{name}_overlay.png", images / f"result_{name}_overlay.jpg", 400)
    small(outputs / f"{name}_texture.png", images / f"result_{name}_texture.jpg", 400)
    losses = report["losses"]
    sections.append("\n".join([
        f"### {name}", "",
        f"![strip](images/result_{name}_strip.jpg)", "",
        "Input | coarse (fitted 3DMM) | fine (GCN refinement) | shape. Masked PSNR "
        f"{losses.get('psnr_coarse_db', float('nan')):.1f} → {losses.get('psnr_fine_db', float('nan')):.1f} dB, "
        f"identity distance {losses.get('identity_distance_coarse', float('nan')):.2f} → "
        f"{losses.get('identity_distance_fine', float('nan')):.2f}, landmark NME "
        f"{losses.get('landmark_nme', float('nan')):.3f}, pose (pitch, yaw, roll) "
        f"({report['pose']['pitch_deg']:.1f}°, {report['pose']['yaw_deg']:.1f}°, "
        f"{report['pose']['roll_deg']:.1f}°).", "",
        f"| overlay on the original photo | UV texture (fine albedo) |", "| --- | --- |",
        f"| ![overlay](images/result_{name}_overlay.jpg) | ![texture](images/result_{name}_texture.jpg) |",
        "", f"Turntable of the exported mesh (yaw {', '.join(_YAWS.value)}°, neutral light):", "",
        f"![turntable](images/result_{name}_turntable.jpg)", ""]))
  failed = [r for r in rows if r["status"] != "ok"]
  table = evaluation.to_markdown(rows + ([evaluation.mean_row(ok)] if ok else []))
  text = "\n".join([
      "# Results on the bundled example photos", "",
      "Made by the README's main command (`scripts/infer.py --input examples --output_dir "
      "outputs`: preset `default`, ICT face model, analysis-by-synthesis fitting with occluder "
      "segmentation, the photo's albedo solved directly with mirror fill, no GCN, CPU) and "
      "`python scripts/make_results_page.py`.", "",
      "## Evaluation", "",
      "`python scripts/evaluate.py --photos=examples --outputs=outputs`. PSNR and SSIM: lit "
      "render vs aligned photo inside the replaced pixels (the rendered face minus the "
      "estimated occluders and the triangles with a filled corner) ∩ face mask; direct copy: the photo's colour copied to each vertex, "
      "judged the same way; identity distance: dlib "
      "descriptor of the photo vs the render composited on it (same person < 0.6); landmark "
      "NME: 68 projected model landmarks vs the detected ones, over the outer-eye-corner "
      "distance.", "", table,
      ("Inputs without a face are reported and skipped: " + ", ".join(
          f"`{r['name']}` ({r['status']})" for r in failed) + ".\n") if failed else "",
      "## Faces", "", *sections,
      "## Speed", "", "See [benchmarks.md](benchmarks.md).", ""])
  atomic.write_text(docs / "results.md", _with_kept_sections(text, docs / "results.md"))
  print(f"wrote {docs / 'results.md'} ({len(ok)} faces)")


if __name__ == "__main__":
  app.run(main)
