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

import contextlib
import dataclasses
import errno
import glob
import json
import os
import pathlib
import signal
import tempfile
import time
from typing import Dict, List, Optional, Sequence, Tuple, Union

import tensorflow as tf

from facegcn_tf.data.dataset import IMAGE_EXTENSIONS, list_images
from facegcn_tf.errors import FaceGCNError
from facegcn_tf import atomic
from facegcn_tf import storage
from facegcn_tf.export import overlay
from facegcn_tf.export import writer
from facegcn_tf.export.result import FaceResult
from facegcn_tf.pipeline import claims as claims_lib
from facegcn_tf.pipeline.progress import Progress
from facegcn_tf.pipeline.reconstructor import Reconstructor
from facegcn_tf.pipeline.stages import PreparedPhoto

# The errors a single input may raise without stopping the run.
INPUT_ERRORS = (FaceGCNError, ValueError, OSError, tf.errors.InvalidArgumentError)

# A photo: a local path, or a URL string (``gs://...``, see `storage`).
Input = Union[pathlib.Path, str]


@dataclasses.dataclass
class InputScan:
  """What an input spec names.

  Attributes:
    paths: the image files, sorted (URLs as strings).
    odd: (entry, reason) for entries that look like photos but cannot be read as files:
      a folder named like an image, a symlink loop, a broken link, a device or pipe.
  """
  paths: List[Input]
  odd: List[Tuple[str, str]]


def _odd_reason(path: pathlib.Path) -> str:
  """Why an entry named like a photo is not a regular file."""
  try:
    path.stat()
  except OSError as err:
    if err.errno == errno.ELOOP:
      return "a symlink loop, not a photo"
    if err.errno == errno.ENOENT and path.is_symlink():
      return "a broken symlink, not a photo"
    return f"cannot be read ({err.strerror or type(err).__name__})"
  if path.is_dir():
    return "a folder named like a photo, not a photo"
  return "not a regular file"


FILE_LIST_EXTENSIONS = (".txt", ".lst")


def read_file_list(path: Input) -> List[Input]:
  """The photo paths of a text file, one a line (blank lines and ``#`` comments skipped;
  relative paths are relative to the list's folder). The list and its entries may be URLs."""
  out = []
  for line in storage.read_text(str(path)).splitlines():
    line = line.strip()
    if not line or line.startswith("#"):
      continue
    if storage.is_remote(line):
      out.append(line)
    elif storage.is_remote(path):
      out.append(line if line.startswith("/") else storage.join(storage.dirname(path), line))
    else:
      entry = pathlib.Path(line).expanduser()
      out.append(entry if entry.is_absolute() else pathlib.Path(path).parent / entry)
  return out


def _scan_remote(spec: str) -> InputScan:
  """`scan_inputs` for a URL: a file list, a folder, a glob or one photo.

  A list's entries are not looked up one by one (a round trip each): one that is missing
  fails when its photo is loaded, with its reason.
  """
  exts = {e.lower() for e in IMAGE_EXTENSIONS}
  if os.path.splitext(spec)[1].lower() in FILE_LIST_EXTENSIONS and storage.is_file(spec):
    files = read_file_list(spec)
    if not files:
      raise ValueError(f"the file list '{spec}' names no photos")
    return InputScan(paths=files, odd=[])
  if any(c in spec for c in "*?["):
    files = [p for p in storage.glob(spec) if os.path.splitext(p)[1].lower() in exts]
  elif storage.is_dir(spec):
    files = [storage.join(spec, name) for name in list_images(spec)]
  else:
    files = [spec] if storage.is_file(spec) else []
  if not files:
    raise ValueError(f"no input images found at '{spec}' (a photo, a folder with "
                     f"{'/'.join(e.lstrip('.') for e in IMAGE_EXTENSIONS)} files, a glob, "
                     "or a file list)")
  return InputScan(paths=files, odd=[])


