"""Evaluates reconstructions: masked PSNR / SSIM, identity distance, landmark error, and the
overlay figures (spill, face-region PSNR / SSIM at 224 and full resolution, occluded fraction).

  python scripts/evaluate.py --photos=examples --outputs=outputs [--csv=eval.csv --markdown=eval.md]

Matches every photo under --photos to the reports `infer.py` wrote in --outputs (same output
names as infer.py uses) and tabulates the coarse and fine figures, with a mean row.
"""

import pathlib

from absl import app
from absl import flags

_PHOTOS = flags.DEFINE_string("photos", "examples", "The photos (file, folder or glob) given to infer.py.")
_OUTPUTS = flags.DEFINE_string("outputs", "outputs", "infer.py's --output_dir.")
_CSV = flags.DEFINE_string("csv", None, "Write the table as CSV here.")
_MARKDOWN = flags.DEFINE_string("markdown", None, "Write the table as markdown here.")


def main(argv):
  del argv
  from facegcn_tf import atomic  # pylint: disable=import-outside-toplevel
  from facegcn_tf.export import evaluation  # pylint: disable=import-outside-toplevel
  from facegcn_tf.pipeline.batch import output_names, resolve_inputs  # pylint: disable=import-outside-toplevel

  try:
    photos = resolve_inputs(_PHOTOS.value)
  except ValueError as err:
    raise app.UsageError(str(err)) from None
  if not pathlib.Path(_OUTPUTS.value).is_dir():
    raise app.UsageError(f"--outputs '{_OUTPUTS.value}' is not a folder")
  rows = evaluation.collect(pathlib.Path(_OUTPUTS.value), list(output_names(photos).values()))
  ok = [r for r in rows if r["status"] == "ok"]
  table_rows = rows + ([evaluation.mean_row(ok)] if ok else [])
  markdown = evaluation.to_markdown(table_rows)
  print(markdown, end="")
  if _CSV.value:
    atomic.write_text(_CSV.value, evaluation.to_csv(table_rows))
  if _MARKDOWN.value:
    atomic.write_text(_MARKDOWN.value, markdown)
  return 0 if ok else 1


if __name__ == "__main__":
  app.run(main)
