"""Analysis-by-synthesis fitting of the coarse 3DMM to aligned photos.

Given Deep3DFace-aligned crops, their 68 landmarks and a face mask, `fit` finds
per image the identity, expression, albedo, pose and SH lighting coefficients
whose rendering best explains the photo under Deep3DFace's losses
(`fitting.losses`). Schedule:

1. **Pose start** (`FitConfig.init_pose`): OpenCV PnP between the landmarks and
   the model's mean-shape landmark vertices (`pose_init`).
2. **Stages "pose" and "landmarks"**: the pose alone, then pose, identity and
   expression, against the landmark loss and the coefficient prior (a rigid
   stage first keeps the shape from bending to absorb a wrong head rotation).
   Only the 68 landmark vertices are posed, so a step costs 1-2 ms at batch 8.
3. **Appearance start** (`FitConfig.init_appearance`): albedo and SH lighting
   coefficients in closed form, by alternating ridge least squares between the
   lit albedo at the visible vertices inside the face mask and the photo's
   colours there (`Fitter.initial_appearance`).
4. **Stage "photometric"**: everything, with the photometric, landmark,
   regulariser, reflectance and gamma losses (plus the identity loss when an
   identity encoder is given), rendered at `FitConfig.photo_size` (112 px by
   default: a quarter of the pixels). With `FitConfig.occlusion` set, the stage
   alternates with an outlier segmentation: at each `occlusion_at` fraction of its
   steps the pixels the model cannot explain are segmented as occluders
   (`fitting.occlusion`, FOCUS-style) and leave the photometric loss for the rest of
   the fit; the segmentation is redone on the final fit (`FitResult.occlusion`).
5. **Stage "refine"** (off by default): the same at the renderer's own
   resolution.

Each stage runs Adam (`adam.adam_update`) with one learning rate per
coefficient group, constant for most of the stage and then decayed (cosine) to
`final_lr_fraction` (`lr_scale`), inside one `tf.function` step per stage. The objective is the SUM of the per-image losses,
so the images of a batch do not influence each other (Adam normalises each
coefficient separately). ICT expression weights are kept in [0, 1] by
projection (clipping after every step): a sigmoid would make inactive
blendshapes (weight ~0) nearly impossible to switch on.

Optimising a finer model is wasted effort when a coarser one shares its
coefficients: pass `fit_renderer` (e.g. the 9,409-vertex ICT model for the
37k-vertex subdivided one) to run every stage on it; the returned rendering and
the final losses use `renderer`. There is no random initialisation, so a fit
is deterministic.
"""

import dataclasses
import math
from typing import Dict, Optional, Tuple, Union

import numpy as np
import tensorflow as tf

from facegcn_tf.fitting import losses
from facegcn_tf.fitting import occlusion as occlusion_lib
from facegcn_tf.fitting import pose_init
from facegcn_tf.fitting.adam import adam_update
from facegcn_tf.morphable.model import COEFF_NAMES
from facegcn_tf.networks import occluder_net as occluder_net_lib
from facegcn_tf.render import geometry as geo
from facegcn_tf.render import lighting
from facegcn_tf.render import sampling
from facegcn_tf.render.renderer import FaceRenderer, Rendering

STAGES = ("pose", "landmarks", "photometric", "refine")
_POSE = ("angles", "trans")
_POSE_AND_SHAPE = ("id", "exp", "angles", "trans")


@dataclasses.dataclass(frozen=True)
class LearningRates:
  """Adam step sizes per coefficient group (units: coefficient units per step)."""
  id: float = 0.05
  exp: float = 0.02
  tex: float = 0.05
  angles: float = 0.01    # radians
  gamma: float = 0.02
  trans: float = 0.01     # decimetres

  def __post_init__(self):
    for name in COEFF_NAMES:
      value = getattr(self, name)
      if not (isinstance(value, (int, float)) and np.isfinite(value) and value >= 0):
        raise ValueError(f"LearningRates.{name} must be a finite number >= 0, got {value!r}")


