"""Photos in, textured 3D faces out: the batch pipeline behind ``scripts/infer.py``.

For every input photo: load -> detect (MTCNN) -> dense landmarks -> align (224) -> masks
(`data.preprocess`), then per batch of faces: coarse 3DMM (analysis-by-synthesis `fitting`,
or a trained R-Net) -> fine albedo (GCN per-image refinement, or a trained generator) ->
every output file (`export.writer`).

Robustness rules (a batch tool's):

* a bad input (unreadable, no face, too small...) is reported with a one-line reason and
  the run goes on with the next one; a batch that fails as a whole is retried face by face
  so one bad face cannot sink the others;
* outputs are written atomically, JSON last, so a face is "done" exactly when its JSON
  exists (`writer.outputs_complete`); a re-run skips finished faces unless `overwrite`;
* the run ends with a summary; `scripts/infer.py` exits non-zero only if everything failed.
"""

import dataclasses
import glob
import os
import pathlib
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from facegcn_tf.data import alignment
from facegcn_tf.data.dataset import IMAGE_EXTENSIONS, list_images
from facegcn_tf.data.image_io import load_image
from facegcn_tf.data.preprocess import FacePreprocessor, PreparedFace
from facegcn_tf.errors import FaceGCNError
from facegcn_tf.export import overlay
from facegcn_tf.export import report as report_lib
from facegcn_tf.export import writer
from facegcn_tf.fitting import evaluation
from facegcn_tf.fitting.fitter import FitConfig, fit
from facegcn_tf.morphable import load_model
from facegcn_tf.morphable.model import MorphableModel
from facegcn_tf.networks.identity import build_identity_encoder, identity_distance
from facegcn_tf.render.renderer import FaceRenderer

# The errors a single input may raise without stopping the run.
INPUT_ERRORS = (FaceGCNError, ValueError, OSError, tf.errors.InvalidArgumentError)


def resolve_inputs(spec: str) -> List[pathlib.Path]:
  """A file, a folder (searched recursively for images) or a glob -> sorted image paths.

  Raises:
    ValueError: nothing matches (the message says what was looked for).
  """
  path = pathlib.Path(spec).expanduser()
  if path.is_dir():
    found = [path / rel for rel in list_images(str(path))]
  elif path.is_file():
    found = [path]
  else:
    found = sorted(pathlib.Path(p) for p in glob.glob(os.path.expanduser(spec), recursive=True)
                   if pathlib.Path(p).is_file())
  if not found:
    raise ValueError(f"no input images found at '{spec}' (a file, a folder with "
                     f"{'/'.join(e.lstrip('.') for e in IMAGE_EXTENSIONS)} files, or a glob)")
  return found


def output_names(paths: Sequence[pathlib.Path]) -> Dict[pathlib.Path, str]:
  """A unique, file-system-safe output name per input (the stem; parent folders prefixed
  for inputs that share a stem)."""
  def clean(text):
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text).lstrip(".") or "face"

  by_stem: Dict[str, List[pathlib.Path]] = {}
  for p in paths:
    by_stem.setdefault(clean(p.stem), []).append(p)
  names = {}
  for stem, group in by_stem.items():
    if len(group) == 1:
      names[group[0]] = stem
      continue
    for p in group:
      parts = [clean(x) for x in p.resolve().parent.parts[-2:]] + [stem]
      names[p] = "_".join(parts)
    if len(set(names[p] for p in group)) < len(group):  # still clashing: number them
      for k, p in enumerate(group):
        names[p] = f"{stem}_{k}"
  return names


