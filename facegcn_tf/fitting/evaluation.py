"""Quality measurements of the fitter: synthetic ground truth and real photos.

* Synthetic (`evaluate_synthetic`): random faces from `render.random_faces`, fitted; the
  shape error is the mean vertex distance (mm) after a rigid (rotation +
  translation, no scale) alignment of the fitted model-space shape to the true
  one over the model's vertices (the ICT model is itself the face area); the
  pose error is the angle of the rotation between the fitted and the true head
  rotation. The mean face (all coefficients 0) is scored the same way as the
  baseline. For ICT the error is also reported on the inner face alone
  (`inner_face_vertices`, aligned on that region), which leaves out the neck
  and the sides that a photo shows least.
* Real photos (`evaluate_photo`): the photo goes through the data pipeline
  (MTCNN, MediaPipe landmarks mapped to iBUG-68, Deep3DFace alignment to the
  model's own template, face mask); scores are the 68-landmark error of the
  fitted model normalised by the inter-ocular (outer eye corner) distance and
  the PSNR of the coarse render against the photo inside face mask ∩ render.
"""

import dataclasses
import time
from typing import Dict, List, Optional, Sequence

import numpy as np
import tensorflow as tf
from scipy.spatial.transform import Rotation

from facegcn_tf.fitting import fitter as fitter_lib
from facegcn_tf.metrics import landmark_nme, masked_psnr
from facegcn_tf.render import geometry as geo
from facegcn_tf.render import random_faces
from facegcn_tf.render.renderer import FaceRenderer

DM_TO_MM = 100.0


def rigid_align(source: np.ndarray, target: np.ndarray) -> np.ndarray:
  """[V, 3] source rotated and translated onto [V, 3] target (least squares, Kabsch)."""
  source = np.asarray(source, np.float64)
  target = np.asarray(target, np.float64)
  if source.shape != target.shape or source.ndim != 2 or source.shape[1] != 3:
    raise ValueError(f"need two [V, 3] arrays, got {source.shape} and {target.shape}")
  mu_s, mu_t = source.mean(axis=0), target.mean(axis=0)
  rotation, _ = Rotation.align_vectors(target - mu_t, source - mu_s)
  return rotation.apply(source - mu_s) + mu_t


def shape_error_mm(predicted: np.ndarray, truth: np.ndarray,
                   vertex_ids: Optional[np.ndarray] = None) -> float:
  """Mean vertex distance (mm) after rigid alignment; shapes [V, 3] in decimetres."""
  predicted = np.asarray(predicted, np.float64)
  truth = np.asarray(truth, np.float64)
  if vertex_ids is not None:
    predicted, truth = predicted[vertex_ids], truth[vertex_ids]
  aligned = rigid_align(predicted, truth)
  return float(np.mean(np.linalg.norm(aligned - truth, axis=-1)) * DM_TO_MM)


def rotation_error_deg(angles_a: np.ndarray, angles_b: np.ndarray) -> np.ndarray:
  """[..., 3] x [..., 3] Euler angles (the renderer's) -> [...] angle between the rotations."""
  ra = geo.rotation_matrices(tf.constant(np.asarray(angles_a, np.float32))).numpy()
  rb = geo.rotation_matrices(tf.constant(np.asarray(angles_b, np.float32))).numpy()
  relative = np.einsum("...ji,...jk->...ik", ra, rb)
  cos = np.clip((np.trace(relative, axis1=-2, axis2=-1) - 1.0) / 2.0, -1.0, 1.0)
  return np.degrees(np.arccos(cos))


def inner_face_vertices(model) -> Optional[np.ndarray]:
  """Vertex ids of ICT's "narrow face" (forehead to chin, no neck or sides), else None.

  The ICT file records how many of its first vertices form the narrow inner
  face; subdivision keeps the coarse vertices' indices, so those ids also name
  the inner-face corners of the subdivided mesh.
  """
  if not model.name.startswith("ict"):
    return None
  from facegcn_tf import assets  # pylint: disable=import-outside-toplevel
  from facegcn_tf.morphable import ict  # pylint: disable=import-outside-toplevel
  with np.load(assets.find_asset(ict.ICT_RELATIVE_PATH), allow_pickle=False) as data:
    if "narrow_face_vertex_count" not in data.files:
      return None
    return np.arange(int(data["narrow_face_vertex_count"]))


def default_backgrounds() -> List[np.ndarray]:
  """Public-domain photos without faces (skimage's coffee cup and cat)."""
  import skimage.data  # pylint: disable=import-outside-toplevel
  return [skimage.data.coffee(), skimage.data.chelsea()]


