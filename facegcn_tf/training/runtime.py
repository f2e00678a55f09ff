"""The training runtime every trainer shares (R-Net now, the GCN texture model later).

What it does, so that trainers only write a loss:

* **Devices**: ``tf.distribute.MirroredStrategy`` over the GPUs when there is
  more than one, TF's default strategy otherwise (:func:`make_strategy`). A
  host batch is split evenly over the replicas (:func:`distribute_batch`);
  per-replica losses are means over the replica's share, so gradients are
  divided by the number of replicas before Keras sums them.
* **Several machines**: ``make_strategy(multi_worker=True)`` is TF's
  ``MultiWorkerMirroredStrategy`` (the cluster and this worker from ``TF_CONFIG``).
  Every worker reads the same data in the same order and takes its replicas' share
  of each global batch; the chief (task ``chief``, else ``worker`` 0) writes the
  checkpoints, summaries and exports into the run folder, the other workers write
  their (required) checkpoint copies to a private temporary folder, deleted at the
  end, and all restore from the chief's, so the run folder must be shared (a network
  file system).
* **Mixed precision** on GPUs only by default: Keras's ``mixed_float16``
  policy while the model is built (:meth:`TrainingRuntime.policy_scope`) and a
  ``LossScaleOptimizer`` around the optimizer
  (:meth:`TrainingRuntime.wrap_optimizer`). ``RuntimeConfig.mixed_policy =
  "mixed_bfloat16"`` selects bfloat16 instead (CPUs, TPUs; float32's exponent
  range, so no loss scaling).
* **Checkpoints**: one ``tf.train.Checkpoint`` holding the step counter, the
  (fractional) epoch, the runtime's random generator and whatever the trainer
  registers (model, optimizer, the ``tf.data`` iterator, whose state includes
  its shuffle buffer and random seeds), kept by a ``CheckpointManager``
  (every ``checkpoint_every`` steps and at the end). :meth:`restore` resumes
  exactly where the last checkpoint stopped.
* **Crash safety**: a checkpoint's files are written in full (TF writes the
  data under temporary names, renames it into place, then writes the index)
  and fsync-ed before the ``checkpoint`` pointer file moves to it (an atomic
  rename), so a hard kill during a write leaves the previous checkpoint the
  latest (``tests/test_training_kill.py`` kills a run there). :meth:`restore` reads every tensor of a candidate back (checksums
  included) and falls back, with a one-line warning, to the newest complete
  one when the newest is truncated or damaged (e.g. a power cut before the
  disk caught up).
* **NaN guard**: :meth:`TrainingRuntime.minimize` skips the update when the
  loss or a gradient is not finite (with several replicas it cannot skip it:
  the Keras update runs in a cross-replica merge), and :meth:`run` then
  raises :class:`NonFiniteLossError` BEFORE anything else is saved, so the
  last checkpoint on disk is the last good state. A ``check_numerics``
  failure inside the step (e.g. the rasterizer refusing NaN vertices) is
  reported the same way. The in-memory model may still hold side effects
  of the bad step (e.g. BatchNorm statistics updated by the forward pass):
  restore the last checkpoint to continue. With a loss-scale optimizer
  non-finite *gradients* are expected now and then (fp16 overflow) and are
  left to it; a non-finite *loss* still stops the run.
* **TensorBoard**: scalars every ``summary_every`` steps and images every
  ``image_summary_every`` steps (``tf.summary``, in ``<output_dir>/tensorboard``).
* **Progress**: a tqdm bar with the loss.

A step function for :meth:`run` takes one (distributed) batch and returns a
dict: rank-0 tensors are scalars to log (``"loss"`` is required, ``"finite"``
is the guard's flag); entries named ``"images/<tag>"`` are ``[B, H, W, 3]``
images in [0, 1] for image summaries. :meth:`distributed_step` builds such a
function from a per-replica one.
"""

import contextlib
import dataclasses
import glob
import json
import logging
import math
import os
import re
import shutil
import tempfile
import time
import typing
from typing import Callable, Dict, Iterator, Optional, Sequence

import keras
import tensorflow as tf

from facegcn_tf import atomic
from facegcn_tf.errors import FaceGCNError

FINITE_KEY = "finite"
LOSS_KEY = "loss"
IMAGE_PREFIX = "images/"