@dataclasses.dataclass(frozen=True)
class Settings:
  """What `Reconstructor` does.

  Attributes:
    face_model: "ict" (default), "ict_coarse" or "bfm".
    model_path: model file (default: asset search path).
    min_confidence: detector threshold.
    all_faces: reconstruct every face of a photo (NAME_face0, NAME_face1, ...), not only
      the most confident one.
    batch_size: faces fitted / refined together.
    fit_config: the coarse fitting schedule.
    refine_steps: per-image GCN refinement steps (0: export the coarse albedo as "fine").
    rnet_checkpoint: a trained R-Net (``rnet.weights.h5`` from ``train.py --stage=rnet``,
      with its ``rnet.json`` beside it) or Deep3DFace's ``FaceReconModel.pb`` (BFM): the
      coarse coefficients come from it, feed-forward, instead of fitting.
    gcn_checkpoint: a trained generator (``train.py --stage=gcn``) the refinement starts
      from (with ``refine_steps=0``: used as is, feed-forward).
    formats: export formats (`writer.FORMATS`).
    texture_size: UV texture side.
    overwrite: redo faces whose outputs exist.
  """
  face_model: str = "ict"
  model_path: Optional[str] = None
  min_confidence: float = 0.9
  all_faces: bool = False
  batch_size: int = 4
  fit_config: FitConfig = FitConfig()
  refine_steps: int = 150
  rnet_checkpoint: Optional[str] = None
  gcn_checkpoint: Optional[str] = None
  formats: Tuple[str, ...] = writer.DEFAULT_FORMATS
  texture_size: int = 1024
  overwrite: bool = False

  def __post_init__(self):
    if self.batch_size < 1:
      raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
    if self.refine_steps < 0:
      raise ValueError(f"refine_steps must be >= 0, got {self.refine_steps}")
    object.__setattr__(self, "formats", writer.check_formats(self.formats))


@dataclasses.dataclass
class FaceResult:
  """The reconstruction of one face (numpy, batch axis removed)."""
  name: str
  face: PreparedFace
  coeffs: np.ndarray          # [N]
  shape: np.ndarray           # [V, 3] model space (dm)
  coarse_albedo: np.ndarray   # [V, 3] in [0, 1]
  fine_albedo: np.ndarray     # [V, 3] in [0, 1]
  lit_colors: np.ndarray      # [V, 3]
  visibility: np.ndarray      # [V]
  landmarks: np.ndarray       # [68, 2] projected, aligned pixels
  figures: Dict[str, float]   # losses and quality figures
  renders: overlay.AlignedRenders


def masked_psnr(render: np.ndarray, photo: np.ndarray, mask: np.ndarray) -> float:
  """PSNR (dB) of a render against the photo over a mask ([S, S, 3] in [0, 1]); NaN if empty."""
  if not np.asarray(mask, bool).any():
    return float("nan")
  return float(evaluation.masked_psnr(255.0 * photo, 255.0 * np.clip(render, 0, 1), mask))


def masked_ssim(render: np.ndarray, photo: np.ndarray, mask: np.ndarray) -> float:
  """Mean SSIM (Gaussian window, scikit-image) of a render vs the photo over a mask."""
  from skimage.metrics import structural_similarity  # pylint: disable=import-outside-toplevel
  m = mask.astype(bool)
  if not m.any():
    return float("nan")
  _, ssim_map = structural_similarity(photo, np.clip(render, 0, 1), channel_axis=-1,
                                      data_range=1.0, gaussian_weights=True, full=True)
  return float(ssim_map.mean(axis=-1)[m].mean())