@dataclasses.dataclass(frozen=True)
class FitConfig:
  """Settings of `fit`.

  Attributes:
    pose_steps: steps of the rigid stage (pose only, landmark loss).
    landmark_steps: steps of the landmark stage (pose, identity, expression).
    photo_steps: steps of the low-resolution photometric stage.
    photo_size: render side (px) of the photometric stage.
    refine_steps: steps of the full-resolution photometric stage.
    learning_rates: Adam step sizes per coefficient group.
    final_lr_fraction, decay_fraction: each stage keeps its learning rates for
      the first (1 - decay_fraction) of its steps, then decays them (cosine) to
      final_lr_fraction of their value.
    weights: loss weights; None: `fit_weights(model)`.
    exp_range: (low, high) bounds of the expression coefficients, None for
      none, or "auto": [0, 1] for ICT models (blendshape weights), none
      otherwise (BFM's PCA expressions).
    init_pose: start the pose from PnP on the landmarks (else frontal at the origin).
    init_appearance: start albedo and lighting from closed-form least squares
      (`Fitter.initial_appearance`; else mean albedo, ambient light).
    init_ridge: ridge weight of those least squares, relative to the mean
      diagonal of the normal equations.
    convergence_window, convergence_tol: an image counts as converged when the
      mean of its loss over the last `convergence_window` steps of the last
      stage differs by less than `convergence_tol` (relative) from the mean
      over the window before (`converged_flags`).
    occlusion: occluder segmentation settings (`fitting.occlusion`), None for none.
    occlusion_at: fractions of the photometric stage after which occluders are segmented
      (again) and leave the photometric loss for the rest of the fit.
  """
  pose_steps: int = 100
  landmark_steps: int = 200
  photo_steps: int = 500
  photo_size: int = 112
  refine_steps: int = 0
  learning_rates: LearningRates = LearningRates()
  final_lr_fraction: float = 0.1
  decay_fraction: float = 0.2
  weights: Optional[losses.LossWeights] = None
  exp_range: Union[str, None, Tuple[float, float]] = "auto"
  init_pose: bool = True
  init_appearance: bool = True
  init_ridge: float = 0.1
  convergence_window: int = 25
  convergence_tol: float = 1e-2
  occlusion: Optional[occlusion_lib.OcclusionConfig] = occlusion_lib.OcclusionConfig()
  occlusion_at: Tuple[float, ...] = (0.0, 0.5)

  def __post_init__(self):
    for name in ("pose_steps", "landmark_steps", "photo_steps", "refine_steps", "convergence_window"):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"FitConfig.{name} must be an int >= 0, got {value!r}")
    if not (isinstance(self.photo_size, (int, np.integer)) and self.photo_size >= 16):
      raise ValueError(f"FitConfig.photo_size must be an int >= 16, got {self.photo_size!r}")
    if not (0 < self.final_lr_fraction <= 1 and 0 <= self.decay_fraction <= 1):
      raise ValueError(f"FitConfig.final_lr_fraction must be in (0, 1] and decay_fraction in "
                       f"[0, 1], got {self.final_lr_fraction}, {self.decay_fraction}")
    if not (self.init_ridge >= 0 and self.convergence_tol > 0):
      raise ValueError("FitConfig.init_ridge must be >= 0 and convergence_tol > 0")
    if self.exp_range is not None and not isinstance(self.exp_range, str):
      try:
        low, high = (float(v) for v in self.exp_range)
      except (TypeError, ValueError):
        raise ValueError(f"FitConfig.exp_range must be 'auto', None or (low, high), "
                         f"got {self.exp_range!r}") from None
      if not low < high:
        raise ValueError(f"FitConfig.exp_range must be (low, high) with low < high, "
                         f"got {self.exp_range!r}")
    elif isinstance(self.exp_range, str) and self.exp_range != "auto":
      raise ValueError(f"FitConfig.exp_range must be 'auto', None or (low, high), "
                       f"got {self.exp_range!r}")
    if self.weights is not None and not isinstance(self.weights, losses.LossWeights):
      raise ValueError("FitConfig.weights must be a LossWeights or None")
    if not isinstance(self.learning_rates, LearningRates):
      raise ValueError("FitConfig.learning_rates must be a LearningRates")
    if self.occlusion is not None and not isinstance(self.occlusion,
                                                     occlusion_lib.OcclusionConfig):
      raise ValueError("FitConfig.occlusion must be an OcclusionConfig or None")
    if not all(0.0 <= at < 1.0 for at in self.occlusion_at):
      raise ValueError(f"FitConfig.occlusion_at must hold fractions in [0, 1), "
                       f"got {self.occlusion_at!r}")

  def replace(self, **changes) -> "FitConfig":
    return dataclasses.replace(self, **changes)

  def scaled(self, factor: float) -> "FitConfig":
    """The same schedule with every stage's step count times `factor` (rounded; the
    landmark stage keeps at least one step). `infer.py --fit_steps` and `fit_data.py`."""
    if not (isinstance(factor, (int, float)) and np.isfinite(factor) and factor > 0):
      raise ValueError(f"FitConfig.scaled needs a finite factor > 0, got {factor!r}")
    return self.replace(pose_steps=round(self.pose_steps * factor),
                        landmark_steps=max(1, round(self.landmark_steps * factor)),
                        photo_steps=round(self.photo_steps * factor),
                        refine_steps=round(self.refine_steps * factor))