def scan_inputs(spec: str) -> InputScan:
  """A file, a folder (searched recursively for images), a glob, or a text file listing
  photos (``.txt``/``.lst``, one path a line) -> its photos and odd entries.

  A folder contributes its files with an image extension (hidden files and folders
  ignored), sorted by relative path; a glob every file it matches; a list its lines, in
  order. Entries named like photos that are not regular files are the odd ones (in a list:
  every entry that is not a regular file).

  Raises:
    ValueError: nothing matches (the message says what was looked for).
  """
  if storage.is_remote(spec):
    return _scan_remote(spec)
  path = pathlib.Path(spec).expanduser()
  exts = {e.lower() for e in IMAGE_EXTENSIONS}
  if path.is_file() and path.suffix.lower() in FILE_LIST_EXTENSIONS:
    try:
      entries = read_file_list(path)
    except (OSError, UnicodeDecodeError) as err:
      raise ValueError(f"cannot read the file list '{spec}': {err}") from None
    # URL entries are not looked up one by one (see `_scan_remote`).
    files = [p for p in entries if isinstance(p, str) or p.is_file()]
    regular = set(files)
    odd = [(str(p), _odd_reason(p) if os.path.lexists(p) else "listed, but not found")
           for p in entries if p not in regular]
    if not files and not odd:
      raise ValueError(f"the file list '{spec}' names no photos")
    return InputScan(paths=files, odd=odd)
  if path.is_dir():
    entries = sorted((p for p in path.rglob("*")
                      if not any(part.startswith(".") for part in p.relative_to(path).parts)),
                     key=lambda p: p.relative_to(path).as_posix())
    files = [p for p in entries if p.suffix.lower() in exts and p.is_file()]
  elif path.is_file():
    entries, files = [path], [path]
  else:
    entries = sorted(pathlib.Path(p) for p in glob.glob(os.path.expanduser(spec), recursive=True))
    files = [p for p in entries if p.is_file()]
  regular = set(files)
  odd = sorted((str(p), _odd_reason(p)) for p in entries
               if p.suffix.lower() in exts and p not in regular)
  if not files and not odd:
    raise ValueError(f"no input images found at '{spec}' (a file, a folder with "
                     f"{'/'.join(e.lstrip('.') for e in IMAGE_EXTENSIONS)} files, or a glob)")
  return InputScan(paths=files, odd=odd)


def resolve_inputs(spec: str) -> List[pathlib.Path]:
  """The photos of `scan_inputs(spec)` (odd entries left out).

  Raises:
    ValueError: no photo matches.
  """
  paths = scan_inputs(spec).paths
  if not paths:
    raise ValueError(f"no input images found at '{spec}'")
  return paths


def output_names(paths: Sequence[Input]) -> Dict[Input, str]:
  """A unique, file-system-safe output name per input (the stem; parent folders prefixed
  for inputs that share a stem)."""
  def clean(text):
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text).lstrip(".") or "face"

  def parents(p):
    if isinstance(p, str):   # a URL: the folders of its path
      return pathlib.PurePosixPath(p.split("://", 1)[1]).parent.parts[-2:]
    return p.resolve().parent.parts[-2:]

  by_stem: Dict[str, List[Input]] = {}
  for p in paths:
    by_stem.setdefault(clean(pathlib.PurePosixPath(str(p)).stem), []).append(p)
  names = {}
  for stem, group in by_stem.items():
    if len(group) == 1:
      names[group[0]] = stem
      continue
    for p in group:
      parts = [clean(x) for x in parents(p)] + [stem]
      names[p] = "_".join(parts)
    if len(set(names[p] for p in group)) < len(group):  # still clashing: number them
      for k, p in enumerate(group):
        names[p] = f"{stem}_{k}"
  return names


def photo_done(output_dir: Union[pathlib.Path, str], name: str, formats: Sequence[str],
               all_faces: bool) -> bool:
  """Whether a photo's outputs are complete in `output_dir` (local, or remote: `storage`).

  Args:
    name: the photo's output name (`output_names`).
    formats: the files of each face (`writer.exported_formats`).
    all_faces: the photo's faces are ``NAME_face0, NAME_face1, ...`` (their count is in the
      first face's report), else one face ``NAME``.
  """
  if not all_faces:
    return writer.outputs_complete(output_dir, name, formats)
  try:
    first = json.loads(storage.read_text(storage.join(str(output_dir), f"{name}_face0.json")))
    count = int(first["extra"]["faces_in_photo"])
  except (OSError, ValueError, KeyError, TypeError):
    return False
  return all(writer.outputs_complete(output_dir, f"{name}_face{k}", formats)
             for k in range(count))


class OutputError(FaceGCNError):
  """The output folder cannot be written (read-only, disk full, no permission): the run stops."""