# Test-only hook, off unless set: with FACEGCN_TEST_PAUSE_IN_CHECKPOINT_WRITE=<step> the
# process writes step <step>'s checkpoint files, creates ``<prefix>.test-paused`` and then
# sleeps forever BEFORE the ``checkpoint`` pointer moves, so that a test can kill -9 it in
# the middle of a checkpoint write (tests/test_training_kill.py).
PAUSE_IN_CHECKPOINT_WRITE_ENV = "FACEGCN_TEST_PAUSE_IN_CHECKPOINT_WRITE"
PAUSE_MARKER_SUFFIX = ".test-paused"


class NonFiniteLossError(FaceGCNError, FloatingPointError):
  """A loss or gradient became NaN/inf; the run stopped before saving anything from it."""


class CheckpointMismatchError(FaceGCNError, ValueError):
  """A checkpoint does not fit the model/optimizer/data of this run."""


class IncompleteCheckpointError(FaceGCNError, ValueError):
  """A checkpoint's files are missing, truncated or damaged (and no complete one is left)."""


MIXED_POLICIES = ("mixed_float16", "mixed_bfloat16")


@dataclasses.dataclass(frozen=True)
class RuntimeConfig:
  """Settings of :class:`TrainingRuntime`.

  Attributes:
    output_dir: run folder (TensorBoard logs go to ``<output_dir>/tensorboard``).
    checkpoint_dir: checkpoint folder; default ``<output_dir>/checkpoints``.
    checkpoint_every: save every N steps (0: only at the end).
    max_to_keep: checkpoints kept on disk.
    summary_every: write scalar summaries every N steps (0: never).
    image_summary_every: write image summaries every N steps (0: never).
    mixed_precision: None = on when a GPU is visible; True/False to force.
    mixed_policy: the Keras policy when mixed precision is on: "mixed_float16"
      (with loss scaling; the default, None) or "mixed_bfloat16" (no loss scaling).
    save_data_iterator: checkpoint the input iterator (exact data order on
      resume; costs the shuffle buffer's size on disk).
    progress: show a tqdm progress bar.
    seed: seed of the runtime's random generator (``TrainingRuntime.rng``).
    run_eagerly: run step functions eagerly instead of as ``tf.function``
      (debugging, and short smoke runs where tracing would take longer than
      the run).
  """
  output_dir: str
  checkpoint_dir: Optional[str] = None
  checkpoint_every: int = 1000
  max_to_keep: int = 3
  summary_every: int = 50
  image_summary_every: int = 500
  mixed_precision: Optional[bool] = None
  mixed_policy: Optional[str] = None
  save_data_iterator: bool = True
  progress: bool = True
  seed: int = 0
  run_eagerly: bool = False

  def __post_init__(self):
    if not self.output_dir:
      raise ValueError("RuntimeConfig.output_dir must be set")
    for name in ("checkpoint_every", "summary_every", "image_summary_every"):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"RuntimeConfig.{name} must be an int >= 0, got {value!r}")
    if self.mixed_policy not in (None,) + MIXED_POLICIES:
      raise ValueError(f"RuntimeConfig.mixed_policy must be one of {MIXED_POLICIES}, "
                       f"got {self.mixed_policy!r}")
    if isinstance(self.max_to_keep, bool) or not isinstance(self.max_to_keep, int) or (
        self.max_to_keep < 1):
      raise ValueError(f"RuntimeConfig.max_to_keep must be an int >= 1, got {self.max_to_keep!r}")

  @property
  def resolved_checkpoint_dir(self) -> str:
    return self.checkpoint_dir or os.path.join(self.output_dir, "checkpoints")


# ---- devices and precision --------------------------------------------------------------------

