"""Batch runs: photos in, files out, one face at a time, never stopped by a bad input.

For every input photo the `Reconstructor` prepares its face(s); faces are gathered into
batches of `Settings.batch_size`, reconstructed together and each written as soon as its
batch ends (`FaceResult.save`).

Robustness rules (a batch tool's):

* a bad input (unreadable, no face, too small...) is reported with a one-line reason and
  the run goes on with the next one; a batch that fails as a whole is retried face by face
  so one bad face cannot sink the others;
* outputs are written atomically, JSON last, so a face is "done" exactly when its JSON
  exists (`writer.outputs_complete`); a re-run skips finished faces unless `overwrite`;
* the run ends with a summary; `scripts/infer.py` exits non-zero only if everything failed.
"""

import dataclasses
import glob
import json
import os
import pathlib
import time
from typing import Dict, List, Sequence, Tuple

import tensorflow as tf

from facegcn_tf.data.dataset import IMAGE_EXTENSIONS, list_images
from facegcn_tf.errors import FaceGCNError
from facegcn_tf.export import writer
from facegcn_tf.export.result import FaceResult
from facegcn_tf.pipeline.reconstructor import Reconstructor
from facegcn_tf.pipeline.stages import PreparedPhoto

# The errors a single input may raise without stopping the run.
INPUT_ERRORS = (FaceGCNError, ValueError, OSError, tf.errors.InvalidArgumentError)


def resolve_inputs(spec: str) -> List[pathlib.Path]:
  """A file, a folder (searched recursively for images) or a glob -> sorted image paths.

  Raises:
    ValueError: nothing matches (the message says what was looked for).
  """
  path = pathlib.Path(spec).expanduser()
  if path.is_dir():
    found = [path / rel for rel in list_images(str(path))]
  elif path.is_file():
    found = [path]
  else:
    found = sorted(pathlib.Path(p) for p in glob.glob(os.path.expanduser(spec), recursive=True)
                   if pathlib.Path(p).is_file())
  if not found:
    raise ValueError(f"no input images found at '{spec}' (a file, a folder with "
                     f"{'/'.join(e.lstrip('.') for e in IMAGE_EXTENSIONS)} files, or a glob)")
  return found


def output_names(paths: Sequence[pathlib.Path]) -> Dict[pathlib.Path, str]:
  """A unique, file-system-safe output name per input (the stem; parent folders prefixed
  for inputs that share a stem)."""
  def clean(text):
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text).lstrip(".") or "face"

  by_stem: Dict[str, List[pathlib.Path]] = {}
  for p in paths:
    by_stem.setdefault(clean(p.stem), []).append(p)
  names = {}
  for stem, group in by_stem.items():
    if len(group) == 1:
      names[group[0]] = stem
      continue
    for p in group:
      parts = [clean(x) for x in p.resolve().parent.parts[-2:]] + [stem]
      names[p] = "_".join(parts)
    if len(set(names[p] for p in group)) < len(group):  # still clashing: number them
      for k, p in enumerate(group):
        names[p] = f"{stem}_{k}"
  return names


@dataclasses.dataclass
class RunSummary:
  done: List[Tuple[str, float]] = dataclasses.field(default_factory=list)   # (name, seconds)
  skipped: List[str] = dataclasses.field(default_factory=list)
  failed: List[Tuple[str, str]] = dataclasses.field(default_factory=list)   # (input, reason)

  @property
  def all_failed(self) -> bool:
    return bool(self.failed) and not self.done and not self.skipped

  def table(self) -> str:
    lines = [f"{'input / face':40s} {'result':8s} detail"]
    lines += [f"{name:40s} {'ok':8s} {sec:.1f} s" for name, sec in self.done]
    lines += [f"{name:40s} {'skipped':8s} outputs exist (--overwrite to redo)"
              for name in self.skipped]
    lines += [f"{name:40s} {'FAILED':8s} {reason}" for name, reason in self.failed]
    lines.append(f"{len(self.done)} done, {len(self.skipped)} skipped, {len(self.failed)} failed")
    return "\n".join(lines)


def _one_line(err: Exception) -> str:
  text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
  return text if len(text) <= 300 else text[:297] + "..."


@dataclasses.dataclass
class _Pending:
  photo: PreparedPhoto
  index: int          # the face's index in photo.faces
  name: str
  start: float


def _reconstruct_isolating_failures(reconstructor: Reconstructor, batch: List[_Pending],
                                    summary: RunSummary) -> List[Tuple[_Pending, FaceResult]]:
  """Reconstructs a batch; if it fails as a whole, retries face by face."""
  try:
    results = reconstructor.reconstruct_faces(
        [p.photo for p in batch], [p.index for p in batch], [p.name for p in batch],
        [{"faces_in_photo": len(p.photo.faces)} for p in batch])
    return list(zip(batch, results))
  except INPUT_ERRORS as err:
    if len(batch) == 1:
      summary.failed.append((batch[0].name, _one_line(err)))
      return []
  out = []
  for item in batch:
    out.extend(_reconstruct_isolating_failures(reconstructor, [item], summary))
  return out


def run(inputs: Sequence[pathlib.Path], output_dir: pathlib.Path, reconstructor: Reconstructor,
        flags=None, progress: bool = True) -> RunSummary:
  """Reconstructs every input; never raises for a bad input (see `RunSummary`)."""
  from tqdm import tqdm  # pylint: disable=import-outside-toplevel

  settings = reconstructor.settings
  output_dir = pathlib.Path(output_dir)
  output_dir.mkdir(parents=True, exist_ok=True)
  names = output_names(inputs)
  summary = RunSummary()
  pending: List[_Pending] = []

  def done_already(name: str) -> bool:
    if settings.overwrite:
      return False
    if not settings.all_faces:
      return writer.outputs_complete(output_dir, name, settings.formats)
    try:  # every face of the photo; their count is in the first face's report
      first = json.loads((output_dir / f"{name}_face0.json").read_text())
      count = int(first["extra"]["faces_in_photo"])
    except (OSError, ValueError, KeyError, TypeError):
      return False
    return all(writer.outputs_complete(output_dir, f"{name}_face{k}", settings.formats)
               for k in range(count))

  def flush():
    batch = list(pending)
    pending.clear()
    for item, result in _reconstruct_isolating_failures(reconstructor, batch, summary):
      result.extra["seconds"] = round(time.perf_counter() - item.start, 3)
      try:
        result.save(output_dir, settings.formats, settings.texture_size, flags=flags)
        summary.done.append((item.name, time.perf_counter() - item.start))
      except INPUT_ERRORS as err:
        summary.failed.append((item.name, _one_line(err)))

  bar = tqdm(inputs, desc="photos", unit="img", disable=not progress)
  for path in bar:
    name = names[path]
    if done_already(name):
      summary.skipped.append(name)
      continue
    start = time.perf_counter()
    try:
      prepared = reconstructor.prepare(path)
    except INPUT_ERRORS as err:
      summary.failed.append((str(path), _one_line(err)))
      continue
    count = len(prepared.faces)
    face_names = [f"{name}_face{k}" for k in range(count)] if settings.all_faces else [name]
    for k, face_name in enumerate(face_names):
      pending.append(_Pending(prepared, k, face_name, start))
      if len(pending) >= settings.batch_size:
        flush()
    bar.set_postfix(done=len(summary.done), failed=len(summary.failed))
  if pending:
    flush()
  return summary


__all__ = ["INPUT_ERRORS", "RunSummary", "output_names", "resolve_inputs", "run"]
