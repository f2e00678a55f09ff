"""How much per-image GCN refinement improves on the coarse stage, on real photos.

For each photo: the data pipeline (MTCNN, MediaPipe landmarks, Deep3DFace
alignment to the face model's template, masks), the coarse fit
(`fitting.fitter`, photometric loss on the skin mask), then per-image
refinement (`per_image`) under each variant of an ablation like the paper's
Fig. 7. Scores per photo and variant:

* masked PSNR (dB) of the lit render against the photo inside
  M = projected mesh ∩ face mask (the pixel loss's region; peak-to-peak 255);
* identity distance (dlib descriptor, < 0.6 = same person) between the photo
  and the render composited onto it;
* the albedo's drift where the photo says nothing: mean |T' - T| ([0, 1]
  units) over the vertices T_p does not see (what L_vert(T, T') controls; the
  masked PSNR cannot show it);
* seconds of the refinement.

`evaluate` returns an `EvaluationReport`; `markdown` formats its tables and
`figure` a comparison panel (``scripts/evaluate_refinement.py`` writes both).
"""

import dataclasses
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from facegcn_tf.assets import loaders
from facegcn_tf.data.preprocess import FacePreprocessor
from facegcn_tf.fitting import fitter as fitter_lib
from facegcn_tf.morphable import load_fitting_model, load_model
from facegcn_tf.render.renderer import FaceRenderer
from facegcn_tf.refinement import per_image


@dataclasses.dataclass(frozen=True)
class Variant:
  """One row of the ablation: a name and `PerImageConfig` changes (None = coarse only)."""
  name: str
  changes: Optional[Dict] = None


COARSE = Variant("coarse (3DMM fit)")
DEFAULT = Variant("refined: w/o L_adv (per-image default)", {})
ABLATION = (
    COARSE,
    Variant("w/o L_adv & w/o L_vert", {"vertex_loss": False}),
    Variant("w/o L_vert (on-the-fly critic)", {"vertex_loss": False, "adversarial": True}),
    DEFAULT,
    Variant("full (on-the-fly critic)", {"adversarial": True}),
    Variant("w/o L_adv, paper's K = 6", {"order": 6}),
)


@dataclasses.dataclass
class Row:
  """Scores of one photo under one variant."""
  photo: str
  variant: str
  psnr_db: float
  identity_distance: float
  unseen_change: float  # mean |T' - T| on vertices the photo does not show ([0, 1] units)
  seconds: float
  trace_seconds: float  # of `seconds`: first step beyond a later one's cost (tracing)
  render: np.ndarray    # [S, S, 3] uint8, the lit render (black outside)
  overlay: np.ndarray   # [S, S, 3] uint8, the render composited on the photo


@dataclasses.dataclass
class EvaluationReport:
  """All rows, plus the aligned photos, masks and fit time."""
  rows: List[Row]
  photos: Dict[str, np.ndarray]   # name -> aligned crop [S, S, 3] uint8
  masks: Dict[str, np.ndarray]    # name -> M [S, S]
  fit_seconds: float
  config: per_image.PerImageConfig
  face_model: str

  def row(self, photo: str, variant: str) -> Row:
    for r in self.rows:
      if r.photo == photo and r.variant == variant:
        return r
    raise KeyError((photo, variant))

  @property
  def variants(self) -> List[str]:
    return list(dict.fromkeys(r.variant for r in self.rows))