def make_strategy(devices: Optional[Sequence[str]] = None,
                  multi_worker: bool = False) -> tf.distribute.Strategy:
  """MirroredStrategy over several devices, else TF's default strategy.

  Args:
    devices: device names to mirror over; None = all visible GPUs.
    multi_worker: a ``MultiWorkerMirroredStrategy`` over the cluster ``TF_CONFIG`` names
      (each worker's GPUs, or its CPU). Create it before anything else runs on TF (it
      configures the collective ops when TF starts).

  Raises:
    ValueError: ``multi_worker`` without a ``TF_CONFIG`` that names a cluster and a task.
  """
  if multi_worker:
    try:
      spec = json.loads(os.environ.get("TF_CONFIG", ""))
      if not (spec["cluster"] and spec["task"]["type"] and "index" in spec["task"]):
        raise ValueError
    except (ValueError, KeyError, TypeError):
      raise ValueError("multi-worker training needs TF_CONFIG set to the cluster and this "
                       "worker, e.g. '{\"cluster\": {\"worker\": [\"host1:12345\", "
                       "\"host2:12345\"]}, \"task\": {\"type\": \"worker\", "
                       "\"index\": 0}}'") from None
    return tf.distribute.MultiWorkerMirroredStrategy()
  if devices is None:
    devices = [d.name for d in tf.config.list_logical_devices("GPU")]
  if len(devices) > 1:
    return tf.distribute.MirroredStrategy(list(devices))
  return tf.distribute.get_strategy()


def is_chief(strategy: tf.distribute.Strategy) -> bool:
  """Whether this process writes the run's files: always, but under a multi-worker
  strategy only the chief (task ``chief``, else ``worker`` 0)."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or resolver is None:
    return True
  task_type, task_id = resolver.task_type, resolver.task_id
  if task_type is None:   # a one-machine "cluster"
    return True
  if task_type == "chief":
    return True
  return (task_type == "worker" and task_id == 0
          and "chief" not in resolver.cluster_spec().as_dict())


def resolve_mixed_precision(requested: Optional[bool]) -> bool:
  """None -> True iff a GPU is visible; a bool is returned as is."""
  if requested is None:
    return bool(tf.config.list_logical_devices("GPU"))
  return bool(requested)


def resolve_mixed_policy(requested: Optional[str]) -> str:
  """None -> "mixed_float16"; a name is returned as is."""
  return requested or "mixed_float16"


@contextlib.contextmanager
def dtype_policy(mixed: bool, policy: str = "mixed_float16"):
  """Keras's global dtype policy is `policy` inside (if ``mixed``), restored after.

  Keras reads the policy when a layer is created, so build models inside.
  """
  previous = keras.config.dtype_policy()
  if mixed:
    keras.config.set_dtype_policy(policy)
  try:
    yield
  finally:
    keras.config.set_dtype_policy(previous)


def distribute_batch(strategy: tf.distribute.Strategy, batch):
  """Splits a host batch (nest of tensors with a leading batch axis) over the replicas.

  Raises:
    ValueError: the batch size is not a multiple of the number of replicas.
  """
  n = strategy.num_replicas_in_sync
  if n == 1:
    return batch
  sizes = {int(x.shape[0]) for x in tf.nest.flatten(batch)}
  if len(sizes) != 1 or next(iter(sizes)) % n:
    raise ValueError(f"batch size {sorted(sizes)} must be one multiple of the {n} replicas "
                     "(use drop_remainder=True and a multiple of the replica count)")
  per_replica = next(iter(sizes)) // n

  def value_fn(context):
    start = context.replica_id_in_sync_group * per_replica
    return tf.nest.map_structure(lambda x: x[start:start + per_replica], batch)

  return strategy.experimental_distribute_values_from_function(value_fn)


def is_loss_scale_optimizer(optimizer) -> bool:
  return isinstance(optimizer, keras.optimizers.LossScaleOptimizer)


def all_finite(tensors) -> tf.Tensor:
  """Scalar bool: every element of every (non-None) tensor is finite."""
  checks = [tf.reduce_all(tf.math.is_finite(tf.cast(t, tf.float32)))
            for t in tf.nest.flatten(tensors) if t is not None]
  return tf.reduce_all(tf.stack(checks)) if checks else tf.constant(True)


# ---- config overrides (``--set a.b=value`` on the command line) -----------------------------------

def _parse_value(text: str, annotation, field_path: str):
  origin = typing.get_origin(annotation)
  args = [a for a in typing.get_args(annotation) if a is not type(None)]
  if origin is typing.Union and len(args) == 1:
    if text.strip().lower() in ("none", ""):
      return None
    annotation = args[0]
  try:
    if annotation is bool:
      lowered = text.strip().lower()
      if lowered not in ("true", "false", "1", "0", "yes", "no"):
        raise ValueError(text)
      return lowered in ("true", "1", "yes")
    if annotation is int:
      return int(text)
    if annotation is float:
      value = float(text)
      if not math.isfinite(value):
        raise ValueError(text)
      return value
    if annotation is str:
      return text
  except ValueError:
    raise ValueError(f"--set {field_path}={text}: expected a value of type "
                     f"{getattr(annotation, '__name__', annotation)}") from None
  raise ValueError(f"--set {field_path}: fields of type {annotation} cannot be set from the "
                   "command line")


def check_stage_settings(config_class, settings: dict, stage: str) -> None:
  """Validates the common settings ``scripts/train.py`` hands to a stage's ``make_config``.

  Raises:
    ValueError: a setting that is not a field of ``config_class`` (besides ``runtime``),
      or no ``data``.
  """
  known = {f.name for f in dataclasses.fields(config_class)} - {"runtime"}
  unknown = sorted(set(settings) - known)
  if unknown:
    raise ValueError(f"settings {unknown} do not apply to the {stage} stage")
  if not settings.get("data"):
    raise ValueError("--data (a glob of prepare_data TFRecord shards) is required")


def override_config(config, assignments: Sequence[str]):
  """Returns a copy of a (nested, frozen) dataclass config with ``path=value`` assignments applied.

  Example: ``override_config(cfg, ["weights.photo=1.0", "runtime.summary_every=10"])``.

  Raises:
    ValueError: malformed assignment, unknown field (the message lists the
      known ones) or a value of the wrong type.
  """
  for assignment in assignments:
    if "=" not in assignment:
      raise ValueError(f"--set expects path=value, got '{assignment}'")
    path, text = assignment.split("=", 1)
    names = path.strip().split(".")
    config = _replace_path(config, names, text.strip(), path.strip())
  return config


def _replace_path(obj, names, text, full_path):
  if not dataclasses.is_dataclass(obj):
    raise ValueError(f"--set {full_path}: '{names[0]}' is not inside a settings group")
  hints = typing.get_type_hints(type(obj))
  fields = {f.name for f in dataclasses.fields(obj) if f.init}
  if names[0] not in fields:
    raise ValueError(f"--set {full_path}: unknown setting '{names[0]}' of "
                     f"{type(obj).__name__}; known: {', '.join(sorted(fields))}")
  if len(names) == 1:
    value = _parse_value(text, hints[names[0]], full_path)
  else:
    value = _replace_path(getattr(obj, names[0]), names[1:], text, full_path)
  return dataclasses.replace(obj, **{names[0]: value})


# ---- checkpoint files -------------------------------------------------------------------------

def _is_local(path: str) -> bool:
  return "://" not in path


def fsync_checkpoint(prefix: str) -> None:
  """fsyncs a written checkpoint's index and data files and their folder (local paths only)."""
  if not _is_local(prefix):
    return
  for path in [prefix + ".index"] + sorted(glob.glob(glob.escape(prefix) + ".data-*-of-*")):
    atomic.fsync_path(path)
  atomic.fsync_path(os.path.dirname(os.path.abspath(prefix)))


