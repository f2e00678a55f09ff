"""End-to-end reconstruction: per-stage seconds (prepare, coarse, refine, assemble, export
by format) for one photo and for a batch of the three example photos, the coarse fit by
stage (its schedule's stages, timed cumulatively: the fit with the first k stages' steps
minus the fit with k - 1; "setup" is the fit with no steps: initial pose, appearance solve,
final render), plus seconds per image of whole batch runs (`pipeline.run`)."""

import dataclasses
import pathlib
import tempfile
import time

from facegcn_tf.data import examples
from facegcn_tf.fitting.fitter import FitConfig
from facegcn_tf import pipeline
from facegcn_tf.pipeline import assemble
from facegcn_tf.pipeline.coarse import coarse_fit
from facegcn_tf.pipeline.refine import refine
from facegcn_tf.pipeline.stages import FaceBatch

TITLE = "End to end: infer.py pipeline, seconds (CPU)"


def _photos(folder: pathlib.Path, count: int):
  """`count` example photos written as files (cycling through the bundled ones)."""
  written = examples.write_example_photos(folder / "examples")
  return [written[i % len(written)] for i in range(count)]


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


def _run_seconds_per_image(settings: pipeline.Settings, count: int) -> float:
  with tempfile.TemporaryDirectory() as tmp:
    tmp = pathlib.Path(tmp)
    photos = _photos(tmp, count)
    reconstructor = pipeline.Reconstructor(settings)
    pipeline.run(photos[:1], tmp / "warmup", reconstructor, progress=False)  # traces, caches
    start = time.perf_counter()
    summary = pipeline.run(photos, tmp / "out", reconstructor, progress=False)
    elapsed = time.perf_counter() - start
    if len(summary.done) != count:
      raise RuntimeError(f"benchmark run failed: {summary.table()}")
    return elapsed / count


def run(quick: bool):
  rows = []
  fit_config = FitConfig().scaled(0.25 if quick else 1.0)
  refine_steps = 50 if quick else 150
  settings = pipeline.Settings(fit_config=fit_config, refine_steps=refine_steps, batch_size=3)
  with tempfile.TemporaryDirectory() as tmp:
    tmp = pathlib.Path(tmp)
    start = time.perf_counter()
    reconstructor = pipeline.Reconstructor(settings)
    rows.append(("start-up: build every model (Reconstructor)", time.perf_counter() - start, "s"))
    photos = _photos(tmp, 3)
    for label, batch in (("1 photo, cold", photos[:1]), ("1 photo, warm", photos[:1]),
                         ("batch of 3 photos", photos)):
      for stage, value in stage_seconds(reconstructor, batch, tmp / "out").items():
        rows.append((f"{label}: {stage} ({refine_steps} refinement steps)", value, "s"))
    for label, batch in (("1 photo", photos[:1]), ("batch of 3 photos", photos)):
      for stage, value in fit_stage_seconds(reconstructor, batch).items():
        rows.append((f"{label}: coarse fit, {stage}", value, "s"))
  for size in (1, 3):
    run_settings = pipeline.Settings(batch_size=size, fit_config=fit_config,
                                     refine_steps=refine_steps)
    rows.append((f"pipeline.run, fit + {refine_steps}-step GCN refinement + export, batch {size}",
                 _run_seconds_per_image(run_settings, size), "s/image"))
  run_settings = pipeline.Settings(batch_size=3, fit_config=fit_config, refine_steps=0)
  rows.append(("pipeline.run, fitting + export only (no refinement), batch 3",
               _run_seconds_per_image(run_settings, 3), "s/image"))
  return rows
