"""Batch ``infer`` as a Beam pipeline: photos (a folder, a glob or a file list) -> faces.

Each worker builds one `pipeline.Reconstructor` (``DoFn.setup``: every model once) and runs
`pipeline.batch.run` on batches of ``Settings.batch_size`` photos, so a face's files, its
resume rule (done when its JSON exists; a re-run skips it), the claims that keep two workers
off one photo and the failure isolation are those of the single-process run. Output names are
chosen over the whole input set first (`batch.output_names`), as the single-process run does.
Photos and faces that fail go to ``<output_dir>/failures.txt`` (``item<TAB>reason``).
"""

import dataclasses
import pathlib
from typing import Dict, Optional, Sequence, Tuple

import apache_beam as beam

from facegcn_tf.assets import loaders
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

  def setup(self):
    self.reconstructor = Reconstructor(self.settings)

  def process(self, items):
    paths = [pathlib.Path(path) for path, _ in items]
    names = {pathlib.Path(path): name for path, name in items}
    summary = batch_lib.run(paths, pathlib.Path(self.output_dir), self.reconstructor,
                            flags=self.flags, progress=False, names=names)
    if summary.stopped:   # the output folder failed, or a signal: the runner retries / stops
      raise batch_lib.OutputError(summary.stopped)
    for what, rows in (("done", summary.done), ("skipped", summary.skipped)):
      beam.metrics.Metrics.counter(NAMESPACE, what).inc(len(rows))
    beam.metrics.Metrics.counter(NAMESPACE, "failed").inc(len(summary.failed))
    for item, reason in summary.failed:
      yield beam.pvalue.TaggedOutput(FAILED, options_lib.dead_letter_line(item, reason))
    yield from (name for name, _ in summary.done)


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


def infer(paths: Sequence[pathlib.Path], output_dir: str, settings: Settings,
          options: beam.options.pipeline_options.PipelineOptions, flags: Optional[Dict] = None,
          odd_inputs: Sequence[Tuple[str, str]] = ()) -> InferSummary:
  """Reconstructs every photo of `paths` into `output_dir` on `options`' runner.

  Odd entries (`batch.scan_inputs(...).odd`) are counted as skipped, as in the plain run.
  """
  paths = list(dict.fromkeys(pathlib.Path(p) for p in paths))
  names = batch_lib.output_names(paths)
  batch_lib.check_output_dir(pathlib.Path(output_dir))
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
