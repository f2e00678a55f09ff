"""Prepares the offline assets the pipeline needs (run by scripts/setup.sh).

Idempotent: every step checks its output first, so a second run takes seconds.

Steps:
  examples   the real example photos shipped in registry packages
             (scikit-image astronaut + camera, matplotlib grace_hopper) -> examples/
  ict        checks that the ICT Face Model Light is on the asset search path
  identity   fetches and converts the dlib face-descriptor weights (facegcn_tf/assets/identity_weights.py)

Usage:
  python scripts/prepare_assets.py [--steps=examples,ict,identity] [--assets_dir=DIR]
"""

import pathlib

from absl import app
from absl import flags

from facegcn_tf import assets  # noqa: E402

_STEPS = flags.DEFINE_list("steps", ["examples", "ict", "identity"], "Steps to run.")
_ASSETS_DIR = flags.DEFINE_string(
    "assets_dir", None, "Where converted assets go (default: $FACEGCN_ASSETS or <repo>/assets).")
_EXAMPLES_DIR = flags.DEFINE_string(
    "examples_dir", str(assets.REPO_ROOT / "examples"), "Where the example photos go.")
_ICT_DIR = flags.DEFINE_string(
    "ict_dir", None, "Directory holding ict_face_light/ (default: the asset search path).")


def step_examples() -> str:
  """Writes the bundled real photos as files, the way a user would have them."""
  from facegcn_tf.data import examples

  out = pathlib.Path(_EXAMPLES_DIR.value)
  missing = [n for n in examples.NAMES if not (out / examples.FILE_NAMES[n]).exists()]
  written = [path.name for path in examples.write_example_photos(out, missing)] if missing else []
  return f"examples: {out} ({'wrote ' + ', '.join(written) if written else 'up to date'})"


def step_ict() -> str:
  path = assets.find_asset(
      "ict_face_light/ict_face_area.npz", explicit=_ICT_DIR.value,
      how_to_get=("Copy the folder ict_face_light/ (ict_face_area.npz + LICENSE) into one of "
                  "those directories, or pass --ict_dir."))
  return f"ict: {path}"


def step_identity() -> str:
  from facegcn_tf.assets import identity_weights
  return "identity: " + identity_weights.prepare(assets.writable_asset_dir("identity"))


_STEP_FNS = {"examples": step_examples, "ict": step_ict, "identity": step_identity}


def main(argv):
  del argv
  if _ASSETS_DIR.value:
    import os
    os.environ[assets.ENV_VAR] = _ASSETS_DIR.value
  unknown = [s for s in _STEPS.value if s not in _STEP_FNS]
  if unknown:
    raise app.UsageError(f"unknown step(s) {unknown}; choose from {sorted(_STEP_FNS)}")
  for step in _STEPS.value:
    print(_STEP_FNS[step](), flush=True)


if __name__ == "__main__":
  app.run(main)
