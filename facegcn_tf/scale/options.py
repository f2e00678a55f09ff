"""Runner choice and pipeline options shared by the Beam pipelines, and the dead-letter file."""

import json
import shlex
import uuid
from typing import Dict, Iterable, Optional, Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.runners.portability.fn_api_runner import fn_runner

from facegcn_tf import storage
from facegcn_tf.scale import LOCAL_RUNNER

# `--runner` values of the scripts: "local" is the single-process path (no Beam).
LOCAL = LOCAL_RUNNER
BEAM_RUNNERS = ("DirectRunner", "FlinkRunner", "SparkRunner", "DataflowRunner", "PortableRunner")
FAILURES_FILE = "failures.txt"


def check_runner(runner: str) -> str:
  """`runner` if it is "local" or a Beam runner name; ValueError (one line) otherwise."""
  if runner != LOCAL and runner not in BEAM_RUNNERS:
    raise ValueError(f"--runner must be {LOCAL} or one of {', '.join(BEAM_RUNNERS)}, "
                     f"got '{runner}'")
  return runner


def pipeline_options(runner: str, beam_options: str = "") -> PipelineOptions:
  """Beam options for `runner` plus the pass-through flags in `beam_options`.

  Args:
    runner: a Beam runner name (`BEAM_RUNNERS`).
    beam_options: further Beam flags in one shell-quoted string, e.g.
      ``"--flink_master=host:8081 --environment_type=DOCKER"``.
  """
  check_runner(runner)
  if runner == LOCAL:
    raise ValueError("the local runner is the single-process path, not a Beam pipeline")
  argv = [f"--runner={runner}"] + shlex.split(beam_options or "")
  return PipelineOptions(argv)


def dead_letter_line(item: str, reason: str) -> str:
  """One line of the failures file: the item, a tab, the one-line reason."""
  return f"{item}\t{' '.join(str(reason).split())}"


def write_failures(lines: beam.PCollection, folder: str) -> beam.PCollection:
  """Writes the dead-letter lines as ``<folder>/failures.txt`` (empty when nothing failed)."""
  return lines | "WriteFailures" >> beam.io.WriteToText(
      storage.join(folder, FAILURES_FILE), shard_name_template="", num_shards=1)


def read_failures(folder: str) -> Dict[str, str]:
  """The failures file of a finished run: {item: reason} ({} when there is none)."""
  path = storage.join(folder, FAILURES_FILE)
  if not storage.is_file(path):
    return {}
  out = {}
  for line in storage.read_text(path).splitlines():
    item, _, reason = line.partition("\t")
    if item:
      out[item] = reason
  return out


def write_items(items: Sequence, folder: str) -> str:
  """Writes a run's work items (JSON-able) to a hidden file in `folder`, one a line.

  The pipeline reads them with `read_items` instead of carrying millions of them in its graph
  (``beam.Create``); the caller deletes the file when the run ends.
  """
  storage.makedirs(folder)
  path = storage.join(folder, f".beam-items-{uuid.uuid4().hex}.jsonl")
  with storage.open_write(path, "w") as f:
    for item in items:
      f.write(json.dumps(item) + "\n")
  return path


def read_items(pipeline, path: str, label: str = "Items") -> beam.PCollection:
  """The items of `write_items` (lists come back as tuples), spread over the workers."""
  return (pipeline | f"Read{label}" >> beam.io.ReadFromText(path)
          | f"Parse{label}" >> beam.Map(lambda line: tuple(json.loads(line)))
          | f"Spread{label}" >> beam.Reshuffle())


def counters(result, namespace: str, names: Iterable[str]) -> Dict[str, int]:
  """The committed values of a finished pipeline's counters (0 when a counter never moved)."""
  out = {name: 0 for name in names}
  query = result.metrics().query(beam.metrics.MetricsFilter().with_namespace(namespace))
  for counter in query["counters"]:
    name = counter.key.metric.name
    if name in out:
      out[name] += int(counter.committed or counter.attempted or 0)
  return out


def run_pipeline(build, options: PipelineOptions, summary_namespace: Optional[str] = None,
                 counter_names: Iterable[str] = (), items_file: Optional[str] = None
                 ) -> Dict[str, int]:
  """Builds the pipeline with `build(pipeline)`, runs it to the end, returns its counters.

  `items_file` (`write_items`) is deleted when the run ends, however it ends.
  """
  try:
    return _run(build, options, summary_namespace, counter_names)
  finally:
    if items_file and storage.exists(items_file):
      storage.remove(items_file)


def _run(build, options, summary_namespace, counter_names):
  runner = None
  if options.view_as(StandardOptions).runner == "DirectRunner":
    # The DirectRunner's batch engine, asked for directly: the DirectRunner itself first tries
    # the Prism runner, whose binary it would download (nothing may download at run time).
    runner = fn_runner.FnApiRunner()
  pipeline = beam.Pipeline(runner=runner, options=options)
  build(pipeline)
  result = pipeline.run()
  result.wait_until_finish()
  return counters(result, summary_namespace, counter_names) if summary_namespace else {}
