"""Scale-out: ``prepare_data``, ``fit_data`` and batch ``infer`` as Apache Beam pipelines.

Each pipeline runs the same per-item code as the single-process path (the shard planning and
manifests of `data.dataset`, the coarse functions of `training.coarse_fits`, the batch runner of
`pipeline.batch`), so both paths produce the same records, fits and files:

* `prepare`: photos -> ``faces-NNNNN.tfrecord`` shards (Beam's TFRecord IO) + manifests.
* `fit`: TFRecord shards -> the coarse cache (one ``<shard>.npz`` per shard).
* `infer`: photos -> reconstructed faces in an output folder.

Models load once per worker (``DoFn.setup``); an item that fails goes to a dead-letter output,
written as ``failures.txt`` (``item<TAB>one-line reason``); a re-run skips finished items.
This is the top stage: it may import every other one, nothing imports it.
"""

# The scripts' `--runner` and `--beam_options` (no Beam import here: the local path needs none).
LOCAL_RUNNER = "local"
RUNNER_HELP = ("local: this process (default); DirectRunner (Beam, in-process), FlinkRunner, "
               "SparkRunner, DataflowRunner: an Apache Beam pipeline (README: 'Running large "
               "batches').")
BEAM_OPTIONS_HELP = ("Further Beam pipeline flags, one shell-quoted string (e.g. "
                     "\"--flink_master=host:8081 --environment_type=EXTERNAL\").")