class Interrupted(KeyboardInterrupt):
  """SIGINT or SIGTERM arrived; `signum` says which."""

  def __init__(self, signum: int = signal.SIGINT):
    super().__init__(signal.Signals(signum).name)
    self.signum = signum


@contextlib.contextmanager
def interrupt_on_signals(signums=(signal.SIGINT, signal.SIGTERM)):
  """Within the block, the given signals raise `Interrupted` like Ctrl-C raises
  KeyboardInterrupt, so `run` can stop cleanly. Main thread only (a front end's job)."""
  def handler(signum, frame):
    del frame
    raise Interrupted(signum)

  previous = {s: signal.signal(s, handler) for s in signums}
  try:
    yield
  finally:
    for s, old in previous.items():
      signal.signal(s, old)


# Exit codes of a batch run (scripts/infer.py).
EXIT_OK = 0
EXIT_ALL_FAILED = 1
EXIT_OUTPUT_ERROR = 74      # EX_IOERR: the output folder cannot be written
EXIT_INTERRUPTED = {signal.SIGINT: 130, signal.SIGTERM: 143}


@dataclasses.dataclass
class RunSummary:
  """What a batch run did.

  Attributes:
    done: (face, seconds) written.
    skipped: (input or face, reason): outputs exist, claimed by another run, odd entries.
    failed: (input or face, one-line reason).
    interrupted: faces in flight when the run was stopped (nothing of theirs is final).
    stopped: why the run stopped early ("" if it did not): a signal or an output error.
    signum: the signal that stopped it, if one did (else a stop is an output error).
  """
  done: List[Tuple[str, float]] = dataclasses.field(default_factory=list)
  skipped: List[Tuple[str, str]] = dataclasses.field(default_factory=list)
  failed: List[Tuple[str, str]] = dataclasses.field(default_factory=list)
  interrupted: List[str] = dataclasses.field(default_factory=list)
  stopped: str = ""
  signum: Optional[int] = None

  @property
  def all_failed(self) -> bool:
    return bool(self.failed) and not self.done and not self.skipped

  def exit_code(self) -> int:
    """130 / 143 after SIGINT / SIGTERM, 74 when the output folder failed, 1 when every
    input failed, else 0."""
    if self.signum is not None:
      return EXIT_INTERRUPTED.get(self.signum, 128 + int(self.signum))
    if self.stopped:
      return EXIT_OUTPUT_ERROR
    return EXIT_ALL_FAILED if self.all_failed else EXIT_OK

  def table(self) -> str:
    lines = [f"{'input / face':40s} {'result':11s} detail"]
    lines += [f"{name:40s} {'ok':11s} {sec:.1f} s" for name, sec in self.done]
    lines += [f"{name:40s} {'skipped':11s} {reason}" for name, reason in self.skipped]
    lines += [f"{name:40s} {'FAILED':11s} {reason}" for name, reason in self.failed]
    lines += [f"{name:40s} {'interrupted':11s} not written; a re-run redoes it"
              for name in self.interrupted]
    counts = (f"{len(self.done)} done, {len(self.skipped)} skipped, {len(self.failed)} failed"
              + (f", {len(self.interrupted)} interrupted" if self.interrupted else ""))
    lines.append(counts)
    if self.stopped:
      lines.append(f"stopped: {self.stopped}")
    return "\n".join(lines)


def _one_line(err: Exception) -> str:
  text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
  return text if len(text) <= 300 else text[:297] + "..."


# errno values that mean the output folder itself is unusable: stop the run.
_OUTPUT_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EACCES, errno.EPERM}
_OUTPUTS_EXIST = "outputs exist (--overwrite to redo)"


def _output_error(what: str, output_dir: pathlib.Path, err: OSError) -> OutputError:
  return OutputError(f"cannot write {what} '{output_dir}': {err.strerror or err}")


def check_output_dir(output_dir: pathlib.Path) -> None:
  """Creates `output_dir` if needed and proves it writable.

  Raises:
    OutputError: one line naming the folder and the reason.
  """
  try:
    output_dir.mkdir(parents=True, exist_ok=True)
    fd, probe = tempfile.mkstemp(prefix=".facegcn-probe-", dir=output_dir)
    os.close(fd)
    os.unlink(probe)
  except OSError as err:
    raise _output_error("to the output folder", output_dir, err) from None


@dataclasses.dataclass
class _Pending:
  photo: PreparedPhoto
  index: int          # the face's index in photo.faces
  name: str           # the face's output name
  photo_name: str     # the photo's output name (its claim)
  start: float
  renders: Optional[overlay.AlignedRenders] = None   # once reconstructed


