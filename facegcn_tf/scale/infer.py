"""Batch ``infer`` as a Beam pipeline: photos (a folder, a glob or a file list) -> faces.

Each worker builds one `pipeline.Reconstructor` (``DoFn.setup``: every model once) and runs
`pipeline.batch.run` on batches of ``Settings.batch_size`` photos, so a face's files, its
resume rule (done when its JSON exists; a re-run skips it), the claims that keep two workers
off one photo and the failure isolation are those of the single-process run. Output names are
chosen over the whole input set first (`batch.output_names`), as the single-process run does.
Photos and faces that fail go to ``<output_dir>/failures.txt`` (``item<TAB>reason``).

Photos and the output folder may be remote (``gs://...``, see `storage`): photos are read
from there, and with a remote output folder each worker writes a batch's files into a local
scratch folder and uploads them when the batch is done, every face's JSON after its other
files, so a face is complete exactly when its JSON is there. On a remote folder there are no
claims (no atomic create): a photo the runner retries is redone, and its files replaced.
"""

import dataclasses
import os
import pathlib
import tempfile
import uuid
from typing import Dict, List, Optional, Sequence, Tuple

import apache_beam as beam

from facegcn_tf import storage
from facegcn_tf.assets import loaders
from facegcn_tf.export import writer
from facegcn_tf.morphable import load_model
from facegcn_tf.pipeline import batch as batch_lib
from facegcn_tf.pipeline import factory
from facegcn_tf.pipeline.reconstructor import Reconstructor
from facegcn_tf.pipeline.settings import Settings
from facegcn_tf.scale import options as options_lib

NAMESPACE = "infer"
FAILED = "failed"


class ReconstructFn(beam.DoFn):
  """[(photo path, output name)] -> reconstructed faces written; failures tagged."""

  def __init__(self, settings: Settings, output_dir: str, flags: Optional[Dict]):
    super().__init__()
    self.settings = settings
    self.output_dir = output_dir
    self.flags = flags
    self.reconstructor = None
    self.formats = ()

  def setup(self):
    self.reconstructor = Reconstructor(self.settings)
    self.formats = writer.exported_formats(
        self.settings.formats, self.reconstructor.components.head_model is not None)

  def process(self, items):
    if not storage.is_remote(self.output_dir):
      summary = self._run(items, pathlib.Path(self.output_dir))
    else:
      todo = [(path, name) for path, name in items if self.settings.overwrite
              or not batch_lib.photo_done(self.output_dir, name, self.formats,
                                          self.settings.all_faces)]
      beam.metrics.Metrics.counter(NAMESPACE, "skipped").inc(len(items) - len(todo))
      with tempfile.TemporaryDirectory(prefix="facegcn-infer-") as scratch:
        summary = self._run(todo, pathlib.Path(scratch))
        upload_outputs(scratch, self.output_dir)
    for what, rows in (("done", summary.done), ("skipped", summary.skipped)):
      beam.metrics.Metrics.counter(NAMESPACE, what).inc(len(rows))
    beam.metrics.Metrics.counter(NAMESPACE, "failed").inc(len(summary.failed))
    for item, reason in summary.failed:
      yield beam.pvalue.TaggedOutput(FAILED, options_lib.dead_letter_line(item, reason))
    yield from (name for name, _ in summary.done)

  def _run(self, items, output_dir: pathlib.Path) -> batch_lib.RunSummary:
    paths = [storage.as_path(path) for path, _ in items]
    names = {storage.as_path(path): name for path, name in items}
    summary = batch_lib.run(paths, output_dir, self.reconstructor, flags=self.flags,
                            progress=False, names=names)
    if summary.stopped:   # the output folder failed, or a signal: the runner retries / stops
      raise batch_lib.OutputError(summary.stopped)
    return summary


def upload_outputs(scratch: str, output_dir: str) -> List[str]:
  """Copies a batch's files from a local scratch folder to `output_dir`; their names.

  Hidden files (claims, temporary files) stay behind; every JSON goes after the other files,
  so a face whose report is there has all its files there.
  """
  names = [name for name in storage.list_files(scratch)
           if "/" not in name and not name.startswith(".")]
  names.sort(key=lambda name: (name.endswith(".json"), name))
  for name in names:
    storage.copy(os.path.join(scratch, name), storage.join(output_dir, name))
  return names


def check_output_dir(output_dir: str) -> None:
  """`batch.check_output_dir`, for a local or a remote folder (a probe file written and
  deleted).

  Raises:
    OutputError: one line naming the folder and the reason.
  """
  if not storage.is_remote(output_dir):
    batch_lib.check_output_dir(pathlib.Path(output_dir))
    return
  probe = storage.join(output_dir, f".facegcn-probe-{uuid.uuid4().hex}")
  try:
    storage.write_bytes(probe, b"")
    storage.remove(probe)
  except Exception as err:  # pylint: disable=broad-except   (the store's own errors)
    message = " ".join(str(getattr(err, "message", None) or err).split())
    raise batch_lib.OutputError(f"cannot write to the output folder '{output_dir}': "
                                f"{message}") from None


def check_assets(settings: Settings) -> None:
  """Raises before the pipeline starts when a file the workers will load is missing here.

  Loads the face model (and the whole head when ``head`` is exported with ICT) and locates
  the dlib weights on the launcher's asset search path, so a missing BFM file is one error up
  front, not one failure per worker. Checkpoint files are checked by the script's flags.

  Raises:
    AssetNotFoundError: a missing file (the message names it and where it goes).
  """
  loaders.locate_dlib_weights()
  factory.load_head_model(load_model(settings.face_model, settings.model_path), settings)


@dataclasses.dataclass
class InferSummary:
  """What a Beam batch run did (faces done, photos / faces skipped, failed)."""
  done: int
  skipped: int
  failed: int


def infer(paths: Sequence[batch_lib.Input], output_dir: str, settings: Settings,
          options: beam.options.pipeline_options.PipelineOptions, flags: Optional[Dict] = None,
          odd_inputs: Sequence[Tuple[str, str]] = ()) -> InferSummary:
  """Reconstructs every photo of `paths` into `output_dir` on `options`' runner (either may
  be remote, see the module docstring).

  Odd entries (`batch.scan_inputs(...).odd`) are counted as skipped, as in the plain run.
  """
  paths = list(dict.fromkeys(storage.as_path(p) for p in paths))
  names = batch_lib.output_names(paths)
  check_output_dir(output_dir)
  items = [(str(path), names[path]) for path in paths]
  size = settings.batch_size

  def build(pipeline):
    results = (options_lib.read_items(pipeline, items_file, "Photos")
               | "Batch" >> beam.BatchElements(min_batch_size=size, max_batch_size=size)
               | "Reconstruct" >> beam.ParDo(ReconstructFn(settings, output_dir, flags))
               .with_outputs(FAILED, main="done"))
    options_lib.write_failures(results[FAILED], output_dir)

  items_file = options_lib.write_items(items, output_dir)
  counts = options_lib.run_pipeline(build, options, NAMESPACE, ("done", "skipped", "failed"),
                                    items_file)
  return InferSummary(done=counts["done"], skipped=counts["skipped"] + len(odd_inputs),
                      failed=counts["failed"])