@dataclasses.dataclass
class SyntheticReport:
  """Per-face results of `evaluate_synthetic` (arrays of length n)."""
  shape_error_mm: np.ndarray
  mean_face_error_mm: np.ndarray
  inner_error_mm: np.ndarray
  inner_mean_face_error_mm: np.ndarray
  rotation_error_deg: np.ndarray
  yaw_deg: np.ndarray
  landmark_rmse_px: np.ndarray
  converged: np.ndarray
  seconds_per_face: float

  def summary(self) -> Dict[str, float]:
    return {
        "faces": float(len(self.shape_error_mm)),
        "shape error mean (mm)": float(np.mean(self.shape_error_mm)),
        "shape error median (mm)": float(np.median(self.shape_error_mm)),
        "shape error max (mm)": float(np.max(self.shape_error_mm)),
        "mean face error mean (mm)": float(np.mean(self.mean_face_error_mm)),
        "mean face error median (mm)": float(np.median(self.mean_face_error_mm)),
        "inner face: shape error mean (mm)": float(np.mean(self.inner_error_mm)),
        "inner face: mean face error mean (mm)": float(np.mean(self.inner_mean_face_error_mm)),
        "rotation error mean (deg)": float(np.mean(self.rotation_error_deg)),
        "rotation error max (deg)": float(np.max(self.rotation_error_deg)),
        "landmark RMSE mean (px)": float(np.mean(self.landmark_rmse_px)),
        "converged fraction": float(np.mean(self.converged)),
        "fit seconds per face": float(self.seconds_per_face),
    }


def evaluate_synthetic(renderer: FaceRenderer, count: int = 20, seed: int = 0,
                       config: fitter_lib.FitConfig = fitter_lib.FitConfig(),
                       fit_renderer: Optional[FaceRenderer] = None, batch_size: int = 8,
                       prior: random_faces.FacePrior = random_faces.FacePrior(),
                       backgrounds: Optional[Sequence[np.ndarray]] = None,
                       landmark_noise: float = 1.0) -> SyntheticReport:
  """Fits `count` random faces rendered by `renderer` and scores them.

  Args:
    renderer: renders the targets (and the fit results).
    count: number of faces.
    seed: seed of the random faces, backgrounds and landmark noise.
    config, fit_renderer: passed to the fitter.
    batch_size: faces fitted jointly.
    prior: ranges of the random faces.
    backgrounds: photos to composite over (default `default_backgrounds()`).
    landmark_noise: landmark noise std, pixels.
  """
  rng = np.random.default_rng(seed)
  model = renderer.model
  bounded = fitter_lib.default_exp_range(model) is not None
  coeffs = random_faces.random_coefficients(renderer.layout, count, rng, prior,
                                            bounded_expressions=bounded)
  photos = list(backgrounds) if backgrounds is not None else default_backgrounds()
  fitter = fitter_lib.Fitter(renderer, config=config, fit_renderer=fit_renderer)
  slices = renderer.layout.slices()
  inner = inner_face_vertices(model)
  shape_err, base_err, rot_err, lm_rmse, converged = [], [], [], [], []
  inner_err, inner_base = [], []
  seconds = 0.0
  for start in range(0, count, batch_size):
    truth = coeffs[start:start + batch_size]
    faces = random_faces.render_faces(renderer, truth, random_faces.background_crops(
        photos, len(truth), renderer.image_size, rng), rng, landmark_noise)
    t0 = time.perf_counter()
    result = fitter(faces.images, faces.landmarks68, faces.face_mask)
    seconds += time.perf_counter() - t0
    fitted = result.coeffs.numpy()
    fitted_shape = renderer.shape(tf.constant(fitted)).numpy()
    true_shape = renderer.shape(tf.constant(truth)).numpy()
    for b in range(len(truth)):
      shape_err.append(shape_error_mm(fitted_shape[b], true_shape[b]))
      base_err.append(shape_error_mm(model.mean_shape, true_shape[b]))
      if inner is not None:
        inner_err.append(shape_error_mm(fitted_shape[b], true_shape[b], inner))
        inner_base.append(shape_error_mm(model.mean_shape, true_shape[b], inner))
    rot_err.extend(rotation_error_deg(fitted[:, slices["angles"]], truth[:, slices["angles"]]))
    projected = renderer.landmarks(result.rendering.geometry).numpy()
    lm_rmse.extend(np.sqrt(np.mean(np.sum(np.square(projected - faces.true_landmarks68), -1), -1)))
    converged.extend(result.converged)
  return SyntheticReport(
      shape_error_mm=np.array(shape_err), mean_face_error_mm=np.array(base_err),
      inner_error_mm=np.array(inner_err if inner is not None else [np.nan] * count),
      inner_mean_face_error_mm=np.array(inner_base if inner is not None else [np.nan] * count),
      rotation_error_deg=np.array(rot_err),
      yaw_deg=np.degrees(coeffs[:, slices["angles"]][:, 1]),
      landmark_rmse_px=np.array(lm_rmse), converged=np.array(converged),
      seconds_per_face=seconds / count)


