"""``index.html`` in an output folder: every face's strip, overlay and rigged head, offline.

Chromium refuses ES-module scripts and ``fetch`` for ``file://`` pages, so the page carries
what it needs and works when opened straight from disk (no server, no browser flags):

* the viewer is ``@google/model-viewer``'s **UMD** bundle (a classic script, which
  ``file://`` pages may load), copied beside the page as ``model-viewer-umd.min.js``;
* each head's GLB is **embedded** in the page as a ``data:`` URI (model-viewer loads
  ``data:`` URIs with no request to the file system); the GLB files stay beside it. The
  heads load one after another, in page order.

Buttons play the GLB's own animation clips (``export.head_export.CLIPS``: smile, blink,
jaw open) through model-viewer's ``animation-name`` / ``play()``. The page lists the run's
failures with their reasons.
"""

import base64
import html
import json
import pathlib
import shutil
from typing import Optional, Sequence, Tuple

from facegcn_tf import atomic
from facegcn_tf.export import head_export

VIEWER_FILE = "model-viewer-umd.min.js"

_STYLE = """
body{font-family:system-ui,sans-serif;margin:16px;background:#fafafa;color:#222}
.face{background:#fff;border:1px solid #ddd;border-radius:8px;padding:12px;margin:0 0 18px}
.row{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}
.row img{max-height:260px;border:1px solid #eee}
model-viewer{width:420px;height:420px;background:#e8e8e8;border-radius:6px}
button{margin:4px 6px 0 0;padding:5px 12px}
.fail{color:#a00}
"""

_SCRIPT = """
// Heads load one after another, in page order (several at once starve a software-WebGL
// browser): each viewer gets its embedded GLB once the one before it has loaded.
var queue = Array.prototype.slice.call(document.querySelectorAll('model-viewer[data-glb]'));
function loadNext() {
  var next = queue.shift();
  if (next) next.src = next.dataset.glb;
}
document.querySelectorAll('.face').forEach(function (face) {
  var viewer = face.querySelector('model-viewer');
  if (!viewer) return;
  viewer.addEventListener('load', function () {
    viewer.dataset.loaded = '1';
    loadNext();
  });
  viewer.addEventListener('error', function (e) { viewer.dataset.error = '1'; loadNext(); });
  face.querySelectorAll('button[data-clip]').forEach(function (button) {
    button.addEventListener('click', function () {
      viewer.animationName = button.dataset.clip;
      viewer.currentTime = 0;
      viewer.play({repetitions: 1});
    });
  });
});
"""


def _data_uri(path: pathlib.Path, mime: str) -> str:
  return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def face_names(output_dir: pathlib.Path) -> list:
  """The faces with a finished export in ``output_dir`` (their JSON written last)."""
  names = []
  for report in sorted(output_dir.glob("*.json")):
    try:
      document = json.loads(report.read_text())
    except (OSError, ValueError):
      continue
    if isinstance(document, dict) and "export" in document:
      names.append(report.stem)
  return names


def page_html(output_dir: pathlib.Path, names: Sequence[str],
              failures: Sequence[Tuple[str, str]], viewer_present: bool) -> str:
  """The page's HTML (see the module docstring)."""
  esc = html.escape
  parts = ["<!doctype html><html><head><meta charset='utf-8'>",
           "<title>facegcn_tf results</title>", f"<style>{_STYLE}</style>"]
  if viewer_present:
    parts.append(f"<script src='{VIEWER_FILE}'></script>")
  parts.append("</head><body><h1>facegcn_tf results</h1>")
  if not viewer_present:
    parts.append("<p class='fail'>The 3D viewer (@google/model-viewer) is not installed: "
                 "run scripts/setup.sh, then infer.py again.</p>")
  for name in names:
    parts.append(f"<section class='face' id='{esc(name)}'><h2>{esc(name)}</h2><div class='row'>")
    for suffix, alt in (("_strip.png", "photo | coarse | fine | shape"),
                        ("_overlay.png", "overlay")):
      if (output_dir / f"{name}{suffix}").is_file():
        parts.append(f"<figure><img src='{esc(name + suffix)}' alt='{alt}'>"
                     f"<figcaption>{alt}</figcaption></figure>")
    glb = output_dir / f"{name}_head.glb"
    if glb.is_file():
      parts.append("<figure><model-viewer camera-controls "
                   "shadow-intensity='0.6' exposure='1.0' camera-orbit='0deg 80deg auto' "
                   f"alt='{esc(name)} head' data-glb='{_data_uri(glb, 'model/gltf-binary')}'>"
                   "</model-viewer><figcaption>")
      for clip in head_export.CLIPS:
        parts.append(f"<button data-clip='{clip}'>{esc(clip)}</button>")
      parts.append(f" <a href='{esc(glb.name)}'>{esc(glb.name)}</a></figcaption></figure>")
    parts.append("</div></section>")
  if failures:
    parts.append("<h2>Failures</h2><ul>")
    parts += [f"<li class='fail'><b>{esc(str(what))}</b>: {esc(str(why))}</li>"
              for what, why in failures]
    parts.append("</ul>")
  if not names and not failures:
    parts.append("<p>No face in this folder yet.</p>")
  parts.append(f"<script>{_SCRIPT}loadNext();</script></body></html>")
  return "".join(parts)


def write_index(output_dir, failures: Sequence[Tuple[str, str]] = (),
                viewer_js: Optional[pathlib.Path] = None) -> pathlib.Path:
  """Writes ``output_dir/index.html`` (and copies the viewer bundle beside it).

  Args:
    output_dir: an infer.py output folder.
    failures: (input or face, reason) of the run.
    viewer_js: model-viewer's UMD bundle; None or missing: the page says how to get it.
  """
  output_dir = pathlib.Path(output_dir)
  present = False
  if viewer_js is not None and pathlib.Path(viewer_js).is_file():
    shutil.copyfile(viewer_js, output_dir / VIEWER_FILE)
    present = True
  text = page_html(output_dir, face_names(output_dir), failures, present)
  return atomic.write_text(output_dir / "index.html", text)


__all__ = ["VIEWER_FILE", "face_names", "page_html", "write_index"]