def _reconstruct_isolating_failures(reconstructor: Reconstructor, batch: List[_Pending],
                                    summary: RunSummary,
                                    progress: Optional[Progress] = None
                                    ) -> List[Tuple[_Pending, FaceResult]]:
  """Reconstructs a batch; if it fails as a whole, retries face by face."""
  names = [p.name for p in batch]
  on_stage = None if progress is None else (lambda stage: progress.stage(names, stage))
  try:
    results = reconstructor.reconstruct_faces(
        [p.photo for p in batch], [p.index for p in batch], names,
        [{"faces_in_photo": len(p.photo.faces)} for p in batch], on_stage=on_stage)
    return list(zip(batch, results))
  except INPUT_ERRORS as err:
    if len(batch) == 1:
      summary.failed.append((batch[0].name, _one_line(err)))
      return []
  out = []
  for item in batch:
    out.extend(_reconstruct_isolating_failures(reconstructor, [item], summary, progress))
  return out


class _Claims:
  """The claims a run holds, each released once its photo's faces are all settled."""

  def __init__(self, output_dir: pathlib.Path):
    self.output_dir = output_dir
    self.held: Dict[str, claims_lib.Claim] = {}
    self.left: Dict[str, int] = {}

  def take(self, name: str) -> str:
    """Claims a photo's name: "" on success, else why it is skipped."""
    claim, reason = claims_lib.try_claim(self.output_dir, name)
    if claim is not None:
      self.held[name] = claim
    return reason

  def expect(self, name: str, faces: int) -> None:
    """Photo `name` has `faces` faces to settle before its claim goes."""
    self.left[name] = faces

  def settle(self, name: str) -> None:
    """One more face of photo `name` is written, failed or given up."""
    self.left[name] -= 1
    if self.left[name] <= 0:
      self.release(name)

  def release(self, name: str) -> None:
    self.held.pop(name).release()
    self.left.pop(name, None)

  def release_all(self) -> None:
    for name in list(self.held):
      self.release(name)