@dataclasses.dataclass
class FitResult:
  """What `fit` returns (B images).

  Attributes:
    coeffs: [B, N] float32 tf.Tensor, the fitted coefficients (model layout).
    rendering: the lit coarse rendering of `coeffs` by the caller's renderer.
    losses: term name -> [B] float32 final per-image values at the renderer's
      resolution, plus "total" (the weighted sum).
    history: stage name -> [steps, B] per-image objective at every step.
    converged: [B] bool (see `FitConfig.convergence_tol`).
    initial_pose: (angles [B, 3], trans [B, 3]) the pose the fit started from.
    occlusion: [B, S, S] float32 in {0, 1}, the occluders segmented on the final fit
      (zeros without `FitConfig.occlusion` or a photometric stage).
  """
  coeffs: tf.Tensor
  rendering: Rendering
  losses: Dict[str, np.ndarray]
  history: Dict[str, np.ndarray]
  converged: np.ndarray
  initial_pose: Tuple[np.ndarray, np.ndarray]
  occlusion: Optional[np.ndarray] = None


def fit_weights(model) -> losses.LossWeights:
  """Loss weights for fitting one image: Deep3DFace's, three of them adapted.

  * reg 1e-4 instead of 3e-4: Deep3DFace's weight was set for a regressor
    trained over a data set; per image it over-shrinks the shape (on synthetic
    faces drawn from the model's own prior the true coefficients scored a
    clearly HIGHER total loss than the fit).
  * reflectance 0.5 instead of 5.0: the project's stand-in albedo is smooth by
    construction and its coefficients already carry a prior (w_tex); at 5.0,
    albedos drawn from that prior pay as much reflectance loss as a good fit's
    whole photometric residual.
  * ICT models: reg_exp 7.2 = 0.8 x 3^2. A BFM expression coefficient is in
    units of one standard deviation, an ICT blendshape weight of 1 is a full
    expression, about 3 standard deviations.

  See docs/fitting.md for the measurements.
  """
  exp = 0.8 * 3.0 ** 2 if model.name.startswith("ict") else 0.8
  return losses.LossWeights(reg=1e-4, reflectance=0.5, reg_exp=exp)


def default_exp_range(model) -> Optional[Tuple[float, float]]:
  """[0, 1] for ICT blendshape weights, None (unbounded) for other models."""
  return (0.0, 1.0) if model.name.startswith("ict") else None


def lr_scale(step: int, steps: int, final_fraction: float, decay_fraction: float) -> float:
  """Learning-rate factor at 0-based `step` of `steps`.

  1 for the first (1 - decay_fraction) of the steps, then a cosine decay to
  `final_fraction` at the last step.
  """
  decay_steps = int(round(decay_fraction * steps))
  start = steps - decay_steps
  if decay_steps <= 1 or step < start:
    return 1.0
  progress = (step - start) / (decay_steps - 1)
  return final_fraction + (1.0 - final_fraction) * 0.5 * (1.0 + math.cos(math.pi * progress))


