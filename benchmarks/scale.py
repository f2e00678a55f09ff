"""Beam pipelines on the DirectRunner: photos per hour per worker for README's capacity estimate.

Each stage (``prepare_data.py``, ``fit_data.py`` with the fitter and with an R-Net,
``infer.py`` with the default preset) runs as its script with ``--runner=DirectRunner`` on a
folder of 1 and of N copies of the example portraits: "whole run" is the N-photo wall time over
N (start-up and model loading included), "marginal" is (N photos - 1 photo) / (N - 1). The
R-Net has random weights (its cost does not depend on them).
"""

import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

from facegcn_tf.data import examples

TITLE = "Scale-out: the Beam pipelines per worker (DirectRunner), photos/hour"

_REPO = pathlib.Path(__file__).resolve().parent.parent


def _script(name, *args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  start = time.perf_counter()
  subprocess.run([sys.executable, str(_REPO / "scripts" / name), *args,
                  "--runner=DirectRunner"], check=True, capture_output=True, env=env)
  return time.perf_counter() - start


def _rnet(folder: pathlib.Path) -> pathlib.Path:
  from facegcn_tf.morphable import load_model  # pylint: disable=import-outside-toplevel
  from facegcn_tf.networks.rnet import build_rnet  # pylint: disable=import-outside-toplevel
  folder.mkdir()
  build_rnet(load_model("ict").layout).save_weights(str(folder / "rnet.weights.h5"))
  (folder / "rnet.json").write_text(json.dumps({"input_size": 224}))
  return folder / "rnet.weights.h5"


def _stages(work: pathlib.Path, photos: pathlib.Path, rnet: pathlib.Path):
  """{stage: wall seconds} of every stage on the folder `photos`."""
  data = work / f"data_{photos.name}"
  pattern = f"--data={data}/faces-*.tfrecord"
  return {
      "prepare_data.py --face_model=ict": _script(
          "prepare_data.py", f"--input_dir={photos}", f"--output_dir={data}", "--face_model=ict"),
      "fit_data.py --rnet_checkpoint (regression)": _script(
          "fit_data.py", pattern, "--face_model=ict", f"--rnet_checkpoint={rnet}",
          f"--cache_dir={work / ('rnet_' + photos.name)}", "--progress=false"),
      "fit_data.py --fit_steps=1.0": _script(
          "fit_data.py", pattern, "--face_model=ict", "--progress=false"),
      "infer.py --preset=default": _script(
          "infer.py", f"--input={photos}", f"--output_dir={work / ('out_' + photos.name)}",
          "--progress=false"),
  }


def run(quick: bool):
  copies = 4 if quick else 6
  rows = []
  work = pathlib.Path(tempfile.mkdtemp(prefix="bench_scale_"))
  try:
    sources = examples.write_example_photos(work / "sources", examples.PORTRAITS)
    one, many = work / "one", work / "many"
    one.mkdir()
    many.mkdir()
    shutil.copy(sources[0], one / f"000{sources[0].suffix}")
    for i in range(copies):
      src = sources[i % len(sources)]
      shutil.copy(src, many / f"{i:03d}{src.suffix}")
    rnet = _rnet(work / "rnet")
    single = _stages(work, one, rnet)
    multi = _stages(work, many, rnet)
    for stage, seconds in multi.items():
      whole = seconds / copies
      marginal = max(seconds - single[stage], 1e-6) / (copies - 1)
      rows.append((f"{stage}: whole run, {copies} photos", whole, "s/photo"))
      rows.append((f"{stage}: marginal", marginal, "s/photo"))
      rows.append((f"{stage}: per worker (whole run)", 3600.0 / whole, "photos/hour"))
  finally:
    shutil.rmtree(work, ignore_errors=True)
  return rows