def run(inputs: Sequence[Input], output_dir: pathlib.Path, reconstructor: Reconstructor,
        flags=None, progress: bool = True,
        odd_inputs: Sequence[Tuple[str, str]] = (),
        names: Optional[Dict[Input, str]] = None) -> RunSummary:
  """Reconstructs every input; never raises for a bad input (see `RunSummary`).

  Each face's files are written as soon as its batch is done (with ``batch_size`` 1: as
  soon as the face is done). A photo is claimed in the
  output folder before it is prepared (`claims`), so a second run on the same folder skips
  it while this run lives. Ctrl-C (or `Interrupted`, see `interrupt_on_signals`) stops the
  run between two steps: finished faces stay, the faces in flight are reported as
  interrupted, and the summary says so. An unwritable output folder (read-only, disk full)
  stops the run with one line.

  Args:
    inputs: photo paths (`scan_inputs(...).paths`; URLs are read through `storage`).
    output_dir: where the files go (a local folder).
    reconstructor: the run's `Reconstructor`.
    flags: the run's flags, recorded in each report.
    progress: report progress on stderr (`progress.Progress`: a bar on a terminal, else
      one line per face and stage, with an ETA).
    odd_inputs: (entry, reason) to report as skipped (`scan_inputs(...).odd`).
    names: each input's output name (default `output_names(inputs)`; a run over part of a
      larger input set passes the names of the whole set).
  """
  settings = reconstructor.settings
  output_dir = pathlib.Path(output_dir)
  summary = RunSummary(skipped=list(odd_inputs))
  inputs = list(dict.fromkeys(storage.as_path(p) for p in inputs))   # each photo once
  names = output_names(inputs) if names is None else names
  pending: List[_Pending] = []
  in_flight: List[str] = []
  held = _Claims(output_dir)
  bar = Progress(len(inputs), enabled=progress)
  faces_left: Dict[str, int] = {}
  # --all_faces: each photo's finished faces, for its one whole-photo overlay.
  photo_faces: Dict[str, list] = {}

  # The files a face gets: no `head` files without the ICT head (a BFM run).
  formats = writer.exported_formats(settings.formats,
                                    reconstructor.components.head_model is not None)

  def done_already(name: str) -> bool:
    return not settings.overwrite and photo_done(output_dir, name, formats, settings.all_faces)

  def settle(item: _Pending, ok: bool):
    in_flight.remove(item.name)
    held.settle(item.photo_name)
    bar.face(ok)
    faces_left[item.photo_name] -= 1
    if ok and settings.all_faces and "png" in settings.formats:
      photo_faces.setdefault(item.photo_name, []).append(item)
    if faces_left[item.photo_name] == 0:
      _write_photo_overlay(item.photo_name, photo_faces.pop(item.photo_name, []))
      bar.photo_settled()

  def _write_photo_overlay(name: str, faces):
    """NAME_overlay.png: the whole photo with every face that was reconstructed."""
    if not faces:
      return
    photo = faces[0].photo.photo
    pasted = overlay.paste_faces(photo, [f.renders for f in faces],
                                 [f.photo.faces[f.index].aligned.transform for f in faces])
    try:
      atomic.write_image(output_dir / f"{name}_overlay.png", pasted)
    except OSError as err:
      if err.errno in _OUTPUT_ERRNOS:
        raise _output_error(f"{name}'s overlay to", output_dir, err) from None
      summary.failed.append((f"{name}_overlay.png", _one_line(err)))

  def flush():
    batch = list(pending)
    pending.clear()
    results = _reconstruct_isolating_failures(reconstructor, batch, summary, bar)
    finished = {item.name for item, _ in results}
    for item in batch:  # the faces that failed as a whole
      if item.name not in finished:
        settle(item, ok=False)
    for item, result in results:
      bar.stage([item.name], "export")
      result.extra["seconds"] = round(time.perf_counter() - item.start, 3)
      item.renders = result.renders
      try:
        result.save(output_dir, settings.formats, settings.texture_size, flags=flags)
        summary.done.append((item.name, time.perf_counter() - item.start))
        ok = True
      except OSError as err:
        if err.errno in _OUTPUT_ERRNOS:
          raise _output_error(f"{item.name}'s files to", output_dir, err) from None
        summary.failed.append((item.name, _one_line(err)))
        ok = False
      except INPUT_ERRORS as err:
        summary.failed.append((item.name, _one_line(err)))
        ok = False
      settle(item, ok)

  def skip(name: str, reason: str):
    summary.skipped.append((name, reason))
    bar.photo_settled()

  try:
    check_output_dir(output_dir)
    for path in inputs:
      name = names[path]
      if done_already(name):
        skip(name, _OUTPUTS_EXIST)
        continue
      try:
        reason = held.take(name)
      except OSError as err:
        raise _output_error("to the output folder", output_dir, err) from None
      if reason:
        skip(name, reason)
        continue
      if done_already(name):  # finished by another run between the check and the claim
        held.release(name)
        skip(name, _OUTPUTS_EXIST)
        continue
      start = time.perf_counter()
      in_flight.append(name)
      bar.stage([name], "prepare")
      try:
        prepared = reconstructor.prepare(path)
      except INPUT_ERRORS as err:
        summary.failed.append((str(path), _one_line(err)))
        in_flight.remove(name)
        held.release(name)
        bar.face(ok=False)
        bar.photo_settled()
        continue
      in_flight.remove(name)
      count = len(prepared.faces)
      face_names = [f"{name}_face{k}" for k in range(count)] if settings.all_faces else [name]
      held.expect(name, len(face_names))
      faces_left[name] = len(face_names)
      for k, face_name in enumerate(face_names):
        pending.append(_Pending(prepared, k, face_name, name, start))
        in_flight.append(face_name)
        if len(pending) >= settings.batch_size:
          flush()
    if pending:
      flush()
  except KeyboardInterrupt as err:
    summary.signum = getattr(err, "signum", signal.SIGINT)
    summary.stopped = f"{signal.Signals(summary.signum).name} received"
    summary.interrupted = list(in_flight)
  except OutputError as err:
    summary.stopped = str(err)
    summary.interrupted = list(in_flight)
  finally:
    bar.close()
    held.release_all()
  return summary


__all__ = ["EXIT_ALL_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_OUTPUT_ERROR", "INPUT_ERRORS",
           "Input", "InputScan", "Interrupted", "OutputError", "RunSummary", "check_output_dir",
           "photo_done",
           "read_file_list",
           "interrupt_on_signals", "output_names", "resolve_inputs", "run", "scan_inputs"]