def checkpoint_problem(prefix: str) -> Optional[str]:
  """Why the checkpoint at ``prefix`` is unusable (one line), or None when it is complete.

  Complete means: the index parses and every tensor it lists reads back from the
  data files with a matching checksum (this reads the whole checkpoint once).
  """
  try:
    reader = tf.train.load_checkpoint(prefix)
    dtypes = reader.get_variable_to_dtype_map()
    names = sorted(dtypes)
    with tf.device("/cpu:0"):
      tf.raw_ops.RestoreV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names),
                           dtypes=[dtypes[n] for n in names])
  except (tf.errors.OpError, ValueError) as e:
    text = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", str(getattr(e, "message", e)))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return (lines[0] if lines else type(e).__name__)[:200]
  return None


def _pause_in_checkpoint_write_for_tests(prefix: str, step: int) -> None:
  """The test hook of :data:`PAUSE_IN_CHECKPOINT_WRITE_ENV` (does nothing unless it is set)."""
  if os.environ.get(PAUSE_IN_CHECKPOINT_WRITE_ENV, "").strip() != str(step):
    return
  with open(prefix + PAUSE_MARKER_SUFFIX, "w") as f:
    f.write(f"{os.getpid()}\n")
  while True:  # until the test kills the process
    time.sleep(60)