def converged_flags(history: np.ndarray, window: int, tol: float) -> np.ndarray:
  """[steps, B] per-image losses -> [B] bool.

  True where the mean loss of the last `window` steps differs from the mean of
  the `window` steps before by less than `tol` (relative) and is finite.
  Windows shrink to half the history when it is shorter than 2 x `window`.
  """
  history = np.asarray(history, np.float64)
  if history.ndim != 2:
    raise ValueError(f"history must be [steps, B], got shape {history.shape}")
  window = min(window, history.shape[0] // 2)
  if window < 1:
    return np.zeros([history.shape[1]], bool)
  last = history[-window:].mean(axis=0)
  before = history[-2 * window:-window].mean(axis=0)
  change = np.abs(last - before) / np.maximum(np.abs(before), 1e-12)
  return np.isfinite(last) & (change < tol)


@dataclasses.dataclass(frozen=True)
class _Stage:
  name: str
  steps: int
  renderer: Optional[FaceRenderer]   # None: landmarks only
  trainable: Tuple[str, ...]


def _check_inputs(images, landmarks68, face_mask, size: int):
  images = np.asarray(images, np.float32)
  landmarks68 = np.asarray(landmarks68, np.float32)
  face_mask = np.asarray(face_mask, np.float32)
  if images.ndim != 4 or images.shape[1:] != (size, size, 3) or images.shape[0] < 1:
    raise ValueError(f"images must be [B, {size}, {size}, 3] aligned crops (the renderer's "
                     f"size), got shape {images.shape}")
  batch = images.shape[0]
  if landmarks68.shape != (batch, 68, 2):
    raise ValueError(f"landmarks68 must be [{batch}, 68, 2], got shape {landmarks68.shape}")
  if face_mask.shape != (batch, size, size):
    raise ValueError(f"face_mask must be [{batch}, {size}, {size}], got shape {face_mask.shape}")
  for name, array in (("images", images), ("landmarks68", landmarks68), ("face_mask", face_mask)):
    if not np.all(np.isfinite(array)):
      raise ValueError(f"{name} contains NaN or inf")
  if images.min() < -1.0 or images.max() > 256.0:  # a little slack for resampling overshoot
    raise ValueError(f"images must be RGB in [0, 255], got values in "
                     f"[{images.min():g}, {images.max():g}]")
  images = np.clip(images, 0.0, 255.0)
  if images.max() <= 1.0:
    raise ValueError("images look like [0, 1] floats; pass RGB in [0, 255]")
  if face_mask.min() < 0 or face_mask.max() > 1:
    raise ValueError("face_mask must hold values in [0, 1]")
  return images, landmarks68, face_mask


class Fitter:
  """Fits coefficients to batches of aligned photos; build once, call many times.

  The traced step functions are kept, so later calls with the same batch size
  skip tracing.

  Args:
    renderer: the caller's renderer; fixes the image size, renders the result.
    identity_encoder: optional identity network (`networks.identity`) for the
      identity loss.
    config: the `FitConfig`.
    fit_renderer: renderer of a model with the same coefficient layout to
      optimise on (e.g. the coarse ICT model); default: `renderer`'s model.
    occluder_net: optional occluder network (`networks.occluder_net.OccluderNet`). With
      `config.occlusion` set, its confident pixels are left out of the fit from the first
      step and seed every occlusion estimate.
  """

  def __init__(self, renderer: FaceRenderer, identity_encoder=None,
               config: FitConfig = FitConfig(), fit_renderer: Optional[FaceRenderer] = None,
               occluder_net=None):
    if not isinstance(config, FitConfig):
      raise ValueError(f"config must be a FitConfig, got {type(config).__name__}")
    base = fit_renderer if fit_renderer is not None else renderer
    if base.layout != renderer.layout:
      raise ValueError(f"fit_renderer's coefficient layout {base.layout} differs from the "
                       f"renderer's {renderer.layout}")
    self.renderer = renderer
    self.config = config
    self.encoder = identity_encoder
    self.occluder_net = occluder_net
    self.model = base.model
    self.size = renderer.image_size
    self.exp_range = (default_exp_range(self.model) if config.exp_range == "auto"
                      else config.exp_range)
    self.weights = config.weights if config.weights is not None else fit_weights(self.model)
    lm = self.model.landmarks68
    self._lm_points = self.model.mean_shape[lm]
    self._lm_mean = tf.constant(self._lm_points)
    self._lm_basis = tf.constant(np.concatenate(
        [self.model.id_basis[:, lm], self.model.exp_basis[:, lm]], axis=0))
    self._lr = {name: float(getattr(config.learning_rates, name)) for name in COEFF_NAMES}

    def stage_renderer(size):
      if base.image_size == size and base.camera == renderer.camera.resized(size):
        return base
      return FaceRenderer(self.model, renderer.camera.resized(size), base.whole_mesh)

    self._stages = (
        _Stage("pose", config.pose_steps, None, _POSE),
        _Stage("landmarks", config.landmark_steps, None, _POSE_AND_SHAPE),
        _Stage("photometric", config.photo_steps,
               stage_renderer(config.photo_size) if config.photo_steps else None, COEFF_NAMES),
        _Stage("refine", config.refine_steps,
               stage_renderer(self.size) if config.refine_steps else None, COEFF_NAMES),
    )
    self._steps = {stage.name: self._make_step(stage) for stage in self._stages if stage.steps}
    self._segment_renderer = stage_renderer(self.size)

  # ---- model pieces -------------------------------------------------------------------------

  @property
  def layout(self):
    return self.renderer.layout

  def coefficients(self, params: Dict[str, tf.Tensor]) -> tf.Tensor:
    """Parts -> [B, N] coefficient vector (layout order)."""
    return tf.concat([params[name] for name in COEFF_NAMES], axis=-1)

  def project_landmarks(self, params: Dict[str, tf.Tensor]) -> tf.Tensor:
    """[B, 68, 2] landmarks on the caller's pixel grid (only 68 vertices are posed)."""
    weights = tf.concat([params["id"], params["exp"]], axis=-1)
    shape = self._lm_mean + tf.einsum("bk,kvc->bvc", weights, self._lm_basis)
    vertices = geo.rigid_transform(shape, params["angles"], params["trans"])
    return self.renderer.camera.project(vertices)

  def loss_terms(self, params: Dict[str, tf.Tensor], data: Dict[str, tf.Tensor],
                 renderer: Optional[FaceRenderer]):
    """Per-image loss terms ({name: [B]}) and the rendering (None without renderer)."""
    w = self.weights
    terms = {
        "landmark": losses.landmark_loss(self.project_landmarks(params), data["landmarks"],
                                         image_size=self.size),
        "reg": losses.regularization_loss(params["id"], params["exp"], params["tex"],
                                          w.reg_id, w.reg_exp, w.reg_tex),
    }
    if renderer is None:
      return terms, None
    coeffs = self.coefficients(params)
    albedo = renderer.albedo(coeffs)
    out = renderer.render(coeffs, vertex_colors=albedo)
    rendered = out.image * 255.0
    terms["photo"] = losses.photometric_loss(data["images"], rendered, data["mask"] * out.mask)
    terms["reflectance"] = losses.reflectance_loss(albedo, renderer.model.skin_mask)
    terms["gamma"] = losses.gamma_loss(params["gamma"])
    if self.encoder is not None:
      covered = out.mask[..., tf.newaxis]
      overlay = tf.clip_by_value(rendered, 0.0, 255.0) * covered + data["images"] * (1 - covered)
      if renderer.image_size != self.size:
        overlay = tf.image.resize(overlay, [self.size, self.size], method="bilinear")
      terms["identity"] = losses.identity_loss(data["photo_features"], self.encoder(overlay))
    return terms, out

  # ---- optimisation -------------------------------------------------------------------------

  def _make_step(self, stage: _Stage):
    trainable = stage.trainable
    low_high = self.exp_range

    # No AutoGraph: the step has no tensor-dependent Python control flow.
    @tf.function(reduce_retracing=True, autograph=False)
    def step(params, m, v, count, lr_scale, data):
      variables = [params[name] for name in trainable]
      with tf.GradientTape() as tape:
        tape.watch(variables)
        terms, _ = self.loss_terms(params, data, stage.renderer)
        per_image = losses.total_loss(terms, self.weights)
        objective = tf.reduce_sum(per_image)
      grads = tape.gradient(objective, variables)
      new_params, new_m, new_v = dict(params), {}, {}
      for name, grad in zip(trainable, grads):
        grad = tf.where(tf.math.is_finite(grad), grad, tf.zeros_like(grad))
        value, new_m[name], new_v[name] = adam_update(
            params[name], grad, m[name], v[name], count, lr_scale * self._lr[name])
        if name == "exp" and low_high is not None:
          value = tf.clip_by_value(value, low_high[0], low_high[1])
        new_params[name] = value
      return new_params, new_m, new_v, per_image

    return step

  def _stage_data(self, stage: _Stage, images, mask, landmarks, photo_features):
    data = {"landmarks": landmarks}
    if stage.renderer is None:
      return data
    size = stage.renderer.image_size
    if size != self.size:
      images = tf.image.resize(images, [size, size], method="area")
      mask = tf.cast(tf.image.resize(mask[..., tf.newaxis], [size, size], method="area")[..., 0]
                     > 0.5, tf.float32)
    data.update(images=images, mask=mask)
    if photo_features is not None:
      data["photo_features"] = photo_features
    return data

  def initial_appearance(self, params: Dict[str, tf.Tensor], renderer: FaceRenderer,
                         images: tf.Tensor, mask: tf.Tensor,
                         rounds: int = 3) -> Tuple[tf.Tensor, tf.Tensor]:
    """Albedo and lighting coefficients that explain the photo for the current shape and pose.

    The lit colour of a vertex is bilinear in albedo and lighting,
    c_v = (ā_v + Σ_k δ_k b_kv) · Y(n_v)·(γ + 0.8 e_0), so alternating ridge
    least squares over the visible vertices inside the mask, in closed form,
    solves for γ (per channel, 9 unknowns) with the albedo fixed, then for δ
    (K_tex unknowns) with the lighting fixed, `rounds` times, starting from the
    current albedo. Images with fewer than 50 usable vertices keep their
    current coefficients.

    Args:
      params: current coefficient parts.
      renderer: renderer whose grid `images` [B, S, S, 3] (0..255) and `mask`
        [B, S, S] are on.
      rounds: lighting/albedo alternations.

    Returns:
      (tex [B, K_tex], gamma [B, 27]).
    """
    coeffs = self.coefficients(params)
    geometry = renderer.geometry(coeffs)
    raster = renderer.rasterize(geometry)
    colors, visible = renderer.sample_image(images, geometry, raster)
    inside = sampling.bilinear_sample(mask[..., tf.newaxis], geometry.pixels)[..., 0] > 0.5
    weight = (visible * tf.cast(inside, tf.float32))[..., tf.newaxis]    # [B, V, 1]
    target = colors / 255.0                                              # [B, V, 3]
    sh = lighting.sh_basis(geometry.normals)                             # [B, V, 9]
    mean_albedo = tf.constant(self.model.mean_albedo)                    # [V, 3]
    basis = tf.constant(self.model.albedo_basis)                         # [K, V, 3]
    ridge = self.config.init_ridge
    offset = tf.constant([lighting.AMBIENT_OFFSET] + [0.0] * 8)

    def solve(normal, rhs):
      diag = tf.reduce_mean(tf.linalg.diag_part(normal), axis=-1)[..., tf.newaxis, tf.newaxis]
      eye = tf.eye(tf.shape(normal)[-1])
      return tf.linalg.solve(normal + (ridge * diag + 1e-9) * eye, rhs[..., tf.newaxis])[..., 0]

    tex, gamma = params["tex"], params["gamma"]
    for _ in range(rounds):
      albedo = mean_albedo + tf.einsum("bk,kvc->bvc", tex, basis)        # [B, V, 3]
      design = albedo[..., tf.newaxis] * sh[:, :, tf.newaxis, :]         # [B, V, 3, 9]
      residual = target - lighting.AMBIENT_OFFSET * design[..., 0]
      normal = tf.einsum("bvck,bvcl->bckl", design * weight[..., tf.newaxis], design)
      rhs = tf.einsum("bvck,bvc->bck", design * weight[..., tf.newaxis], residual)
      gamma = tf.reshape(solve(normal, rhs), [-1, 27])                   # [B, 27]
      shading = tf.einsum("bvk,bck->bvc", sh, tf.reshape(gamma, [-1, 3, 9]) + offset)
      design = basis[tf.newaxis] * shading[:, tf.newaxis]                # [B, K, V, 3]
      residual = target - mean_albedo * shading
      normal = tf.einsum("bkvc,blvc->bkl", design * weight[:, tf.newaxis], design)
      rhs = tf.einsum("bkvc,bvc->bk", design * weight[:, tf.newaxis], residual)
      tex = solve(normal, rhs)                                           # [B, K]
    usable = tf.reduce_sum(weight[..., 0], axis=1, keepdims=True) >= 50.0
    usable_tex = usable & tf.reduce_all(tf.math.is_finite(tex), axis=1, keepdims=True)
    usable_gamma = usable & tf.reduce_all(tf.math.is_finite(gamma), axis=1, keepdims=True)
    return (tf.where(usable_tex, tex, params["tex"]),
            tf.where(usable_gamma, gamma, params["gamma"]))

  def segment_occlusion(self, params: Dict[str, tf.Tensor], images: np.ndarray,
                        face_mask: np.ndarray, features: np.ndarray,
                        oval: Optional[np.ndarray] = None,
                        rendering: Optional[Rendering] = None,
                        learned: Optional[np.ndarray] = None) -> np.ndarray:
    """[B, S, S] occluders of the current fit (`fitting.occlusion.estimate_occlusion`).

    `features`: [B, S, S] the faces' eyes, brows and lips; `rendering`: the lit coarse
    render of `params` at S when already made; `learned`: [B, S, S] the occluder network's
    probabilities.
    """
    if rendering is None:
      rendering = self._segment_renderer.render(self.coefficients(params))
    render = np.clip(rendering.image.numpy() * 255.0, 0.0, 255.0)
    return occlusion_lib.estimate_occlusion(images, render, rendering.mask.numpy(), face_mask,
                                            features, self.config.occlusion, oval, learned)

  def learned_occluders(self, images) -> Optional[np.ndarray]:
    """[B, S, S] the occluder network's probabilities, or None without a network or without
    occlusion estimates (`FitConfig.occlusion` None)."""
    if self.occluder_net is None or self.config.occlusion is None:
      return None
    return occluder_net_lib.occluder_probability(self.occluder_net, images).numpy()

  def __call__(self, images, landmarks68, face_mask, photo_features=None,
               oval=None, initial_coeffs=None, known_occluders=None) -> FitResult:
    """Fits a batch; see `fit` for the arguments."""
    images, landmarks68, face_mask = _check_inputs(images, landmarks68, face_mask, self.size)
    batch = images.shape[0]
    config = self.config
    if known_occluders is not None:
      known_occluders = np.asarray(known_occluders, np.float32)
      if config.occlusion is None:
        raise ValueError("known_occluders needs occlusion estimates (FitConfig.occlusion)")
      if (known_occluders.shape != face_mask.shape or not np.all(np.isfinite(known_occluders))
          or known_occluders.min() < 0 or known_occluders.max() > 1):
        raise ValueError(f"known_occluders must be [B, S, S] = {face_mask.shape} in [0, 1], "
                         f"got {known_occluders.shape}")
    sizes = self.layout.sizes
    if initial_coeffs is not None:   # e.g. an R-Net's regression: no pose or appearance start
      start = np.asarray(initial_coeffs, np.float32)
      if start.shape != (batch, self.layout.total) or not np.all(np.isfinite(start)):
        raise ValueError(f"initial_coeffs must be finite [{batch}, {self.layout.total}], "
                         f"got {start.shape}")
      params = {name: tf.constant(value) for name, value in self.layout.split(start).items()}
      angles, trans = start[:, self.layout.slices()["angles"]], start[
          :, self.layout.slices()["trans"]]
      config = config.replace(init_appearance=False)
    else:
      params = {name: tf.zeros([batch, sizes[name]], tf.float32) for name in COEFF_NAMES}
      if config.init_pose:
        angles, trans = pose_init.initial_pose(landmarks68, self._lm_points,
                                               self.renderer.camera)
      else:
        angles, trans = np.zeros([batch, 3], np.float32), np.zeros([batch, 3], np.float32)
      params["angles"], params["trans"] = tf.constant(angles), tf.constant(trans)

    images_t = tf.constant(images)
    mask_t = tf.constant(face_mask)
    landmarks_t = tf.constant(landmarks68)
    if self.encoder is None:
      photo_features = None
    elif photo_features is None:
      photo_features = tf.stop_gradient(self.encoder(images_t))
    else:
      photo_features = tf.constant(np.asarray(photo_features, np.float32))

    history = {}
    lighting_done = False
    occluded = np.zeros(face_mask.shape, np.float32)
    learned = self.learned_occluders(images_t)
    if known_occluders is not None:   # as sure as the network at its most certain
      learned = known_occluders if learned is None else np.maximum(learned, known_occluders)
    if learned is not None:   # left out of the fit from the first step
      occluded = (learned >= config.occlusion.learned_threshold).astype(np.float32)
      mask_t = tf.constant(face_mask * (1.0 - occluded))
    segmented = config.occlusion is None   # segment once, in the first photometric stage
    if config.occlusion is not None:       # eyes, brows, lips: [B, S, S]
      features = np.stack([occlusion_lib.feature_polygons_mask(points, face_mask.shape[1:])
                           for points in landmarks68])
    for stage in self._stages:
      if not stage.steps:
        continue
      data = self._stage_data(stage, images_t, mask_t, landmarks_t, photo_features)
      if stage.renderer is not None and config.init_appearance and not lighting_done:
        init_mask = data["mask"]
        if config.occlusion is not None:
          # Skin only: dark sunglasses over the eyes must not become a dark eye region.
          skin = mask_t * (1.0 - features.astype(np.float32))
          init_mask = self._stage_data(stage, images_t, skin, landmarks_t, None)["mask"]
        params["tex"], params["gamma"] = self.initial_appearance(
            params, stage.renderer, data["images"], init_mask)
        lighting_done = True
      splits = ({int(round(at * stage.steps)) for at in config.occlusion_at}
                if stage.renderer is not None and not segmented else set())
      step = self._steps[stage.name]
      m = {name: tf.zeros_like(params[name]) for name in stage.trainable}
      v = {name: tf.zeros_like(params[name]) for name in stage.trainable}
      record = []
      for i in range(stage.steps):
        if i in splits:
          occluded = self.segment_occlusion(params, images, face_mask, features, oval,
                                            learned=learned)
          mask_t = tf.constant(face_mask * (1.0 - occluded))
          data = self._stage_data(stage, images_t, mask_t, landmarks_t, photo_features)
        scale = lr_scale(i, stage.steps, config.final_lr_fraction, config.decay_fraction)
        params, m, v, per_image = step(params, m, v, tf.constant(i + 1.0),
                                       tf.constant(scale, tf.float32), data)
        record.append(per_image)
      history[stage.name] = np.stack([r.numpy() for r in record])
      segmented = segmented or bool(splits)

    coeffs = self.coefficients(params)
    final_data = {"landmarks": landmarks_t, "images": images_t, "mask": mask_t}  # inliers
    if photo_features is not None:
      final_data["photo_features"] = photo_features
    terms, rendering = self.loss_terms(params, final_data, self.renderer)
    final = {name: value.numpy() for name, value in terms.items()}
    final["total"] = losses.total_loss(terms, self.weights).numpy()
    last = [h for h in history.values()]
    converged = (converged_flags(last[-1], config.convergence_window, config.convergence_tol)
                 if last else np.zeros([batch], bool))
    if segmented and config.occlusion is not None:   # again, on the final fit
      occluded = self.segment_occlusion(params, images, face_mask, features, oval, rendering,
                                        learned)
    return FitResult(coeffs=coeffs, rendering=rendering, losses=final, history=history,
                     converged=converged, initial_pose=(angles, trans), occlusion=occluded)


def fit(renderer: FaceRenderer, images, landmarks68, face_mask, identity_encoder=None,
        config: FitConfig = FitConfig(), fit_renderer: Optional[FaceRenderer] = None,
        photo_features=None, oval=None, initial_coeffs=None,
        known_occluders=None) -> FitResult:
  """Fits the coarse 3DMM to aligned photos by analysis-by-synthesis.

  Args:
    renderer: renders the result; its image size is the input size S (224 for
      Deep3DFace crops).
    images: [B, S, S, 3] float RGB in [0, 255], aligned crops.
    landmarks68: [B, 68, 2] iBUG landmarks (x, y) in the crops' pixel grid.
    face_mask: [B, S, S] in {0, 1} (or [0, 1] weights): pixels the photometric
      loss may use (skin / face mask). Stages rendering below S use it
      area-downsampled and thresholded at 0.5.
    identity_encoder: optional identity network; enables the identity loss.
    config: the `FitConfig`.
    fit_renderer: optional renderer of a coarser model with the same
      coefficient layout to optimise on (see the module docstring).
    photo_features: optional [B, D] identity features of `images` (computed with
      `identity_encoder` when None).
    oval: optional [B, S, S] face region judged by the photo's skin-colour model
      (`FaceMasks.region`): its non-skin pieces count as occluders too.
    initial_coeffs: optional [B, C] coefficients to start from (e.g. an R-Net's
      regression); they replace the pose and appearance starts.
    known_occluders: optional [B, S, S] in [0, 1], occluders known beforehand (a user's
      mask, a benchmark's drawn occluder): taken like the occluder network's probabilities
      (the larger of the two per pixel), so they leave the fit from the first step and
      seed the segmentation. Needs `config.occlusion`.

  Returns:
    A `FitResult`.

  Raises:
    ValueError: malformed inputs (shapes, ranges, NaN) or incompatible renderers.
  """
  return Fitter(renderer, identity_encoder, config, fit_renderer)(
      images, landmarks68, face_mask, photo_features, oval, initial_coeffs, known_occluders)
