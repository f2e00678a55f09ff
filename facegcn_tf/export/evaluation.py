"""Evaluation of a batch of reconstructions from their reports (``NAME.json``).

`infer.py` measures every face as it makes it (`pipeline.assemble`, with
`facegcn_tf.metrics`): masked PSNR and SSIM of the coarse and fine lit renders against the
aligned photo (over the projected mesh ∩ face mask), the dlib identity distance between the
photo and each render composited on it (same person below 0.6), and the 68-landmark error
of the fitted geometry normalised by the outer-eye-corner distance (the same for both
stages: refinement changes the albedo only). This module gathers those figures for a folder
of photos into rows, a CSV and a markdown table.
"""

import csv
import io
import json
import math
import pathlib
from typing import Dict, List, Sequence

COLUMNS = (
    ("psnr_coarse_db", "PSNR coarse (dB)"), ("psnr_fine_db", "PSNR fine (dB)"),
    ("ssim_coarse", "SSIM coarse"), ("ssim_fine", "SSIM fine"),
    ("identity_distance_coarse", "id dist coarse"), ("identity_distance_fine", "id dist fine"),
    ("landmark_nme", "landmark NME"),
)


def collect(output_dir: pathlib.Path, names: Sequence[str]) -> List[Dict[str, object]]:
  """One row per name: its figures, or `status` saying why there are none."""
  rows = []
  for name in names:
    path = pathlib.Path(output_dir) / f"{name}.json"
    row: Dict[str, object] = {"name": name}
    try:
      losses = json.loads(path.read_text())["losses"]
      row.update({key: float(losses[key]) for key, _ in COLUMNS if key in losses})
      row["status"] = "ok"
    except FileNotFoundError:
      row["status"] = "no output"
    except (ValueError, KeyError, TypeError) as err:
      row["status"] = f"unreadable report ({err})"
    rows.append(row)
  return rows


def mean_row(rows: List[Dict[str, object]]) -> Dict[str, object]:
  out: Dict[str, object] = {"name": "mean", "status": ""}
  for key, _ in COLUMNS:
    values = [float(r[key]) for r in rows if key in r and math.isfinite(float(r[key]))]
    if values:
      out[key] = sum(values) / len(values)
  return out


def to_csv(rows: List[Dict[str, object]]) -> str:
  buffer = io.StringIO()
  fields = ["name", "status"] + [key for key, _ in COLUMNS]
  writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore")
  writer.writeheader()
  writer.writerows(rows)
  return buffer.getvalue()


def to_markdown(rows: List[Dict[str, object]]) -> str:
  header = "| photo | " + " | ".join(label for _, label in COLUMNS) + " | status |"
  lines = [header, "|" + " --- |" * (len(COLUMNS) + 2)]
  for row in rows:
    cells = [f"{row[key]:.3f}" if key in row else "–" for key, _ in COLUMNS]
    lines.append(f"| {row['name']} | " + " | ".join(cells) + f" | {row.get('status', '')} |")
  return "\n".join(lines) + "\n"
