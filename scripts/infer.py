"""Batch export of textured 3D faces from photos.

  python scripts/infer.py --input=examples --output_dir=outputs
  python scripts/infer.py --input='photos/**/*.jpg' --output_dir=out --all_faces --formats=obj,json

Per face it writes NAME.obj/.mtl + NAME_texture.png (UV texture), NAME.ply, NAME.glb,
NAME_coarse_texture.png, NAME_lit_texture.png, NAME_overlay.png (the render pasted back on
the full-resolution photo), NAME_strip.png (photo | coarse | fine | shape) and NAME.json
(coefficients, pose, landmarks, loss and quality figures, versions, flags). Bad inputs are
reported and skipped; finished faces are skipped on a re-run (--overwrite to redo). Exit
codes: 0, or 1 when every input failed, 74 when the output folder cannot be written, 130 / 143
after SIGINT / SIGTERM (README: "Running large batches").

  python scripts/infer.py --input=photos.txt --output_dir=out --runner=DirectRunner
  python scripts/infer.py --input=photos.txt --output_dir=/shared/out --runner=FlinkRunner \
      --beam_options="--flink_master=HOST:8081 --environment_type=EXTERNAL ..."

--input may also be a text file listing photos (.txt/.lst, one path a line). With --runner
other than local the photos are reconstructed by an Apache Beam pipeline
(facegcn_tf.scale.infer); failures also go to OUTPUT_DIR/failures.txt. Photos, file lists and
(with a Beam runner) --output_dir may be remote: gs://bucket/... (README: "On a cluster").
"""

import os
import pathlib
import signal
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from facegcn_tf import scale  # noqa: E402  (its flags' help; imports no Beam)

_INPUT = flags.DEFINE_string("input", "examples", "A photo, a folder of photos, a glob, or a "
                             "text file (.txt/.lst) listing photo paths, one a line.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", "outputs", "Where the outputs go.")
_FACE_MODEL = flags.DEFINE_enum("face_model", "ict", ["ict", "ict_coarse", "bfm"],
                                "Face model (bfm needs the user-supplied BFM 2009 file).")
_MODEL_PATH = flags.DEFINE_string("model_path", None, "Face model file (default: asset search path).")
_ALL_FACES = flags.DEFINE_bool("all_faces", False, "Reconstruct every face, not only the most "
                               "confident one (outputs NAME_face0, NAME_face1, ...).")
_MIN_CONFIDENCE = flags.DEFINE_float("min_confidence", 0.9, "Face detector threshold.",
                                     lower_bound=0.0, upper_bound=1.0)
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 4, "Faces processed together.", lower_bound=1)
_FORMATS = flags.DEFINE_list("formats", ["obj", "ply", "glb", "png", "head", "json"],
                             "Output formats (head: the whole head, rigged GLB + OBJ/PLY).")
_TEXTURE_SIZE = flags.DEFINE_integer("texture_size", 1024, "UV texture side.", lower_bound=64)
_PRESET = flags.DEFINE_enum("preset", "default", ["fast", "default", "best"],
                            "Speed/quality schedule (README: 'Presets'); --fit_steps and "
                            "--refine_steps override its values.")
_FIT_STEPS = flags.DEFINE_float("fit_steps", None, "Scale of the coarse fitting schedule "
                                "(1 = the full iteration counts; default: the preset's).",
                                lower_bound=0.01)
_REFINE_STEPS = flags.DEFINE_integer(
    "refine_steps", None, "Per-image GCN steps filling the parts the photo does not show "
    "(0 = none; default: the preset's). With --gcn_checkpoint the default is 0 (the generator "
    "feed-forward); N > 0 fine-tunes it on each photo for N steps at a low learning rate "
    "(1e-4).", lower_bound=0)
_ALBEDO_SOURCE = flags.DEFINE_enum(
    "albedo_source", "photo", ["photo", "gcn"], "photo: the photo decides the albedo where "
    "it shows the face (shading divided out), the GCN or the coarse albedo fills the rest; "
    "gcn: the GCN's output everywhere (the paper's T'; needs --refine_steps or "
    "--gcn_checkpoint).")
_RNET_CHECKPOINT = flags.DEFINE_string(
    "rnet_checkpoint", None, "Trained R-Net (rnet.weights.h5 from train.py --stage=rnet) or "
    "Deep3DFace's FaceReconModel.pb (with --face_model=bfm): coarse coefficients feed-forward "
    "instead of fitting.")
_GCN_CHECKPOINT = flags.DEFINE_string(
    "gcn_checkpoint", None, "Trained GCN generator (the output folder of train.py --stage=gcn): "
    "refinement is its forward pass. Its saved spec chooses the face model (--face_model may "
    "be left out), the identity encoder, the order and the widths.")
