"""``prepare_data`` as a Beam pipeline: photos -> aligned-face TFRecord shards + manifests.

The shards are those of the single-process writer (`data.dataset.write_dataset`): the same
sorted inputs per shard, ``faces-NNNNN.tfrecord`` + ``faces-NNNNN.json``, the same records
(`tfrecords.encode_example` of `preprocess.FacePreprocessor.prepare_file`). A record's order
inside its shard may differ (Beam does not keep it); readers key records by ``source/path``.

Resume: shards whose manifest matches are left alone (`dataset.plan_shards`), the others are
redone. Each redone shard is written by its own ``WriteToTFRecord`` (one file; Beam writes to a
temporary folder and renames at the end) and its manifest after it, so a shard is complete
exactly when its manifest exists. The pipeline graph holds one write per redone shard, so keep
the shard count in the hundreds (``--shard_size``) on a cluster.
"""

import dataclasses
import os
from typing import Iterable, Optional

import apache_beam as beam

from facegcn_tf import storage
from facegcn_tf.data import dataset
from facegcn_tf.data import tfrecords
from facegcn_tf.scale import options as options_lib
from facegcn_tf.training.preparation import PrepareSettings

NAMESPACE = "prepare"
FAILED = "failed"


class PrepareFaceFn(beam.DoFn):
  """(shard, photo name) -> (shard, (name, serialized record, feature size)); failures tagged.

  The detector, landmark and identity networks load once per worker, in `setup`.
  """

  def __init__(self, input_dir: str, settings: PrepareSettings):
    super().__init__()
    self.input_dir = input_dir
    self.settings = settings
    self.preprocessor = self.feature_fn = None

  def setup(self):
    self.preprocessor, self.feature_fn, _ = self.settings.build()

  def process(self, element):
    index, name = element
    try:
      face = self.preprocessor.prepare_file(storage.join(self.input_dir, name), name=name)
      vector = (None if self.feature_fn is None
                else dataset.face_features(self.feature_fn, [face])[0])
      record = tfrecords.encode_example(face, vector)
    # One bad photo must not stop the run: any error becomes its dead-letter reason.
    except Exception as err:  # pylint: disable=broad-except
      beam.metrics.Metrics.counter(NAMESPACE, "failed").inc()
      yield beam.pvalue.TaggedOutput(FAILED, (index, (name, dataset.failure_reason(err))))
      return
    beam.metrics.Metrics.counter(NAMESPACE, "done").inc()
    yield index, (name, record, 0 if vector is None else int(vector.size))


class _WriteManifestFn(beam.DoFn):
  """(shard, {done, failed, written}) -> the shard's manifest, written after its TFRecord."""

  def __init__(self, plans, config):
    super().__init__()
    self.plans = {plan.index: plan for plan in plans}
    self.config = config

  def process(self, element):
    index, groups = element
    plan = self.plans[index]
    done = sorted(name for name, _ in groups["done"])
    dims = {dim for _, dim in groups["done"]}
    failed = sorted((dataset.Failure(name, reason) for name, reason in groups["failed"]),
                    key=lambda f: f.path)
    if len(dims) > 1:
      raise ValueError(f"shard {index}: the feature size changed between faces ({sorted(dims)})")
    dataset.write_manifest(plan, self.config, done, failed, dims.pop() if dims else 0)
    yield index


@dataclasses.dataclass
class PrepareSummary:
  """What a Beam preparation did (shards: all of them; resumed: left as they were)."""
  shards: int
  resumed: int
  done: int
  failed: int
  skipped: int
  removed_stale: list


def prepare(input_dir: str, output_dir: str, settings: PrepareSettings,
            options: beam.options.pipeline_options.PipelineOptions, shard_size: int = 256,
            max_images: Optional[int] = None, skip: Iterable[str] = (),
            recursive: bool = True) -> PrepareSummary:
  """Photos of `input_dir` -> shards in `output_dir` on the runner `options` name.

  Same arguments and output as `data.dataset.prepare_directory`; the failures also go to
  ``<output_dir>/failures.txt`` (``photo<TAB>reason``, this run's redone shards only).
  """
  names = dataset.select_images(input_dir, recursive, max_images)
  config = dataset.normalise_config(settings.manifest_config())
  skip_set = {str(x) for x in skip}
  plans = dataset.plan_shards(names, output_dir, shard_size, skip_set, config)
  redo = [plan for plan in plans if plan.resumed is None]
  todo = [(plan.index, name) for plan in redo for name in plan.names if name not in skip_set]
  position = {plan.index: k for k, plan in enumerate(redo)}

  def build(pipeline):
    items = options_lib.read_items(pipeline, items_file, "Photos")
    results = items | "Prepare" >> beam.ParDo(PrepareFaceFn(input_dir, settings)).with_outputs(
        FAILED, main="done")
    written = []
    if redo:
      parts = results.done | "ByShard" >> beam.Partition(
          lambda item, n: position[item[0]], len(redo))
      for k, plan in enumerate(redo):
        files = (parts[k] | f"Records{plan.index}" >> beam.Map(lambda item: item[1][1])
                 | f"Write{plan.index}" >> beam.io.WriteToTFRecord(
                     os.path.splitext(plan.tfrecord)[0], file_name_suffix=".tfrecord",
                     num_shards=1, shard_name_template=""))
        written.append(files | f"Key{plan.index}" >> beam.Map(
            lambda path, index=plan.index: (index, path)))
    written = (written | "Written" >> beam.Flatten()) if written else (
        pipeline | "NoneWritten" >> beam.Create([]))
    done = results.done | "DoneNames" >> beam.Map(lambda item: (item[0], (item[1][0], item[1][2])))
    ({"done": done, "failed": results[FAILED], "written": written}
     | "Join" >> beam.CoGroupByKey()
     | "Manifests" >> beam.ParDo(_WriteManifestFn(redo, config)))
    options_lib.write_failures(
        results[FAILED] | "FailureLines" >> beam.Map(
            lambda item: options_lib.dead_letter_line(*item[1])), output_dir)

  items_file = options_lib.write_items(todo, output_dir)
  counts = options_lib.run_pipeline(build, options, NAMESPACE, ("done", "failed"), items_file)
  removed = dataset.remove_stale_shards(output_dir, dataset.DEFAULT_PREFIX, len(plans))
  return PrepareSummary(shards=len(plans), resumed=len(plans) - len(redo), done=counts["done"],
                        failed=counts["failed"], skipped=sum(len(p.skipped) for p in redo),
                        removed_stale=removed)