# ---- the runtime ----------------------------------------------------------------------------

@dataclasses.dataclass
class RunResult:
  """What :meth:`TrainingRuntime.run` did."""
  first_step: int
  last_step: int
  last_scalars: Dict[str, float]
  checkpoint: Optional[str]
  seconds: float


class TrainingRuntime:
  """Devices, precision, checkpoints, NaN guard, summaries and the step loop of one run.

  Create it first, build the model inside :meth:`scope` and
  :meth:`policy_scope`, register what must be saved with :meth:`track`, call
  :meth:`restore`, then :meth:`run`.

  Args:
    config: the :class:`RuntimeConfig`.
    strategy: a ``tf.distribute`` strategy (default: :func:`make_strategy`).
  """

  def __init__(self, config: RuntimeConfig, strategy: Optional[tf.distribute.Strategy] = None):
    self.config = config
    self.strategy = strategy if strategy is not None else make_strategy()
    self.is_chief = is_chief(self.strategy)
    self.mixed_precision = resolve_mixed_precision(config.mixed_precision)
    self.mixed_policy = resolve_mixed_policy(config.mixed_policy)
    with self.strategy.scope():
      self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
      self.epoch = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="epoch")
      self.rng = tf.random.Generator.from_seed(config.seed)
    self._objects = {}
    self._checkpoint = None
    self._manager = None
    self._fallback = None  # the checkpoint restore fell back to, until the next save
    self._writer = None

  @property
  def num_replicas(self) -> int:
    return self.strategy.num_replicas_in_sync

  def scope(self):
    """The strategy's variable scope (create models and optimizers inside)."""
    return self.strategy.scope()

  def policy_scope(self):
    """Keras dtype policy for model building: `mixed_policy` when mixed precision is on."""
    return dtype_policy(self.mixed_precision, self.mixed_policy)

  def wrap_optimizer(self, optimizer: keras.optimizers.Optimizer) -> keras.optimizers.Optimizer:
    """Wraps the optimizer in a ``LossScaleOptimizer`` under float16 mixed precision."""
    if (self.mixed_precision and self.mixed_policy == "mixed_float16"
        and not is_loss_scale_optimizer(optimizer)):
      return keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer

  # -- checkpoints --

  def track(self, **objects) -> None:
    """Registers trackables to checkpoint (model=..., optimizer=..., data=iterator, ...).

    A ``data`` entry is dropped when ``save_data_iterator`` is off. Call once,
    before :meth:`restore`; optimizers should be built first so their slots
    are restored right away.
    """
    if self._checkpoint is not None:
      raise ValueError("TrainingRuntime.track may be called only once")
    reserved = {"step", "epoch", "rng"} & set(objects)
    if reserved:
      raise ValueError(f"names {sorted(reserved)} are reserved by the runtime")
    if not self.config.save_data_iterator:
      objects.pop("data", None)
    self._objects = dict(objects)
    self._checkpoint = tf.train.Checkpoint(step=self.step, epoch=self.epoch, rng=self.rng,
                                           **objects)
    self._manager = tf.train.CheckpointManager(
        self._checkpoint, self.config.resolved_checkpoint_dir,
        max_to_keep=self.config.max_to_keep, checkpoint_name="ckpt")
    # Another worker of a multi-worker run restores the chief's checkpoints and saves its
    # own copy (every worker must save) to a private folder.
    self._shared = self._manager
    if not self.is_chief:
      self._manager = tf.train.CheckpointManager(
          self._checkpoint, tempfile.mkdtemp(prefix="facegcn-worker-checkpoints-"),
          max_to_keep=1, checkpoint_name="ckpt")

  def _require_tracking(self):
    if self._manager is None:
      raise ValueError("call TrainingRuntime.track(...) before saving or restoring")

  @property
  def latest_checkpoint(self) -> Optional[str]:
    """The newest usable checkpoint (after a fallback in :meth:`restore`, the one restored)."""
    self._require_tracking()
    return self._fallback or self._shared.latest_checkpoint

  @property
  def save_dir(self) -> str:
    """Where this process saves checkpoints (another worker than the chief: a private
    temporary folder, deleted when :meth:`run` ends)."""
    self._require_tracking()
    return self._manager.directory

  def _newest_complete_checkpoint(self) -> Optional[str]:
    """The newest checkpoint the pointer file lists whose files are complete (None: none listed).

    Raises:
      IncompleteCheckpointError: checkpoints are listed but none is complete.
    """
    candidates = []
    for path in [self._shared.latest_checkpoint] + self._shared.checkpoints[::-1]:
      if path and path not in candidates:
        candidates.append(path)
    skipped = []
    for path in candidates:
      problem = checkpoint_problem(path)
      if problem is None:
        if skipped:
          logging.warning("ignoring incomplete checkpoint(s) %s; resuming from %s",
                          "; ".join(skipped), path)
          self._fallback = path
        return path
      skipped.append(f"{path} ({problem})")
    if skipped:
      raise IncompleteCheckpointError(
          f"no complete checkpoint in '{self.config.resolved_checkpoint_dir}': "
          f"{'; '.join(skipped)}; move the folder away to start afresh")
    return None

  def restore(self, path: Optional[str] = None) -> Optional[str]:
    """Restores ``path`` or the latest checkpoint of the run; returns its path (None: fresh start).

    Without ``path`` a newest checkpoint whose files are incomplete or damaged is
    skipped (one warning) for the newest complete one.

    Raises:
      CheckpointMismatchError: the checkpoint does not fit what was tracked.
      IncompleteCheckpointError: ``path``'s files (or, without ``path``, those of
        every listed checkpoint) are incomplete or damaged.
    """
    self._require_tracking()
    if path is None:
      path = self._newest_complete_checkpoint()
      if path is None:
        return None
    else:
      problem = checkpoint_problem(path)
      if problem is not None:
        raise IncompleteCheckpointError(
            f"checkpoint '{path}' is incomplete or damaged: {problem}")
    try:
      status = self._checkpoint.restore(path)
      status.assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as e:
      raise CheckpointMismatchError(
          f"checkpoint '{path}' does not fit this run (different model, face model, optimizer "
          f"or data settings?): {str(e).splitlines()[0][:300]}") from None
    return path

  def save(self) -> str:
    """Writes a checkpoint at the current step; returns its path.

    The files are complete and fsync-ed before the ``checkpoint`` pointer file
    moves to them: TF runs the write callbacks in order once the data and
    index files are written, and the manager's pointer update (an atomic
    rename) is appended after ours.
    """
    self._require_tracking()
    step = int(self.step.numpy())

    def files_written(prefix):
      fsync_checkpoint(prefix)
      _pause_in_checkpoint_write_for_tests(prefix, step)

    options = tf.train.CheckpointOptions(experimental_write_callbacks=[files_written])
    path = self._manager.save(checkpoint_number=step, options=options)
    directory = self._manager.directory
    if _is_local(directory):
      atomic.fsync_path(os.path.join(directory, "checkpoint"))
      atomic.fsync_path(directory)
    self._fallback = None
    if not self.is_chief:   # the run's checkpoint is the chief's
      return os.path.join(self._shared.directory, os.path.basename(path))
    return path

  def close(self) -> None:
    """Deletes a non-chief worker's private checkpoint copies."""
    if self._manager is not None and not self.is_chief:
      shutil.rmtree(self._manager.directory, ignore_errors=True)

  # -- the update --

  def minimize(self, optimizer, loss_fn: Callable[[], tuple], variables) -> tuple:
    """One guarded gradient step, in replica context (inside ``strategy.run``).

    Args:
      optimizer: the (possibly loss-scaled) Keras optimizer, already built.
      loss_fn: () -> (loss scalar float32: mean over this replica's examples, aux).
      variables: the trainable variables.

    Returns:
      (loss, aux, finite): finite is a bool scalar, the same on every replica.
      The update is skipped when it is False (except with several replicas
      without loss scaling; see the module docstring).
    """
    with tf.GradientTape() as tape:
      loss, aux = loss_fn()
      scaled = optimizer.scale_loss(loss / float(self.num_replicas))
    grads = tape.gradient(scaled, variables)
    loss_scaled = is_loss_scale_optimizer(optimizer)
    finite = all_finite([loss]) if loss_scaled else all_finite([loss] + list(grads))
    context = tf.distribute.get_replica_context()
    if self.num_replicas > 1 and context is not None:
      failures = context.all_reduce(tf.distribute.ReduceOp.SUM,
                                    1.0 - tf.cast(finite, tf.float32))
      finite = failures < 0.5
    pairs = list(zip(grads, variables))
    if loss_scaled or self.num_replicas > 1:
      optimizer.apply_gradients(pairs)
    else:
      def apply():
        optimizer.apply_gradients(pairs)
        return tf.constant(True)
      tf.cond(finite, apply, lambda: tf.constant(False))
    return loss, aux, finite

  def distributed_step(self, replica_fn: Callable[[object], Dict[str, tf.Tensor]],
                       jit_compile: bool = False):
    """Turns ``replica_fn(batch) -> {name: tensor}`` into a ``tf.function`` over all replicas.

    Scalars are averaged over the replicas (``"finite"`` is and-ed); other
    tensors (images) are taken from the first replica. With
    ``config.run_eagerly`` the function is returned unwrapped.
    """
    strategy = self.strategy

    def reduce(name, value):
      first = strategy.experimental_local_results(value)[0]
      if name == FINITE_KEY:
        failures = strategy.reduce(
            tf.distribute.ReduceOp.SUM,
            strategy.run(lambda v: 1.0 - tf.cast(v, tf.float32), args=(value,)), axis=None)
        return failures < 0.5
      if first.shape.rank == 0:
        return strategy.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None)
      return first

    def step(batch):
      outputs = strategy.run(replica_fn, args=(batch,))
      return {name: reduce(name, value) for name, value in outputs.items()}

    if self.config.run_eagerly:
      return step
    return tf.function(step, jit_compile=jit_compile)

  # -- summaries --

  @property
  def summary_writer(self):
    if self._writer is None:
      self._writer = tf.summary.create_file_writer(
          os.path.join(self.config.output_dir, "tensorboard"))
    return self._writer

  def write_scalars(self, scalars: Dict[str, float], step: int) -> None:
    if not self.is_chief:
      return
    with self.summary_writer.as_default(step=step):
      for name, value in scalars.items():
        tf.summary.scalar(name, value)

  def write_images(self, images: Dict[str, tf.Tensor], step: int, max_outputs: int = 4) -> None:
    """images: tag -> [B, H, W, 3] in [0, 1] (clipped here)."""
    if not self.is_chief:
      return
    with self.summary_writer.as_default(step=step):
      for name, value in images.items():
        tf.summary.image(name, tf.clip_by_value(tf.cast(value, tf.float32), 0.0, 1.0),
                         max_outputs=max_outputs)

  # -- the loop --

  def run(self, step_fn: Callable[[object], Dict[str, tf.Tensor]], iterator: Iterator,
          total_steps: int, steps_per_epoch: Optional[float] = None,
          prepare_batch: Optional[Callable[[object], object]] = None,
          description: str = "train") -> RunResult:
    """Runs ``step_fn`` until the step counter reaches ``total_steps``.

    Args:
      step_fn: batch -> outputs dict (see the module docstring).
      iterator: yields host batches (register it with :meth:`track` as ``data``
        for an exact resume).
      total_steps: the step count to stop at (the run resumes from ``self.step``).
      steps_per_epoch: batches per epoch, for the epoch counter (None: not counted).
      prepare_batch: host-side function applied to each batch before it is
        split over the replicas (e.g. selecting the keys the step needs).
      description: progress-bar label.

    Returns:
      A :class:`RunResult`.

    Raises:
      NonFiniteLossError: a step produced a non-finite loss/gradient; nothing
        was saved after the last good step.
      FaceGCNError: the iterator ran out before ``total_steps``.
    """
    from tqdm import tqdm  # pylint: disable=import-outside-toplevel

    self._require_tracking()
    cfg = self.config
    first = int(self.step.numpy())
    start_time = time.perf_counter()
    last_scalars: Dict[str, float] = {}
    last_saved = None
    bar = tqdm(total=total_steps, initial=first, desc=description, unit="step",
               disable=not (cfg.progress and self.is_chief), dynamic_ncols=True)
    try:
      for _ in range(first, total_steps):
        try:
          batch = next(iterator)
        except StopIteration:
          raise FaceGCNError(f"the training data ran out at step {int(self.step.numpy())} "
                             f"of {total_steps}") from None
        if prepare_batch is not None:
          batch = prepare_batch(batch)
        step = int(self.step.numpy())
        try:
          outputs = step_fn(distribute_batch(self.strategy, batch))
        except tf.errors.InvalidArgumentError as e:
          # tf.debugging.check_numerics inside the step (e.g. the rasterizer's input check).
          lines = [line.strip() for line in str(e.message).splitlines() if line.strip()]
          found = [line for line in lines if "NaN" in line or "Inf" in line]
          if "CheckNumerics" not in str(e) and not found:
            raise
          raise NonFiniteLossError(
              f"non-finite values at step {step} ({(found or lines)[0][:200]}); stopped "
              "without saving; last good checkpoint: "
              f"{self.latest_checkpoint or 'none'}") from None
        scalars = {name: float(value) for name, value in outputs.items()
                   if name != FINITE_KEY and not name.startswith(IMAGE_PREFIX)
                   and tf.convert_to_tensor(value).shape.rank == 0}
        finite = bool(outputs.get(FINITE_KEY, True)) and all(
            math.isfinite(v) for v in scalars.values())
        if not finite:
          bad = ", ".join(f"{k}={v:g}" for k, v in scalars.items() if not math.isfinite(v))
          raise NonFiniteLossError(
              f"non-finite loss or gradient at step {step} ({bad or 'gradients'}); stopped "
              f"without saving; last good checkpoint: {self.latest_checkpoint or 'none'}")
        self.step.assign_add(1)
        if steps_per_epoch:
          self.epoch.assign_add(1.0 / float(steps_per_epoch))
        done = step + 1
        last_scalars = scalars
        if cfg.summary_every and done % cfg.summary_every == 0:
          self.write_scalars(dict(scalars, epoch=float(self.epoch.numpy())), done)
        if cfg.image_summary_every and done % cfg.image_summary_every == 0:
          self.write_images({name[len(IMAGE_PREFIX):]: value for name, value in outputs.items()
                             if name.startswith(IMAGE_PREFIX)}, done)
        if cfg.checkpoint_every and done % cfg.checkpoint_every == 0:
          last_saved = self.save()
        bar.set_postfix(loss=f"{scalars.get(LOSS_KEY, float('nan')):.4g}", refresh=False)
        bar.update(1)
      final = int(self.step.numpy())
      if final > first and (last_saved is None or not last_saved.endswith(f"-{final}")):
        last_saved = self.save()
    finally:
      bar.close()
      if self._writer is not None:
        self._writer.flush()
      self.close()   # a non-chief worker's private checkpoint copies
    return RunResult(first_step=first, last_step=final, last_scalars=last_scalars,
                     checkpoint=last_saved or self.latest_checkpoint,
                     seconds=time.perf_counter() - start_time)