_IDENTITY_WEIGHTS = flags.DEFINE_string(
    "identity_weights", None, "FaceNet's frozen graph (20170512-110547.pb / FaceNetModel.pb) "
    "for a generator trained with identity=facenet (default: assets/facenet/).")
_LEARNED_OCCLUSION = flags.DEFINE_bool(
    "learned_occlusion", True, "The coarse fit's occlusion estimate also uses the occluder "
    "network (a U-Net trained on synthetic occluders; finds skin-coloured hands).")
_OCCLUDER_NET = flags.DEFINE_string(
    "occluder_net", None, "The occluder network's weights (.npz of scripts/train_occluders.py; "
    "default: assets/occluders/, then the weights shipped in facegcn_tf/assets/trained/).")
_RUNNER = flags.DEFINE_string("runner", scale.LOCAL_RUNNER, scale.RUNNER_HELP)
_BEAM_OPTIONS = flags.DEFINE_string("beam_options", "", scale.BEAM_OPTIONS_HELP)
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Redo faces whose outputs exist.")
_PROGRESS = flags.DEFINE_bool(
    "progress", True, "Report progress on stderr: a bar on a terminal, else one line per face "
    "and stage (prepare, fit, refine, assemble, export) with an ETA.")


def _exit_now(signum, frame):
  del frame
  sys.exit(128 + signum)   # before the run starts there is nothing to keep


def _usage_error(message: str) -> None:
  """One line on stderr and exit status 2, before any photo is touched (not absl's full help)."""
  sys.stderr.write(f"infer.py: usage error: {message} (see --helpshort)\n")
  sys.exit(2)


def _trained_path():
  """(face model, refine steps) after checking the checkpoint flags; UsageError on a mismatch.

  A --gcn_checkpoint's spec chooses the face model (a different --face_model is an error) and
  makes the default refinement its forward pass (0 steps) unless --refine_steps is given.
  """
  hints = {"rnet_checkpoint": "train them with scripts/train.py --stage=rnet, or pass "
                              "Deep3DFace's FaceReconModel.pb",
           "gcn_checkpoint": "train one with scripts/train.py --flagfile=configs/ict.cfg"}
  for name, hint in hints.items():
    path = flags.FLAGS[name].value
    if path and not pathlib.Path(path).expanduser().exists():
      _usage_error(f"--{name}: '{path}' not found; {hint}")
  face_model, steps = _FACE_MODEL.value, _REFINE_STEPS.value
  if not _GCN_CHECKPOINT.value:
    return face_model, steps
  from facegcn_tf.refinement import generator_spec  # pylint: disable=import-outside-toplevel
  try:
    spec = generator_spec.load_spec(_GCN_CHECKPOINT.value)
  except (ValueError, FileNotFoundError) as err:
    _usage_error(f"--gcn_checkpoint: {str(err).splitlines()[0]}")
  if flags.FLAGS["face_model"].present and face_model != spec.face_model:
    _usage_error(f"--face_model={face_model}, but the generator at "
                         f"'{_GCN_CHECKPOINT.value}' was trained on '{spec.face_model}'")
  return spec.face_model, (steps if flags.FLAGS["refine_steps"].present else 0)


# model-viewer's classic-script bundle, installed by scripts/setup.sh (npm, tools/web/).
VIEWER_JS = (pathlib.Path(__file__).resolve().parent.parent / "tools" / "web" / "node_modules"
             / "@google" / "model-viewer" / "dist" / "model-viewer-umd.min.js")


def _write_results_page(output_dir: pathlib.Path, summary) -> None:
  """index.html with every face of the folder and this run's failures (never fatal)."""
  from facegcn_tf.export import results_page  # pylint: disable=import-outside-toplevel
  if not output_dir.is_dir():
    return
  try:
    results_page.write_index(output_dir, summary.failed, VIEWER_JS)
  except OSError as err:
    print(f"results page not written: {err}")


