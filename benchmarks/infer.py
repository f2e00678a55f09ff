"""End-to-end reconstruction: each preset's cold single-photo wall time (infer.py in a fresh
process), warm seconds per face in a batch and mean quality figures; per-stage seconds (prepare, coarse, refine, assemble, export
by format) for one photo and for a batch of the three example photos, the coarse fit by
stage (its schedule's stages, timed cumulatively: the fit with the first k stages' steps
minus the fit with k - 1; "setup" is the fit with no steps: initial pose, appearance solve,
final render), plus seconds per image of whole batch runs (`pipeline.run`)."""

import dataclasses
import json
import math
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

from facegcn_tf.data import examples
from facegcn_tf import pipeline
from facegcn_tf.pipeline import assemble
from facegcn_tf.pipeline import presets
from facegcn_tf.pipeline.coarse import coarse_fit
from facegcn_tf.pipeline.refine import refine
from facegcn_tf.pipeline.stages import FaceBatch

TITLE = "End to end: infer.py pipeline, seconds (CPU)"


def _photos(folder: pathlib.Path, count: int):
  """`count` example photo files (the bundled ones, then copies of them under new names)."""
  written = examples.write_example_photos(folder / "examples")
  photos = list(written)
  for i in range(len(written), count):
    source = written[i % len(written)]
    copy = source.with_name(f"{source.stem}_{i}{source.suffix}")
    shutil.copyfile(source, copy)
    photos.append(copy)
  return photos[:count]


def stage_seconds(reconstructor: pipeline.Reconstructor, photos, output_dir) -> dict:
  """Wall seconds of each stage for one batch of photos (one face each)."""
  seconds = {}
  start = time.perf_counter()
  prepared = [reconstructor.prepare(p) for p in photos]
  seconds["prepare"] = time.perf_counter() - start
  components = reconstructor.components
  faces = [p.faces[0] for p in prepared]
  batch = FaceBatch.stack(faces, [p.features[0] for p in prepared])
  start = time.perf_counter()
  coarse = coarse_fit(components, batch, reconstructor.settings.fit_config)
  seconds["coarse"] = time.perf_counter() - start
  start = time.perf_counter()
  refinement = refine(components, batch, coarse)
  seconds["refine"] = time.perf_counter() - start
  start = time.perf_counter()
  results = assemble.face_results(components, faces, [f"face{i}" for i in range(len(faces))],
                                  [p.photo for p in prepared], batch, coarse, refinement,
                                  [{} for _ in faces])
  seconds["assemble"] = time.perf_counter() - start
  for fmt in reconstructor.settings.formats:  # JSON is written last by a full save, too
    start = time.perf_counter()
    for result in results:
      result.save(output_dir, (fmt,), reconstructor.settings.texture_size)
    seconds[f"export {fmt}"] = time.perf_counter() - start
  return seconds


def fit_stage_seconds(reconstructor: pipeline.Reconstructor, photos, repeats: int = 2) -> dict:
  """Wall seconds of each stage of the coarse fit (warm) for one batch of photos.

  The stages are FitConfig's ``*_steps`` fields in their declared order; stage k's time is
  the fit with stages 1..k minus the fit with stages 1..k-1 (the same traced steps run),
  each fit timed as the fastest of `repeats` runs (a shared machine's noise only adds).
  """
  prepared = [reconstructor.prepare(p) for p in photos]
  batch = FaceBatch.stack([p.faces[0] for p in prepared], [p.features[0] for p in prepared])
  config = reconstructor.settings.fit_config
  stages = [f.name for f in dataclasses.fields(config) if f.name.endswith("_steps")]
  components = reconstructor.components
  coarse_fit(components, batch, config)  # traces every step function
  stages = [name for name in stages if getattr(config, name) > 0]  # a 0-step stage is no stage
  seconds, previous = {}, 0.0
  for k in range(len(stages) + 1):
    partial = config.replace(**{name: 0 for name in stages[k:]})
    times = []
    for _ in range(repeats):
      start = time.perf_counter()
      coarse_fit(components, batch, partial)
      times.append(time.perf_counter() - start)
    total = min(times)
    label = "setup and final render" if k == 0 else (
        f"{stages[k - 1][:-len('_steps')]} stage ({getattr(config, stages[k - 1])} steps)")
    seconds[label] = total - previous
    previous = total
  return seconds