class Reconstructor:
  """Holds the models (built once) and reconstructs batches of prepared faces.

  Args:
    settings: the `Settings`.
    refine_fn: the fine stage, `(renderer, images [B,S,S,3] 0..255, coeffs [B,N],
      face_mask [B,S,S], identity_encoder, steps) -> (fine albedo [B,V,3] in [0,1],
      {figure: [B]})`; default: GCN per-image refinement (`refinement.per_image`).
  """

  def __init__(self, settings: Settings, refine_fn: Optional[Callable] = None):
    self.settings = settings
    self.model: MorphableModel = load_model(settings.face_model, settings.model_path)
    self.renderer = FaceRenderer(self.model)
    # Fit on the 9,409-vertex ICT mesh: the subdivided one shares its coefficients exactly.
    self.fit_renderer = (FaceRenderer(load_model("ict_coarse", settings.model_path))
                         if settings.face_model == "ict" else None)
    self.template5 = alignment.five_point_template(self.model.mean_shape[self.model.landmarks68])
    self.preprocessor = FacePreprocessor(self.template5, min_confidence=settings.min_confidence)
    self.identity = build_identity_encoder("dlib", template5=self.template5)
    if refine_fn is None and (settings.refine_steps > 0 or settings.gcn_checkpoint):
      from facegcn_tf.refinement import per_image  # pylint: disable=import-outside-toplevel
      # One refiner for the whole run: its traced step is reused from batch to batch.
      refine_fn = per_image.InferenceRefiner(settings.gcn_checkpoint)
    self.refine_fn = refine_fn
    self.rnet = self._load_rnet(settings.rnet_checkpoint) if settings.rnet_checkpoint else None

  def _load_rnet(self, path: str):
    """A callable aligned crops [B,S,S,3] 0..255 -> coefficients [B,N]."""
    if str(path).endswith(".pb"):
      from facegcn_tf.networks.rnet_pb import FrozenRNet  # pylint: disable=import-outside-toplevel
      frozen = FrozenRNet(path)
      if self.model.layout.total != 257:
        raise ValueError(f"{path} is Deep3DFace's BFM R-Net (257 coefficients); use it with "
                         f"--face_model=bfm, not '{self.model.name}'")
      return lambda images: frozen(images)[0]
    import json  # pylint: disable=import-outside-toplevel
    from facegcn_tf.networks.rnet import load_rnet  # pylint: disable=import-outside-toplevel
    meta_path = pathlib.Path(path).expanduser().with_name("rnet.json")
    size = json.loads(meta_path.read_text())["input_size"] if meta_path.is_file() else 224
    net = load_rnet(path, self.model.layout, size)
    return lambda images: net(tf.image.resize(images, [size, size]), training=False)[0]

  def coarse(self, images: np.ndarray, landmarks: np.ndarray, face_mask: np.ndarray):
    """Coefficients [B, N] and figures: fitted, or predicted by the R-Net."""
    if self.rnet is not None:
      return tf.convert_to_tensor(self.rnet(tf.constant(images)), tf.float32), {}
    fitted = fit(self.renderer, images, landmarks, face_mask, self.identity,
                 self.settings.fit_config, fit_renderer=self.fit_renderer)
    return fitted.coeffs, {f"fit_{k}": np.asarray(v) for k, v in fitted.losses.items()}

  def prepare(self, path: pathlib.Path) -> Tuple[np.ndarray, List[PreparedFace]]:
    """Loads one photo and prepares its face(s): ([H, W, 3] uint8 photo, faces).

    Raises on a bad input (unreadable file, no face, ...).
    """
    rgb = load_image(path).rgb
    if self.settings.all_faces:
      return rgb, self.preprocessor.prepare_all_faces(rgb, str(path))
    return rgb, [self.preprocessor.prepare_image(rgb, str(path))]

  def reconstruct(self, faces: List[PreparedFace], names: List[str]) -> List[FaceResult]:
    """Coarse fit + fine refinement of a batch of prepared faces."""
    images = np.stack([f.aligned.image for f in faces]).astype(np.float32)
    landmarks = np.stack([f.landmarks68 for f in faces]).astype(np.float32)
    face_mask = np.stack([f.masks.face for f in faces]).astype(np.float32)
    coeffs, figures = self.coarse(images, landmarks, face_mask)
    geometry = self.renderer.geometry(coeffs)
    raster = self.renderer.rasterize(geometry)
    coarse = self.renderer.albedo(coeffs)
    if self.refine_fn is not None:
      fine, refine_figures = self.refine_fn(self.renderer, images, coeffs, face_mask,
                                            self.identity, self.settings.refine_steps)
      fine = tf.clip_by_value(tf.convert_to_tensor(fine, tf.float32), 0.0, 1.0)
      figures.update({f"refine_{k}": np.asarray(v) for k, v in refine_figures.items()})
    else:
      fine = coarse
    lit = self.renderer.lit_colors(fine, geometry, coeffs)
    visibility = self.renderer.visibility(geometry, raster)
    projected = self.renderer.landmarks(geometry).numpy()
    figures["landmark_nme"] = evaluation.landmark_nme(projected, landmarks)

    results = []
    photo01 = images / 255.0
    for i, (face, name) in enumerate(zip(faces, names)):
      renders = overlay.make_renders(self.renderer, coeffs[i], fine[i], face.aligned.image,
                                     coarse[i])
      region = renders.mask * face.masks.face
      per_face = {k: float(v[i]) for k, v in figures.items()}
      per_face["psnr_coarse_db"] = masked_psnr(renders.coarse, photo01[i], region)
      per_face["psnr_fine_db"] = masked_psnr(renders.fine, photo01[i], region)
      per_face["ssim_coarse"] = masked_ssim(renders.coarse, photo01[i], region)
      per_face["ssim_fine"] = masked_ssim(renders.fine, photo01[i], region)
      results.append(FaceResult(
          name=name, face=face, coeffs=coeffs[i].numpy(), shape=geometry.shape[i].numpy(),
          coarse_albedo=coarse[i].numpy(), fine_albedo=fine[i].numpy(),
          lit_colors=lit[i].numpy(), visibility=visibility[i].numpy(),
          landmarks=projected[i], figures=per_face, renders=renders))
    self._identity_figures(results)
    return results

  def _identity_figures(self, results: List[FaceResult]) -> None:
    """Identity distance photo <-> render composited on the photo, coarse and fine."""
    crops = np.stack([r.renders.crop for r in results]).astype(np.float32)
    for stage in ("coarse", "fine"):
      composites = np.stack([
          overlay.composite(getattr(r.renders, stage), r.renders.mask, r.renders.crop)
          for r in results]).astype(np.float32)  # uint8 values
      d = identity_distance(self.identity(crops), self.identity(composites)).numpy()
      for r, value in zip(results, d):
        r.figures[f"identity_distance_{stage}"] = float(value)

  def export(self, result: FaceResult, output_dir: pathlib.Path, photo: np.ndarray,
             flags=None, extra=None) -> List[str]:
    """Writes every output file of one face."""
    face = result.face
    transform = face.aligned.transform
    rep = report_lib.face_report(
        result.name, result.coeffs, self.model.layout, model_name=self.model.name,
        landmarks_aligned=result.landmarks,
        landmarks_original=transform.to_original(result.landmarks),
        losses=result.figures, flags=flags,
        source={"path": face.source_path, "size_hw": list(face.source_size),
                "detection_confidence": face.detection.confidence,
                "detection_box_xyxy": face.detection.box},
        extra=extra)
    return writer.export_face(
        output_dir, result.name, self.model, vertices=result.shape,
        fine_albedo=result.fine_albedo, coarse_albedo=result.coarse_albedo,
        lit_colors=result.lit_colors, visibility=result.visibility, photo=photo,
        transform=transform, renders=result.renders, report=rep,
        formats=self.settings.formats, texture_size=self.settings.texture_size)


