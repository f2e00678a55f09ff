"""``fit_data`` as a Beam pipeline: TFRecord shards -> the coarse cache the GCN trainer reads.

The records are read with Beam's TFRecord IO, grouped per shard into batches of
``batch_size`` and given to the same coarse function as the single-process path
(`training.coarse_fits.CoarseSettings.build`: the fitter, an R-Net's regression, or a fit
started from it). Each fitted batch is written at once as a part file of its shard's cache
(`coarse_fits.part_path`), and at the end of the run the parts are merged into the
``<shard>.npz`` files `coarse_fits.load_coarse_coeffs` reads. A re-run skips every record in a
shard's file or parts, so a run that stopped loses at most the batches in flight. A batch that
fails is retried record by record; a record that still fails goes to ``failures.txt`` in the
cache folder (``path<TAB>reason``).
"""

import dataclasses
from typing import Optional

import apache_beam as beam
import numpy as np
import tensorflow as tf

from facegcn_tf import storage
from facegcn_tf.data import dataset
from facegcn_tf.scale import options as options_lib
from facegcn_tf.training import coarse_fits

NAMESPACE = "fit"
FAILED = "failed"


def record_path(record: bytes) -> str:
  """A serialised record's ``source/path``."""
  example = tf.train.Example.FromString(record)
  return example.features.feature["source/path"].bytes_list.value[0].decode("utf-8")


class CoarseFitFn(beam.DoFn):
  """(shard, [records]) -> (shard, records fitted), writing a cache part; failures tagged."""

  def __init__(self, settings: coarse_fits.CoarseSettings, cache_dir: str, mask_key: str):
    super().__init__()
    self.settings = settings
    self.cache_dir = cache_dir
    self.mask_key = mask_key
    self.coarse_fn = self.model = None

  def setup(self):
    self.coarse_fn, self.model = self.settings.build()

  def process(self, element):
    shard, records = element
    try:
      arrays = coarse_fits.parse_records(list(records), self.mask_key)
    except Exception as err:  # pylint: disable=broad-except
      for record in records:
        yield beam.pvalue.TaggedOutput(FAILED, (record_path(record),
                                                dataset.failure_reason(err)))
      return
    yield from self._fit(shard, arrays, list(range(len(arrays[0]))))

  def _fit(self, shard, arrays, todo):
    paths, images, landmarks, masks = arrays
    try:
      values, photo, landmark = self.coarse_fn(images[todo], landmarks[todo], masks[todo])
      if not np.all(np.isfinite(values)):
        raise ValueError("the coarse fit is not finite")
    # One bad record must not stop the run: its batch is retried record by record.
    except Exception as err:  # pylint: disable=broad-except
      if len(todo) > 1:
        for i in todo:
          yield from self._fit(shard, arrays, [i])
        return
      beam.metrics.Metrics.counter(NAMESPACE, "failed").inc()
      yield beam.pvalue.TaggedOutput(FAILED, (paths[todo[0]], dataset.failure_reason(err)))
      return
    names = [paths[i] for i in todo]
    part = coarse_fits.part_path(self.cache_dir, shard, names)
    storage.makedirs(storage.dirname(part))
    coarse_fits.write_cache_file(
        part, self.model.name, self.model.layout, names, list(values),
        None if photo is None else [float(x) for x in photo],
        None if landmark is None else [float(x) for x in landmark])
    beam.metrics.Metrics.counter(NAMESPACE, "fitted").inc(len(names))
    yield shard, len(names)


def _batches(shard: str, records, batch_size: int):
  """(shard, [records]) in batches of `batch_size`, sorted by path (as the shard was written)."""
  records = sorted(records, key=record_path)
  for start in range(0, len(records), batch_size):
    yield shard, records[start:start + batch_size]


@dataclasses.dataclass
class FitSummary:
  """What a Beam coarse run did."""
  cache_dir: str
  fitted: int
  already_done: int
  failed: int
  shards: int


def fit(pattern: str, settings: coarse_fits.CoarseSettings, model,
        options: beam.options.pipeline_options.PipelineOptions,
        cache_dir: Optional[str] = None, batch_size: int = 8,
        mask_key: str = "skin_mask") -> FitSummary:
  """The coarse stage of every record of the shards matching `pattern`, on `options`' runner.

  Args:
    pattern: glob of ``prepare_data`` TFRecord shards.
    settings: what to fit with (built on each worker).
    model: the face model (its name and layout are checked against existing caches).
    options: Beam pipeline options (`options.pipeline_options`).
    cache_dir: output folder (default `coarse_fits.default_cache_dir`).
    batch_size: records fitted together.
    mask_key: record mask weighing the photometric loss.
  """
  if mask_key not in coarse_fits.MASK_KEYS:
    raise ValueError(f"mask_key must be one of {coarse_fits.MASK_KEYS}, got '{mask_key}'")
  files = sorted(storage.absolute(f) for f in tf.io.gfile.glob(pattern))
  if not files:
    raise FileNotFoundError(f"no TFRecord files match '{pattern}'")
  cache_dir = cache_dir or coarse_fits.default_cache_dir(pattern, model.name)
  storage.makedirs(cache_dir)
  done = {storage.basename(f): coarse_fits.cached_paths(cache_dir, f, model.layout, model.name)
          for f in files}
  already = sum(len(v) for v in done.values())
  by_name = {storage.basename(f): f for f in files}
  name, layout = model.name, model.layout   # not the model itself: the pipeline is pickled

  def build(pipeline):
    records = (pipeline | "Shards" >> beam.Create(files)
               | "Read" >> beam.io.ReadAllFromTFRecord(with_filename=True)
               | "Key" >> beam.Map(lambda item: (storage.basename(item[0]), item[1]))
               | "NotDone" >> beam.Filter(lambda item: record_path(item[1]) not in done[item[0]]))
    results = (records | "ByShard" >> beam.GroupByKey()
               | "Batch" >> beam.FlatMap(lambda item: _batches(item[0], item[1], batch_size))
               | "Spread" >> beam.Reshuffle()
               | "Fit" >> beam.ParDo(CoarseFitFn(settings, cache_dir, mask_key)).with_outputs(
                   FAILED, main="fitted"))
    shards = pipeline | "AllShards" >> beam.Create([(name, 0) for name in by_name])
    ({"fitted": results.fitted, "shard": shards} | "Join" >> beam.CoGroupByKey()
     | "Merge" >> beam.Map(lambda item: coarse_fits.merge_parts(
         cache_dir, by_name[item[0]], layout, name)))
    options_lib.write_failures(
        results[FAILED] | "FailureLines" >> beam.Map(
            lambda item: options_lib.dead_letter_line(*item)), cache_dir)

  counts = options_lib.run_pipeline(build, options, NAMESPACE, ("fitted", "failed"))
  return FitSummary(cache_dir=cache_dir, fitted=counts["fitted"], already_done=already,
                    failed=counts["failed"], shards=len(files))