def _subprocess_seconds(args) -> float:
  """Wall seconds of a fresh Python process (start-up included), e.g. infer.py on one photo."""
  start = time.perf_counter()
  proc = subprocess.run([sys.executable] + list(args), capture_output=True, text=True,
                        check=False)
  elapsed = time.perf_counter() - start
  if proc.returncode != 0:
    raise RuntimeError(f"{' '.join(args)} failed: {proc.stderr[-2000:]}")
  return elapsed


def _batch_run(settings: pipeline.Settings, photos, output_dir: pathlib.Path):
  """(seconds per face of a warm `pipeline.run`, mean quality figures of its faces)."""
  reconstructor = pipeline.Reconstructor(settings)
  pipeline.run(photos[:1], output_dir / "warmup", reconstructor, progress=False)  # traces
  start = time.perf_counter()
  summary = pipeline.run(photos, output_dir / "out", reconstructor, progress=False)
  elapsed = time.perf_counter() - start
  if len(summary.done) != len(photos):
    raise RuntimeError(f"benchmark run failed: {summary.table()}")
  figures = {}
  for key in QUALITY:
    values = [json.loads((output_dir / "out" / f"{name}.json").read_text())["losses"].get(key)
              for name, _ in summary.done]
    values = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    figures[key] = sum(values) / len(values) if values else float("nan")
  return elapsed / len(photos), figures


QUALITY = ("psnr_fine_db", "identity_distance_fine", "spill", "psnr_overlay_full_db",
           "occluded_fraction")


def run(quick: bool):
  rows = []
  with tempfile.TemporaryDirectory() as tmp:
    tmp = pathlib.Path(tmp)
    photos = _photos(tmp, 3 if quick else 6)
    rows.append(("start-up: import facegcn_tf.pipeline (fresh process)",
                 _subprocess_seconds(["-c", "import facegcn_tf.pipeline"]), "s"))
    infer = str(pathlib.Path(__file__).resolve().parent.parent / "scripts" / "infer.py")
    for name in ([presets.DEFAULT_PRESET] if quick else list(presets.PRESETS)):
      rows.append((f"preset {name}: 1 photo, cold (infer.py, start-up included)",
                   _subprocess_seconds([infer, f"--input={photos[0]}", f"--preset={name}",
                                        f"--output_dir={tmp / ('cold_' + name)}",
                                        "--progress=false"]), "s"))
      settings = pipeline.Settings.from_preset(name, batch_size=4 if not quick else 3)
      per_face, figures = _batch_run(settings, photos, tmp / f"run_{name}")
      rows.append((f"preset {name}: {len(photos)} faces, batch {settings.batch_size}, warm",
                   per_face, "s/face"))
      for key, value in figures.items():
        rows.append((f"preset {name}: mean {key} ({len(photos)} faces)", value, ""))
    settings = pipeline.Settings.from_preset(presets.DEFAULT_PRESET, batch_size=3)
    start = time.perf_counter()
    reconstructor = pipeline.Reconstructor(settings)
    rows.append(("start-up: build every model (Reconstructor)", time.perf_counter() - start, "s"))
    for label, batch in (("1 photo, cold", photos[:1]), ("1 photo, warm", photos[:1]),
                         ("batch of 3 photos", photos[:3])):
      for stage, value in stage_seconds(reconstructor, batch, tmp / "stages").items():
        rows.append((f"default preset, {label}: {stage}", value, "s"))
    for label, batch in (("1 photo", photos[:1]), ("batch of 3 photos", photos[:3])):
      for stage, value in fit_stage_seconds(reconstructor, batch).items():
        rows.append((f"default preset, {label}: coarse fit, {stage}", value, "s"))
  return rows