@dataclasses.dataclass
class RunSummary:
  done: List[Tuple[str, float]] = dataclasses.field(default_factory=list)   # (name, seconds)
  skipped: List[str] = dataclasses.field(default_factory=list)
  failed: List[Tuple[str, str]] = dataclasses.field(default_factory=list)   # (input, reason)

  @property
  def all_failed(self) -> bool:
    return bool(self.failed) and not self.done and not self.skipped

  def table(self) -> str:
    lines = [f"{'input / face':40s} {'result':8s} detail"]
    lines += [f"{name:40s} {'ok':8s} {sec:.1f} s" for name, sec in self.done]
    lines += [f"{name:40s} {'skipped':8s} outputs exist (--overwrite to redo)"
              for name in self.skipped]
    lines += [f"{name:40s} {'FAILED':8s} {reason}" for name, reason in self.failed]
    lines.append(f"{len(self.done)} done, {len(self.skipped)} skipped, {len(self.failed)} failed")
    return "\n".join(lines)


def _one_line(err: Exception) -> str:
  text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
  return text if len(text) <= 300 else text[:297] + "..."


@dataclasses.dataclass
class _Pending:
  face: PreparedFace
  name: str
  photo: np.ndarray
  start: float
  faces_in_photo: int


def _reconstruct_isolating_failures(reconstructor: Reconstructor, batch: List[_Pending],
                                    summary: RunSummary) -> List[Tuple[_Pending, FaceResult]]:
  """Reconstructs a batch; if it fails as a whole, retries face by face."""
  try:
    results = reconstructor.reconstruct([p.face for p in batch], [p.name for p in batch])
    return list(zip(batch, results))
  except INPUT_ERRORS as err:
    if len(batch) == 1:
      summary.failed.append((batch[0].name, _one_line(err)))
      return []
  out = []
  for item in batch:
    out.extend(_reconstruct_isolating_failures(reconstructor, [item], summary))
  return out