@dataclasses.dataclass
class PhotoReport:
  """Results of `evaluate_photo` for one photo."""
  name: str
  landmark_nme: float
  psnr_db: float
  mean_face_landmark_nme: float
  converged: bool
  seconds: float
  overlay: np.ndarray   # [S, 3S, 3] uint8: photo | render over photo | render with landmarks


def _draw_points(image: np.ndarray, points: np.ndarray, color) -> None:
  import cv2  # pylint: disable=import-outside-toplevel
  for x, y in np.asarray(points):
    cv2.circle(image, (int(round(x)), int(round(y))), 1, color, -1, lineType=cv2.LINE_AA)


def overlay_panel(photo: np.ndarray, rendered: np.ndarray, covered: np.ndarray,
                  target_landmarks: np.ndarray, fitted_landmarks: np.ndarray) -> np.ndarray:
  """[S, 3S, 3] uint8: photo | render pasted on the photo | render alone with landmarks
  (green: target, red: fitted)."""
  photo = np.clip(photo, 0, 255).astype(np.uint8)
  render = np.clip(rendered, 0, 255)
  cov = covered[..., None]
  pasted = (render * cov + photo * (1 - cov)).astype(np.uint8)
  alone = (render * cov + 255 * (1 - cov)).astype(np.uint8)
  _draw_points(alone, target_landmarks, (0, 160, 0))
  _draw_points(alone, fitted_landmarks, (220, 0, 0))
  return np.concatenate([photo, pasted, alone], axis=1)


def evaluate_photo(renderer: FaceRenderer, prepared, name: str,
                   config: fitter_lib.FitConfig = fitter_lib.FitConfig(),
                   fit_renderer: Optional[FaceRenderer] = None,
                   identity_encoder=None) -> PhotoReport:
  """Fits one prepared photo (`data.preprocess.PreparedFace`) and scores it."""
  image = prepared.aligned.image.astype(np.float32)[None]
  landmarks = np.asarray(prepared.landmarks68, np.float32)[None]
  mask = prepared.masks.face.astype(np.float32)[None]
  t0 = time.perf_counter()
  result = fitter_lib.fit(renderer, image, landmarks, mask, identity_encoder=identity_encoder,
                          config=config, fit_renderer=fit_renderer)
  seconds = time.perf_counter() - t0
  fitted = renderer.landmarks(result.rendering.geometry).numpy()
  neutral = result.coeffs.numpy().copy()   # same pose, mean shape: the baseline
  slices = renderer.layout.slices()
  neutral[:, slices["id"]] = 0.0
  neutral[:, slices["exp"]] = 0.0
  mean_face = renderer.landmarks(renderer.geometry(tf.constant(neutral))).numpy()
  rendered = result.rendering.image.numpy()[0] * 255.0
  covered = result.rendering.mask.numpy()[0]
  psnr = masked_psnr(image[0], rendered, mask[0] * covered)
  panel = overlay_panel(image[0], rendered, covered, landmarks[0], fitted[0])
  return PhotoReport(name=name, landmark_nme=float(landmark_nme(fitted[0], landmarks[0])),
                     psnr_db=float(psnr),
                     mean_face_landmark_nme=float(landmark_nme(mean_face[0], landmarks[0])),
                     converged=bool(result.converged[0]), seconds=seconds, overlay=panel)


def photo_preprocessor(model):
  """A `data.preprocess.FacePreprocessor` aligning photos to `model`'s own 5-point template."""
  from facegcn_tf.data.preprocess import FacePreprocessor  # pylint: disable=import-outside-toplevel
  return FacePreprocessor(model.template5)


def synthetic_table(report: SyntheticReport) -> str:
  """Markdown table of a `SyntheticReport` summary."""
  lines = ["| metric | value |", "| --- | ---: |"]
  for name, value in report.summary().items():
    lines.append(f"| {name} | {value:.3g} |")
  return "\n".join(lines)


def photo_table(reports: Sequence[PhotoReport]) -> str:
  """Markdown table of `PhotoReport`s."""
  lines = ["| photo | landmark NME (fit) | landmark NME (mean shape, fitted pose) | "
           "masked PSNR (dB) | converged | fit seconds |",
           "| --- | ---: | ---: | ---: | --- | ---: |"]
  for r in reports:
    lines.append(f"| {r.name} | {100 * r.landmark_nme:.2f}% | {100 * r.mean_face_landmark_nme:.2f}% "
                 f"| {r.psnr_db:.2f} | {r.converged} | {r.seconds:.1f} |")
  return "\n".join(lines)