def steps_for(epochs: Optional[float], steps: Optional[int], steps_per_epoch: float) -> int:
  """Total steps from ``--steps`` or ``--epochs`` (exactly one must be given)."""
  if (epochs is None) == (steps is None):
    raise ValueError("give exactly one of steps and epochs")
  if steps is not None:
    if steps < 1:
      raise ValueError(f"steps must be >= 1, got {steps}")
    return int(steps)
  if not epochs > 0:
    raise ValueError(f"epochs must be > 0, got {epochs}")
  return max(1, int(math.ceil(epochs * steps_per_epoch)))


def image_grid(columns: Sequence[tf.Tensor]) -> tf.Tensor:
  """Side-by-side images: k tensors [B, H, W, 3] -> [B, H, k*W, 3] (e.g. input | render)."""
  return tf.concat([tf.cast(c, tf.float32) for c in columns], axis=2)


__all__ = ["CheckpointMismatchError", "IncompleteCheckpointError", "NonFiniteLossError",
           "RunResult", "RuntimeConfig", "TrainingRuntime", "all_finite", "checkpoint_problem",
           "distribute_batch", "dtype_policy", "fsync_checkpoint", "image_grid", "make_strategy",
           "override_config", "resolve_mixed_policy", "resolve_mixed_precision", "steps_for"]