def run(inputs: Sequence[pathlib.Path], output_dir: pathlib.Path, reconstructor: Reconstructor,
        flags=None, progress: bool = True) -> RunSummary:
  """Reconstructs every input; never raises for a bad input (see `RunSummary`)."""
  import json  # pylint: disable=import-outside-toplevel

  from tqdm import tqdm  # pylint: disable=import-outside-toplevel

  settings = reconstructor.settings
  output_dir = pathlib.Path(output_dir)
  output_dir.mkdir(parents=True, exist_ok=True)
  names = output_names(inputs)
  summary = RunSummary()
  pending: List[_Pending] = []

  def done_already(name: str) -> bool:
    if settings.overwrite:
      return False
    if not settings.all_faces:
      return writer.outputs_complete(output_dir, name, settings.formats)
    try:  # every face of the photo; their count is in the first face's report
      first = json.loads((output_dir / f"{name}_face0.json").read_text())
      count = int(first["extra"]["faces_in_photo"])
    except (OSError, ValueError, KeyError, TypeError):
      return False
    return all(writer.outputs_complete(output_dir, f"{name}_face{k}", settings.formats)
               for k in range(count))

  def flush():
    batch = list(pending)
    pending.clear()
    for item, result in _reconstruct_isolating_failures(reconstructor, batch, summary):
      extra = {"faces_in_photo": item.faces_in_photo,
               "seconds": round(time.perf_counter() - item.start, 3)}
      try:
        reconstructor.export(result, output_dir, item.photo, flags=flags, extra=extra)
        summary.done.append((item.name, time.perf_counter() - item.start))
      except INPUT_ERRORS as err:
        summary.failed.append((item.name, _one_line(err)))

  bar = tqdm(inputs, desc="photos", unit="img", disable=not progress)
  for path in bar:
    name = names[path]
    if done_already(name):
      summary.skipped.append(name)
      continue
    start = time.perf_counter()
    try:
      photo, faces = reconstructor.prepare(path)
    except INPUT_ERRORS as err:
      summary.failed.append((str(path), _one_line(err)))
      continue
    face_names = ([f"{name}_face{k}" for k in range(len(faces))] if settings.all_faces
                  else [name])
    for face, face_name in zip(faces, face_names):
      pending.append(_Pending(face, face_name, photo, start, len(faces)))
      if len(pending) >= settings.batch_size:
        flush()
    bar.set_postfix(done=len(summary.done), failed=len(summary.failed))
  if pending:
    flush()
  return summary