def _run_beam(scan, settings, run_flags) -> int:
  """The same faces by an Apache Beam pipeline on --runner; the exit code."""
  # pylint: disable=import-outside-toplevel
  from facegcn_tf import pipeline
  from facegcn_tf import storage
  from facegcn_tf.pipeline import batch
  from facegcn_tf.scale import infer as beam_infer
  from facegcn_tf.scale import options as beam_options
  # pylint: enable=import-outside-toplevel
  try:
    options = beam_options.pipeline_options(_RUNNER.value, _BEAM_OPTIONS.value)
  except ValueError as err:
    _usage_error(str(err))
  try:
    beam_infer.check_assets(settings)  # the workers load them: fail here, once, in one line
  except (ValueError, FileNotFoundError) as err:
    _usage_error(str(err).splitlines()[0])
  output_dir = _OUTPUT_DIR.value
  try:
    summary = beam_infer.infer(scan.paths, output_dir, settings, options, flags=run_flags,
                               odd_inputs=scan.odd)
  except pipeline.OutputError as err:
    print(f"stopped: {err}")
    return batch.EXIT_OUTPUT_ERROR
  failures = beam_options.read_failures(output_dir)
  run = pipeline.RunSummary(skipped=list(scan.odd), failed=sorted(failures.items()))
  if storage.is_remote(output_dir):
    print("index.html: written only into a local output folder")
  else:
    _write_results_page(pathlib.Path(output_dir), run)
    output_dir = pathlib.Path(output_dir).resolve()
  for result, rows in (("skipped", run.skipped), ("FAILED", run.failed)):
    for item, reason in rows:
      print(f"{item:40s} {result:11s} {reason}")
  print(f"{summary.done} done, {summary.skipped} skipped, {summary.failed} failed "
        f"on {_RUNNER.value}")
  print(f"outputs: {output_dir}")
  if summary.failed and not summary.done and not summary.skipped:
    return batch.EXIT_ALL_FAILED
  return batch.EXIT_OK


def main(argv):
  if len(argv) > 1:
    _usage_error(f"unexpected arguments: {' '.join(argv[1:])}")
  for signum in (signal.SIGINT, signal.SIGTERM):
    signal.signal(signum, _exit_now)
  from facegcn_tf import pipeline  # pylint: disable=import-outside-toplevel
  from facegcn_tf import storage  # pylint: disable=import-outside-toplevel
  from facegcn_tf.export import writer  # pylint: disable=import-outside-toplevel
  from facegcn_tf.fitting.fitter import FitConfig  # pylint: disable=import-outside-toplevel

  try:
    formats = writer.check_formats(_FORMATS.value)
    scan = pipeline.scan_inputs(_INPUT.value)
  except ValueError as err:
    _usage_error(str(err))
  face_model, refine_steps = _trained_path()
  overrides = {}
  if _FIT_STEPS.value is not None:
    overrides["fit_config"] = FitConfig().scaled(_FIT_STEPS.value)
  if refine_steps is not None:
    overrides["refine_steps"] = refine_steps
  settings = pipeline.Settings.from_preset(
      _PRESET.value, **overrides,
      face_model=face_model, model_path=_MODEL_PATH.value,
      min_confidence=_MIN_CONFIDENCE.value, all_faces=_ALL_FACES.value,
      batch_size=_BATCH_SIZE.value, formats=formats, texture_size=_TEXTURE_SIZE.value,
      albedo_source=_ALBEDO_SOURCE.value,
      overwrite=_OVERWRITE.value, rnet_checkpoint=_RNET_CHECKPOINT.value,
      gcn_checkpoint=_GCN_CHECKPOINT.value, identity_weights=_IDENTITY_WEIGHTS.value,
      learned_occlusion=_LEARNED_OCCLUSION.value, occluder_net=_OCCLUDER_NET.value)
  run_flags = {name: flags.FLAGS[name].value for name in (
      "input", "output_dir", "preset", "all_faces", "min_confidence", "batch_size",
      "formats", "texture_size", "fit_steps", "albedo_source", "rnet_checkpoint",
      "gcn_checkpoint", "learned_occlusion", "occluder_net")}
  run_flags.update(face_model=face_model, refine_steps=settings.refine_steps)
  if _RUNNER.value != scale.LOCAL_RUNNER:
    return _run_beam(scan, settings, run_flags)
  if storage.is_remote(_OUTPUT_DIR.value):
    _usage_error(f"--output_dir={_OUTPUT_DIR.value}: a remote folder needs a Beam runner "
                 "(--runner=DirectRunner, or a cluster runner)")
  try:
    reconstructor = pipeline.Reconstructor(settings)
  except (ValueError, FileNotFoundError) as err:  # missing model / checkpoint files
    _usage_error(str(err).splitlines()[0])
  with pipeline.interrupt_on_signals():  # SIGINT/SIGTERM stop between steps, keep what's done
    summary = pipeline.run(scan.paths, pathlib.Path(_OUTPUT_DIR.value), reconstructor,
                           flags=run_flags, progress=_PROGRESS.value, odd_inputs=scan.odd)
  _write_results_page(pathlib.Path(_OUTPUT_DIR.value), summary)
  print(summary.table())
  print(f"outputs: {pathlib.Path(_OUTPUT_DIR.value).resolve()}")
  return summary.exit_code()


if __name__ == "__main__":
  app.run(main)
