"""Evaluation of a batch of reconstructions from their reports (``NAME.json``).

`infer.py` measures every face as it makes it (`pipeline.assemble`, with
`facegcn_tf.metrics`): masked PSNR and SSIM of the coarse and fine lit renders against the
aligned photo (over the projected mesh ∩ face mask), the dlib identity distance between the
photo and each render composited on it (same person below 0.6), and the 68-landmark error
of the fitted geometry normalised by the outer-eye-corner distance (the same for both
stages: refinement changes the albedo only).

The overlay figures (`overlay_figures`, issue #11) judge the fine overlay the writer makes
against its photo, inside the face region (`metrics.face_region_mask`: the 68-landmark hull
raised over the forehead, slightly dilated): its spill (the share of changed pixels outside
the region), and PSNR / SSIM inside the region, on the aligned 224 crop and on the
full-resolution photo; plus the occluded fraction (the mean of the coarse stage's occlusion
estimate over the rendered face, when the fitter makes one).

This module also gathers those figures for a folder of photos into rows, a CSV and a
markdown table.
"""

import csv
import io
import json
import math
import pathlib
from typing import Dict, List, Optional, Sequence

import numpy as np

from facegcn_tf import metrics
from facegcn_tf.data.alignment import AlignTransform
from facegcn_tf.export import overlay

COLUMNS = (
    ("psnr_coarse_db", "PSNR coarse (dB)"), ("psnr_fine_db", "PSNR fine (dB)"),
    ("psnr_copy_db", "PSNR direct copy (dB)"),
    ("ssim_coarse", "SSIM coarse"), ("ssim_fine", "SSIM fine"),
    ("identity_distance_coarse", "id dist coarse"), ("identity_distance_fine", "id dist fine"),
    ("identity_distance_copy", "id dist direct copy"),
    ("landmark_nme", "landmark NME"),
    ("spill", "spill"), ("psnr_overlay_224_db", "region PSNR 224 (dB)"),
    ("ssim_overlay_224", "region SSIM 224"), ("psnr_overlay_full_db", "region PSNR full (dB)"),
    ("ssim_overlay_full", "region SSIM full"), ("occluded_fraction", "occluded"),
)


def _window(transform: AlignTransform, region: np.ndarray, shape) -> tuple:
  """(rows, cols) slices of the photo covering the aligned crop's footprint and `region`."""
  size = transform.size
  corners = transform.to_original(np.array([[-1.0, -1.0], [size, -1.0], [-1.0, size],
                                            [size, size]]))
  ys, xs = np.nonzero(region)
  low = np.floor(corners.min(axis=0)) - 2
  high = np.ceil(corners.max(axis=0)) + 3
  if len(xs):  # with the margin `metrics.region_figures` gives SSIM's window
    low = np.minimum(low, [xs.min() - 8, ys.min() - 8])
    high = np.maximum(high, [xs.max() + 9, ys.max() + 9])
  x0, y0 = np.clip(low, 0, [shape[1], shape[0]]).astype(int)
  x1, y1 = np.clip(high, 0, [shape[1], shape[0]]).astype(int)
  return slice(y0, y1), slice(x0, x1)


def overlay_figures(photo: np.ndarray, renders: overlay.AlignedRenders,
                    transform: AlignTransform, landmarks68: np.ndarray,
                    occlusion: Optional[np.ndarray] = None,
                    feather: float = overlay.DEFAULT_FEATHER) -> Dict[str, float]:
  """The #11 figures of one face's fine overlay.

  Args:
    photo: [H, W, 3] uint8 the full-resolution photo.
    renders: the aligned panels (crop, fine render, coverage mask).
    transform: the face's alignment (aligned <-> photo pixels).
    landmarks68: [68, 2] the detected landmarks in aligned pixels.
    occlusion: [S, S] the coarse stage's occlusion estimate in [0, 1], or None.
    feather: the overlay's edge feather (aligned pixels), as the writer uses it.

  Returns:
    ``spill`` (full resolution), ``psnr_overlay_224_db`` / ``ssim_overlay_224`` (the
    aligned composite vs the crop), ``psnr_overlay_full_db`` / ``ssim_overlay_full`` (the
    pasted-back overlay vs the photo), ``overlay_region_changed`` (share of the region the
    overlay changes, full resolution) and ``occluded_fraction`` (NaN without `occlusion`).
  """
  size = renders.crop.shape[0]
  alpha = overlay.feather_alpha(renders.mask, feather)
  aligned = overlay.composite(renders.fine, alpha, renders.crop)
  at_224 = metrics.region_figures(renders.crop, aligned,
                                  metrics.face_region_mask(landmarks68, (size, size)))
  pasted = overlay.paste_back(photo, renders.fine, renders.mask, transform, feather=feather)
  region = metrics.face_region_mask(transform.to_original(landmarks68), photo.shape[:2])
  # The overlay changes nothing outside the crop's footprint: judge the window holding the
  # footprint and the region (the same figures, without full copies of a large photo).
  rows, cols = _window(transform, region, photo.shape[:2])
  full = metrics.region_figures(photo[rows, cols], pasted[rows, cols], region[rows, cols])
  # renders.mask is the rendered face minus the occluders: the face is their union.
  occluded = (float("nan") if occlusion is None else metrics.masked_mean(
      np.asarray(occlusion, np.float32), np.maximum(renders.mask, occlusion)))
  return {"spill": full["spill"], "psnr_overlay_224_db": at_224["psnr_db"],
          "ssim_overlay_224": at_224["ssim"], "psnr_overlay_full_db": full["psnr_db"],
          "ssim_overlay_full": full["ssim"], "overlay_region_changed": full["region_changed"],
          "occluded_fraction": occluded}


def collect(output_dir: pathlib.Path, names: Sequence[str]) -> List[Dict[str, object]]:
  """One row per name: its figures, or `status` saying why there are none."""
  rows = []
  for name in names:
    path = pathlib.Path(output_dir) / f"{name}.json"
    row: Dict[str, object] = {"name": name}
    try:
      losses = json.loads(path.read_text())["losses"]
      row.update({key: float(losses[key]) for key, _ in COLUMNS
                  if losses.get(key) is not None})
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
    cells = [f"{row[key]:.3f}" if key in row and math.isfinite(float(row[key])) else "–"
             for key, _ in COLUMNS]
    lines.append(f"| {row['name']} | " + " | ".join(cells) + f" | {row.get('status', '')} |")
  return "\n".join(lines) + "\n"
