"""Benchmarks: prints numbers and records them in docs/benchmarks.md.

Each suite is a module of the `benchmarks` package (benchmarks/) with `TITLE` and
`run(quick: bool) -> [(metric, value, unit), ...]`. Only the suites that ran are replaced
in the markdown file; the others keep their last recorded numbers.

  python scripts/benchmark.py --suites=rasterizer,render [--quick] [--output=docs/benchmarks.md]
"""

import datetime
import importlib
import os
import pathlib
import platform
import re

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

import benchmarks  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent

_SUITES = flags.DEFINE_list("suites", None, "Suites to run (default: all in benchmarks/).")
_QUICK = flags.DEFINE_bool("quick", False, "Fewer repetitions / smaller sizes.")
_OUTPUT = flags.DEFINE_string("output", str(ROOT / "docs" / "benchmarks.md"),
                              "Markdown file to update ('' to skip).")


def available_suites():
  return sorted(p.stem for p in pathlib.Path(benchmarks.__file__).parent.glob("*.py")
                if not p.stem.startswith("_"))


def machine_description() -> str:
  cpu = platform.processor() or platform.machine()
  try:
    for line in open("/proc/cpuinfo"):
      if line.startswith("model name"):
        cpu = line.split(":", 1)[1].strip()
        break
  except OSError:
    pass
  import tensorflow as tf
  gpus = tf.config.list_physical_devices("GPU")
  return (f"{cpu}, {os.cpu_count()} cores, "
          f"{'GPU: ' + ', '.join(g.name for g in gpus) if gpus else 'no GPU'}, "
          f"TensorFlow {tf.__version__}, Python {platform.python_version()}")


def render_section(name, title, rows, machine, command):
  lines = [f"<!-- suite:{name} -->", f"## {title}", "",
           f"Machine: {machine}. Recorded {datetime.date.today().isoformat()} with "
           f"`{command}`.", "", "| metric | value | unit |", "| --- | ---: | --- |"]
  for metric, value, unit in rows:
    shown = f"{value:.3g}" if isinstance(value, float) and abs(value) < 100 else (
        f"{value:.1f}" if isinstance(value, float) else str(value))
    lines.append(f"| {metric} | {shown} | {unit} |")
  lines.append(f"<!-- /suite:{name} -->")
  return "\n".join(lines)


def update_markdown(path: pathlib.Path, sections: dict) -> None:
  text = path.read_text() if path.exists() else (
      "# Benchmarks\n\nWritten by `python scripts/benchmark.py`; each section records the "
      "machine and command that produced it.\n")
  for name, body in sections.items():
    pattern = re.compile(rf"<!-- suite:{re.escape(name)} -->.*?<!-- /suite:{re.escape(name)} -->",
                         re.S)
    if pattern.search(text):
      text = pattern.sub(lambda _: body, text)
    else:
      text = text.rstrip("\n") + "\n\n" + body + "\n"
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(text)


def main(argv):
  del argv
  names = _SUITES.value or available_suites()
  unknown = [n for n in names if n not in available_suites()]
  if unknown:
    raise app.UsageError(f"unknown suite(s) {unknown}; available: {available_suites()}")
  machine = machine_description()
  command = "python scripts/benchmark.py --suites=" + ",".join(names) + (
      " --quick" if _QUICK.value else "")
  sections = {}
  for name in names:
    module = importlib.import_module(f"benchmarks.{name}")
    print(f"== {module.TITLE}", flush=True)
    rows = module.run(_QUICK.value)
    for metric, value, unit in rows:
      print(f"  {metric:60s} {value:10.3f} {unit}" if isinstance(value, float)
            else f"  {metric:60s} {value!s:>10} {unit}", flush=True)
    sections[name] = render_section(name, module.TITLE, rows, machine, command)
  if _OUTPUT.value:
    update_markdown(pathlib.Path(_OUTPUT.value), sections)
    print(f"wrote {_OUTPUT.value}")


if __name__ == "__main__":
  app.run(main)