def _uint8(x01: np.ndarray) -> np.ndarray:
  return (np.clip(x01, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _trace_seconds(result: per_image.RefinementResult) -> float:
  """The first step's extra time over an average later step (≈ tracing; 0 when traced before)."""
  steps = len(next(iter(result.history.values()))) if result.history else 0
  if steps < 2:
    return 0.0
  later = (result.seconds - result.first_step_seconds.sum()) / (steps - 1)
  return float(max(result.first_step_seconds.sum() - later, 0.0))


def evaluate(photos: Sequence[Tuple[str, np.ndarray]], face_model: str = "ict",
             config: per_image.PerImageConfig = per_image.PerImageConfig(),
             variants: Sequence[Variant] = ABLATION,
             fit_config: fitter_lib.FitConfig = fitter_lib.FitConfig(),
             model_path: Optional[str] = None) -> EvaluationReport:
  """Coarse fit + per-image refinement of each photo under each variant.

  Args:
    photos: [(name, [H, W, 3] uint8 RGB)].
    face_model: "ict" (fitted on the 9,409-vertex mesh, refined on the 37k
      one), "ict_coarse" or "bfm".
    config: the per-image settings every variant starts from.
    variants: the rows (see `ABLATION`).
    fit_config: the coarse fitter's schedule.
    model_path: face model file (default: the asset search path).

  Raises:
    NoFaceError: a photo without a detectable face.
  """
  model = load_model(face_model, model_path)
  renderer = FaceRenderer(model)
  fit_model = load_fitting_model(face_model, model_path)
  fit_renderer = FaceRenderer(fit_model) if fit_model is not None else None
  template5 = model.template5
  preprocessor = FacePreprocessor(template5)
  encoder = loaders.load_identity_encoder("dlib", template5=template5)
  faces = [preprocessor.prepare_image(rgb, name) for name, rgb in photos]
  names = [name for name, _ in photos]
  images = np.stack([f.aligned.image for f in faces]).astype(np.float32)
  landmarks = np.stack([f.landmarks68 for f in faces]).astype(np.float32)
  skin = np.stack([f.masks.skin & f.aligned.valid for f in faces]).astype(np.float32)
  face_mask = np.stack([f.masks.face & f.aligned.valid for f in faces]).astype(np.float32)
  start = time.perf_counter()
  fitted = fitter_lib.fit(renderer, images, landmarks, skin, identity_encoder=encoder,
                          config=fit_config, fit_renderer=fit_renderer)
  fit_seconds = time.perf_counter() - start
  coeffs = fitted.coeffs.numpy()

  rows: List[Row] = []
  masks: Dict[str, np.ndarray] = {}
  refiners: Dict[Tuple, per_image.PerImageRefiner] = {}
  for variant in variants:
    changes = {} if variant.changes is None else dict(variant.changes)
    if variant.changes is None:
      changes["steps"] = 0   # the coarse row: only the figures of the coarse stage
    cfg = dataclasses.replace(config, **changes)
    key = tuple(sorted(dataclasses.asdict(cfg).items()))
    refiner = refiners.setdefault(key, per_image.PerImageRefiner(renderer, encoder, cfg))
    for i, name in enumerate(names):
      result = refiner(images[i:i + 1], coeffs[i:i + 1], face_mask[i:i + 1])
      masks[name] = result.mask[0]
      coarse = variant.changes is None
      render = result.coarse_render[0] if coarse else result.render[0]
      overlay_stage = "coarse" if coarse else "fine"
      m = result.mask[0][..., None]
      photo01 = images[i] / 255.0
      overlay = (result.coarse_render[0] * m + photo01 * (1 - m)) if coarse else result.overlay[0]
      rows.append(Row(
          photo=name, variant=variant.name,
          psnr_db=float(result.figures[f"psnr_{overlay_stage}"][0]),
          identity_distance=float(result.figures[f"identity_{overlay_stage}"][0]),
          unseen_change=0.0 if coarse else float(result.figures["albedo_change_unseen"][0]),
          seconds=0.0 if coarse else result.seconds,
          trace_seconds=0.0 if coarse else _trace_seconds(result), render=_uint8(render),
          overlay=_uint8(overlay)))
  return EvaluationReport(rows=rows, photos={n: images[i].astype(np.uint8)
                                             for i, n in enumerate(names)},
                          masks=masks, fit_seconds=fit_seconds, config=config,
                          face_model=face_model)


def markdown(report: EvaluationReport) -> str:
  """The quality-bar table (coarse vs default refinement) and the ablation table."""
  photos = list(report.photos)
  coarse, default = report.variants[0], None
  for v in report.variants:
    if v == DEFAULT.name:
      default = v
  lines = []
  if default is not None:
    lines += ["| photo | PSNR coarse (dB) | PSNR refined (dB) | gain (dB) | identity dist. coarse "
              "| identity dist. refined | refinement time (s) | of which tracing (s) |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for p in photos:
      c, d = report.row(p, coarse), report.row(p, default)
      lines.append(f"| {p} | {c.psnr_db:.2f} | {d.psnr_db:.2f} | {d.psnr_db - c.psnr_db:+.2f} | "
                   f"{c.identity_distance:.3f} | {d.identity_distance:.3f} | {d.seconds:.1f} | "
                   f"{d.trace_seconds:.1f} |")
    lines.append("")
  header = "| variant | " + " | ".join(
      f"{p} PSNR (dB) | {p} id. dist. | {p} unseen change | {p} time (s)" for p in photos) + " |"
  lines += [header, "| --- |" + " ---: | ---: | ---: | ---: |" * len(photos)]
  for v in report.variants:
    cells = []
    for p in photos:
      r = report.row(p, v)
      seconds = f"{r.seconds:.1f}" if r.seconds else "-"
      cells.append(f"{r.psnr_db:.2f} | {r.identity_distance:.3f} | {r.unseen_change:.3f} | "
                   f"{seconds}")
    lines.append(f"| {v} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def figure(report: EvaluationReport, photo: str) -> np.ndarray:
  """[S, (2 + n) S, 3] uint8: aligned photo | n variant renders | default overlay."""
  renders = [report.row(photo, v).render for v in report.variants]
  default = next((report.row(photo, v) for v in report.variants if v == DEFAULT.name),
                 report.rows[-1])
  return np.concatenate([report.photos[photo]] + renders + [default.overlay], axis=1)


__all__ = ["ABLATION", "COARSE", "DEFAULT", "EvaluationReport", "Row", "Variant",
           "evaluate", "figure", "markdown"]
