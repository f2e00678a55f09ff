"""Losses of the GCN texture training (paper_spec §3).

Paper terms (§3.1): `masked_pixel_loss`, `identity_loss`, `vertex_loss`,
the WGAN-GP pair `critic_loss` / `generator_adversarial_loss` (with
`gradient_penalty`), combined by `total_generator_loss` as

  L = σ1 (L_pix + σ2 L_id + σ3 L_adv) + σ4 (L_vert(T, T') + L_vert(T_p, T̃')).

Official-code variants (§3.2, off in the paper configuration):
`projection_loss`, `symmetry_loss`, `skin_variance_loss`, L1 norms; select
them with `GeneratorLossConfig` (`PAPER_LOSS`, `OFFICIAL_LOSS`).

All functions are pure functions of tensors and return float32 scalars.
Colours may be in any range as long as both arguments share it (the
pipeline uses [-1, 1]).
"""

import dataclasses
from typing import Optional

import numpy as np
import tensorflow as tf

from facegcn_tf.fitting import losses as fitting_losses

NORMS = ("l2", "l1")


def _f32(x, name):
  try:
    return tf.cast(tf.convert_to_tensor(x), tf.float32)
  except (TypeError, ValueError) as err:
    raise ValueError(f"{name} must be a numeric tensor ({err})") from None


def _check_norm(norm):
  if norm not in NORMS:
    raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")


def _check_same_shape(a, b, names):
  if a.shape.rank is not None and b.shape.rank is not None and \
      not a.shape.is_compatible_with(b.shape):
    raise ValueError(f"{names[0]} and {names[1]} must have the same shape, "
                     f"got {a.shape} and {b.shape}")


def _check_rank(x, rank, name, layout):
  if x.shape.rank is not None and x.shape.rank != rank:
    raise ValueError(f"{name} must be {layout}, got shape {x.shape}")


def safe_norm(x, axis=-1):
  """Euclidean norm over `axis` whose gradient is 0 (not NaN) where the norm is 0.

  `[..., C] -> [...]` (for axis=-1).
  """
  sq = tf.reduce_sum(tf.square(x), axis=axis)
  positive = sq > 0.0
  return tf.where(positive, tf.sqrt(tf.where(positive, sq, tf.ones_like(sq))),
                  tf.zeros_like(sq))


def _channel_distance(a, b, norm):
  """`[..., C] x [..., C] -> [...]`: L2 norm ("l2") or mean abs ("l1") over C."""
  if norm == "l2":
    return safe_norm(a - b)
  return tf.reduce_mean(tf.abs(a - b), axis=-1)


def masked_pixel_loss(image, rendering, mask, norm="l2"):
  """The paper's pixel loss `Σ M ||x - x'||₂ / Σ M` over the whole batch.

  Args:
    image: the input images x, `[B, H, W, C]`.
    rendering: the rendered images x', `[B, H, W, C]`.
    mask: M = projected-mesh mask ∩ face mask, `[B, H, W]` or `[B, H, W, 1]`,
      in {0, 1} (soft weights also work).
    norm: "l2" (paper: per-pixel Euclidean norm over channels) or "l1"
      (official code's logged L1: per-pixel mean of |x - x'| over channels).

  Returns:
    float32 scalar; 0 when the mask is empty.
  """
  _check_norm(norm)
  image, rendering, mask = (_f32(image, "image"), _f32(rendering, "rendering"),
                            _f32(mask, "mask"))
  _check_rank(image, 4, "image", "[B, H, W, C]")
  _check_same_shape(image, rendering, ("image", "rendering"))
  if mask.shape.rank == 4:
    if mask.shape[-1] not in (1, None):
      raise ValueError(f"mask must be [B, H, W] or [B, H, W, 1], got shape {mask.shape}")
    mask = mask[..., 0]
  _check_rank(mask, 3, "mask", "[B, H, W] or [B, H, W, 1]")
  if not mask.shape.is_compatible_with(image.shape[:3]):
    raise ValueError(f"mask shape {mask.shape} does not match images {image.shape}")
  dist = _channel_distance(image, rendering, norm)
  return tf.math.divide_no_nan(tf.reduce_sum(mask * dist), tf.reduce_sum(mask))


def identity_loss(feat_a, feat_b):
  """`1 - cos(a, b)` averaged over the batch: `[B, D] x [B, D] -> scalar` (the mean of the
  per-image `fitting.losses.identity_loss`)."""
  feat_a, feat_b = _f32(feat_a, "feat_a"), _f32(feat_b, "feat_b")
  _check_rank(feat_a, 2, "feat_a", "[B, D]")
  _check_same_shape(feat_a, feat_b, ("feat_a", "feat_b"))
  return tf.reduce_mean(fitting_losses.identity_loss(feat_a, feat_b))


def vertex_loss(a, b, weights=None, norm="l2"):
  """Per-vertex colour distance `(1/N) Σ_i ||a_i - b_i||`.

  Args:
    a, b: `[B, V, C]`.
    weights: optional per-vertex weights `[B, V]`, `[B, V, 1]` or `[V]` (e.g.
      the visibility for L_vert(T_p, T̃')); the loss is then the weighted mean
      `Σ w_i d_i / Σ w_i` (0 if all weights are 0).
    norm: "l2" (paper: Euclidean norm over C) or "l1" (official code:
      mean |a - b| over C, i.e. `absolute_difference` over all elements).

  Returns:
    float32 scalar.
  """
  _check_norm(norm)
  a, b = _f32(a, "a"), _f32(b, "b")
  _check_rank(a, 3, "a", "[B, V, C]")
  _check_same_shape(a, b, ("a", "b"))
  dist = _channel_distance(a, b, norm)  # [B, V]
  if weights is None:
    return tf.reduce_mean(dist)
  w = _f32(weights, "weights")
  if w.shape.rank == 3:
    w = w[..., 0]
  if w.shape.rank not in (1, 2) or not w.shape.is_compatible_with(dist.shape[-w.shape.rank:]):
    raise ValueError(f"weights must be [B, V], [B, V, 1] or [V] matching {a.shape}, "
                     f"got shape {weights.shape if hasattr(weights, 'shape') else weights!r}")
  w = tf.broadcast_to(w, tf.shape(dist))
  return tf.math.divide_no_nan(tf.reduce_sum(w * dist), tf.reduce_sum(w))


def _scores(critic, images, training):
  """critic(images) as `[B]` float32 (accepts `[B]` or `[B, 1]` outputs)."""
  scores = tf.cast(critic(images, training=training), tf.float32)
  return tf.reshape(scores, [tf.shape(images)[0]])


def gradient_penalty(critic, real, fake, epsilon, training=True):
  """WGAN-GP penalty `mean_b (||∇_x̂ D(x̂_b)||₂ - 1)²` with `x̂ = ε real + (1 - ε) fake`.

  Args:
    critic: callable `critic(images, training=...)` -> `[B]` or `[B, 1]`.
    real, fake: `[B, H, W, C]` (any rank >= 2 with the batch first).
    epsilon: broadcastable to `real`, e.g. `[B, 1, 1, 1]` or a scalar.
    training: passed to the critic.

  Returns:
    float32 scalar. The norm runs over all non-batch axes of each sample.
  """
  real, fake = tf.stop_gradient(_f32(real, "real")), tf.stop_gradient(_f32(fake, "fake"))
  _check_same_shape(real, fake, ("real", "fake"))
  if real.shape.rank is not None and real.shape.rank < 2:
    raise ValueError(f"real and fake must be [B, ...], got shape {real.shape}")
  epsilon = _f32(epsilon, "epsilon")
  x_hat = epsilon * real + (1.0 - epsilon) * fake
  with tf.GradientTape() as tape:
    tape.watch(x_hat)
    scores = _scores(critic, x_hat, training)
  grads = tape.gradient(scores, x_hat)  # scores of different samples are independent
  if grads is None:
    raise ValueError("the critic's output does not depend on its input")
  flat = tf.reshape(tf.cast(grads, tf.float32), [tf.shape(x_hat)[0], -1])
  return tf.reduce_mean(tf.square(safe_norm(flat) - 1.0))


def critic_loss(critic, real, fake, gp_weight=10.0, training=True, per_sample=True,
                epsilon=None, return_terms=False):
  """WGAN-GP critic loss `mean D(fake) - mean D(real) + λ GP` (paper Eq. 7).

  Args:
    critic: callable `critic(images, training=...)` -> `[B]` or `[B, 1]`.
    real: input images I `[B, H, W, C]`.
    fake: the composited renderings `[B, H, W, C]` (gradients to the
      generator are stopped).
    gp_weight: λ (the code uses 10; the paper does not say).
    training: passed to the critic.
    per_sample: ε ~ U[0, 1] of shape `[B, 1, .., 1]` (WGAN-GP); False = one ε
      for the whole batch (the official code).
    epsilon: a fixed ε instead of a random one (broadcastable to `real`).
    return_terms: also return a dict of the parts for logging.

  Returns:
    float32 scalar, or `(loss, {"wasserstein", "gradient_penalty",
    "critic_real", "critic_fake"})` with `return_terms`. (The official code
    further scales this by 1e-3; do that in the training step.)
  """
  real, fake = tf.stop_gradient(_f32(real, "real")), tf.stop_gradient(_f32(fake, "fake"))
  _check_same_shape(real, fake, ("real", "fake"))
  _check_rank(real, 4, "real", "[B, H, W, C]")
  if epsilon is None:
    batch = tf.shape(real)[0] if per_sample else 1
    epsilon = tf.random.uniform(tf.stack([batch, 1, 1, 1]), 0.0, 1.0)
  d_real = tf.reduce_mean(_scores(critic, real, training))
  d_fake = tf.reduce_mean(_scores(critic, fake, training))
  gp = gradient_penalty(critic, real, fake, epsilon, training=training)
  wasserstein = d_fake - d_real
  loss = wasserstein + gp_weight * gp
  if not return_terms:
    return loss
  return loss, {"wasserstein": wasserstein, "gradient_penalty": gp,
                "critic_real": d_real, "critic_fake": d_fake}


def generator_adversarial_loss(critic, fake, training=True):
  """`-mean D(fake)`: `[B, H, W, C]` -> scalar (gradients reach `fake`)."""
  fake = _f32(fake, "fake")
  _check_rank(fake, 4, "fake", "[B, H, W, C]")
  return -tf.reduce_mean(_scores(critic, fake, training))


def _visibility(vis, like, name="vis"):
  vis = _f32(vis, name)
  if vis.shape.rank == 2:
    vis = vis[..., None]
  _check_rank(vis, 3, name, "[B, V] or [B, V, 1]")
  if not vis.shape[:2].is_compatible_with(like.shape[:2]):
    raise ValueError(f"{name} shape {vis.shape} does not match {like.shape}")
  return vis


def projection_loss(lit_fine, sampled_rgb, vis, lit_coarse, invisible_weight=0.3):
  """The official code's `proj` term (replaces L_pix there; paper_spec §3.2).

  `mean|T̃' vis - rgb vis| + w mean|T̃' (1 - vis) - T_lit (1 - vis)|`, means
  over all `B V C` elements.

  Args:
    lit_fine: T̃', the lit fine colours `[B, V, C]`.
    sampled_rgb: image colours at the projected vertices `[B, V, C]`.
    vis: visibility `[B, V]` or `[B, V, 1]` in {0, 1}.
    lit_coarse: the lit 3DMM colours `[B, V, C]` (target where invisible).
    invisible_weight: w (official: 0.3).

  Returns:
    float32 scalar.
  """
  lit_fine, sampled_rgb, lit_coarse = (_f32(lit_fine, "lit_fine"),
                                       _f32(sampled_rgb, "sampled_rgb"),
                                       _f32(lit_coarse, "lit_coarse"))
  _check_rank(lit_fine, 3, "lit_fine", "[B, V, C]")
  _check_same_shape(lit_fine, sampled_rgb, ("lit_fine", "sampled_rgb"))
  _check_same_shape(lit_fine, lit_coarse, ("lit_fine", "lit_coarse"))
  vis = _visibility(vis, lit_fine)
  visible = tf.reduce_mean(tf.abs((lit_fine - sampled_rgb) * vis))
  hidden = tf.reduce_mean(tf.abs((lit_fine - lit_coarse) * (1.0 - vis)))
  return visible + invisible_weight * hidden


def _check_pairs(pairs, num_vertices):
  pairs = np.asarray(pairs)
  if pairs.ndim != 2 or pairs.shape[1] != 2 or pairs.shape[0] == 0 \
      or not np.issubdtype(pairs.dtype, np.integer):
    raise ValueError(f"pairs must be a non-empty int array [P, 2], got {pairs.dtype} "
                     f"{pairs.shape}")
  if num_vertices is not None and (pairs.min() < 0 or pairs.max() >= num_vertices):
    raise ValueError(f"pairs index vertices outside [0, {num_vertices})")
  return pairs.astype(np.int32)


def symmetry_loss(albedo, pairs):
  """`mean_{b, (l, r)} ||T'[b, l] - T'[b, r]||₂` (official code, weight 0.5).

  Args:
    albedo: `[B, V, C]`.
    pairs: int `[P, 2]` (left, right) vertex pairs of the same mesh, e.g.
      `MorphableModel.symmetry_pairs`.

  Returns:
    float32 scalar.
  """
  albedo = _f32(albedo, "albedo")
  _check_rank(albedo, 3, "albedo", "[B, V, C]")
  pairs = _check_pairs(pairs, albedo.shape[1])
  left = tf.gather(albedo, pairs[:, 0], axis=1)
  right = tf.gather(albedo, pairs[:, 1], axis=1)
  return tf.reduce_mean(safe_norm(left - right))


def skin_variance_loss(albedo, skin_mask):
  """Mean over batch and channels of each image's albedo variance on skin vertices.

  (Official code, weight 0.01: a flat skin albedo.)

  Args:
    albedo: `[B, V, C]`.
    skin_mask: bool `[V]` (e.g. `MorphableModel.skin_mask`) or int vertex
      indices `[S]`; must select at least one vertex.

  Returns:
    float32 scalar.
  """
  albedo = _f32(albedo, "albedo")
  _check_rank(albedo, 3, "albedo", "[B, V, C]")
  mask = np.asarray(skin_mask)
  num_vertices = albedo.shape[1]
  if mask.dtype == bool:
    if mask.ndim != 1 or (num_vertices is not None and mask.shape[0] != num_vertices):
      raise ValueError(f"skin_mask must be bool [{num_vertices}], got shape {mask.shape}")
    index = np.flatnonzero(mask)
  elif np.issubdtype(mask.dtype, np.integer) and mask.ndim == 1:
    index = mask
    if index.size and num_vertices is not None and (index.min() < 0
                                                    or index.max() >= num_vertices):
      raise ValueError(f"skin_mask indices outside [0, {num_vertices})")
  else:
    raise ValueError(f"skin_mask must be bool [V] or int indices [S], got {mask.dtype} "
                     f"{mask.shape}")
  if index.size == 0:
    raise ValueError("skin_mask selects no vertices")
  skin = tf.gather(albedo, index.astype(np.int32), axis=1)
  _, variance = tf.nn.moments(skin, axes=[1])  # [B, C]
  return tf.reduce_mean(variance)


@dataclasses.dataclass(frozen=True)
class GeneratorLossConfig:
  """Which terms and weights `total_generator_loss` uses.

  Attributes:
    id_weight: σ2 (0.2).
    adv_weight: σ3 (1e-3).
    adversarial: include `-mean D(fake)` (paper: yes; official default: GAN off).
    adv_in_sigma1: the adversarial term is scaled by σ1 (paper) or not (code).
    vertex_norm: "l2" (paper) or "l1" (code) for the vertex losses.
    photometric: "pixel" — L_pix in the σ1 group and L_vert(T_p, T̃') in the σ4
      group (paper); "projection" — the code's `proj` in the σ1 group, no
      L_vert(T_p, T̃'), L_pix only logged.
    invisible_weight: `proj`'s weight on invisible vertices (0.3).
    symmetry_weight: weight of `symmetry_loss` in the σ1 group (code: 0.5).
    skin_variance_weight: weight of `skin_variance_loss` in the σ1 group
      (code: 0.01).
  """
  id_weight: float = 0.2
  adv_weight: float = 1e-3
  adversarial: bool = True
  adv_in_sigma1: bool = True
  vertex_norm: str = "l2"
  photometric: str = "pixel"
  invisible_weight: float = 0.3
  symmetry_weight: float = 0.0
  skin_variance_weight: float = 0.0

  def __post_init__(self):
    _check_norm(self.vertex_norm)
    if self.photometric not in ("pixel", "projection"):
      raise ValueError(f"photometric must be 'pixel' or 'projection', got {self.photometric!r}")
    for name in ("id_weight", "adv_weight", "invisible_weight", "symmetry_weight",
                 "skin_variance_weight"):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")


PAPER_LOSS = GeneratorLossConfig()
OFFICIAL_LOSS = GeneratorLossConfig(
    adversarial=False, adv_in_sigma1=False, vertex_norm="l1", photometric="projection",
    symmetry_weight=0.5, skin_variance_weight=0.01)


def _require(value, name, why):
  if value is None:
    raise ValueError(f"total_generator_loss needs {name} ({why})")
  return value


def total_generator_loss(*, sigma1, sigma4, coarse_albedo, fine_albedo, lit_fine, sampled,
                         image=None, rendering=None, pixel_mask=None, real_features=None,
                         fake_features=None, fake_scores=None, lit_coarse=None,
                         symmetry_pairs=None, skin_mask=None, regularization=None,
                         config: Optional[GeneratorLossConfig] = None):
  """The generator objective (paper_spec §3.1; official variant §3.2).

  Paper: `σ1 (L_pix + σ2 L_id + σ3 L_adv) + σ4 (L_vert(T, T') + L_vert(T_p, T̃'))`.
  Official: `σ4 refine + σ1 (proj + 0.2 perc + 0.5 sym + 0.01 var) + σ3 L_adv`.
  `regularization` (e.g. `sum(model.losses)`) is added unweighted.

  Args:
    sigma1, sigma4: weights from `schedule.sigma_schedule` (floats or tensors).
    coarse_albedo: T `[B, V, 3]`.
    fine_albedo: T' `[B, V, 3]`.
    lit_fine: T̃', the lit fine colours `[B, V, 3]` (range of `sampled`).
    sampled: T_p `[B, V, 4]`: image colour × visibility (3) and visibility (1).
    image, rendering, pixel_mask: I, R' `[B, H, W, 3]`, mask `[B, H, W(, 1)]`
      (needed for photometric="pixel"; otherwise logged when given).
    real_features, fake_features: identity features of I and R' `[B, D]`
      (needed when id_weight > 0).
    fake_scores: critic scores D(R') `[B]` (needed when `adversarial`).
    lit_coarse: lit 3DMM colours `[B, V, 3]` (needed for "projection").
    symmetry_pairs: `[P, 2]` (needed when symmetry_weight > 0).
    skin_mask: bool `[V]` or indices (needed when skin_variance_weight > 0).
    regularization: optional scalar added as is.
    config: `GeneratorLossConfig` (default `PAPER_LOSS`).

  Returns:
    dict of float32 scalars: "total" and each computed term ("pixel",
    "identity", "adversarial", "vertex_albedo", "vertex_sampled",
    "projection", "symmetry", "skin_variance", "regularization"), unweighted.
  """
  cfg = PAPER_LOSS if config is None else config
  if not isinstance(cfg, GeneratorLossConfig):
    raise ValueError(f"config must be a GeneratorLossConfig, got {type(cfg).__name__}")
  sigma1, sigma4 = _f32(sigma1, "sigma1"), _f32(sigma4, "sigma4")
  sampled = _f32(sampled, "sampled")
  _check_rank(sampled, 3, "sampled", "[B, V, 4]")
  if sampled.shape[-1] not in (4, None):
    raise ValueError(f"sampled must be [B, V, 4] (rgb * vis, vis), got shape {sampled.shape}")
  sampled_rgb, vis = sampled[..., :3], sampled[..., 3]
  terms = {}
  if image is not None or rendering is not None or pixel_mask is not None:
    terms["pixel"] = masked_pixel_loss(
        _require(image, "image", "pixel loss"), _require(rendering, "rendering", "pixel loss"),
        _require(pixel_mask, "pixel_mask", "pixel loss"))
  elif cfg.photometric == "pixel":
    _require(None, "image, rendering and pixel_mask", "photometric='pixel'")

  group1 = tf.constant(0.0)
  if cfg.photometric == "pixel":
    group1 += terms["pixel"]
  else:
    terms["projection"] = projection_loss(
        lit_fine, sampled_rgb, vis, _require(lit_coarse, "lit_coarse", "photometric='projection'"),
        invisible_weight=cfg.invisible_weight)
    group1 += terms["projection"]
  if cfg.id_weight > 0:
    terms["identity"] = identity_loss(
        _require(real_features, "real_features", "id_weight > 0"),
        _require(fake_features, "fake_features", "id_weight > 0"))
    group1 += cfg.id_weight * terms["identity"]
  if cfg.symmetry_weight > 0:
    terms["symmetry"] = symmetry_loss(
        fine_albedo, _require(symmetry_pairs, "symmetry_pairs", "symmetry_weight > 0"))
    group1 += cfg.symmetry_weight * terms["symmetry"]
  if cfg.skin_variance_weight > 0:
    terms["skin_variance"] = skin_variance_loss(
        fine_albedo, _require(skin_mask, "skin_mask", "skin_variance_weight > 0"))
    group1 += cfg.skin_variance_weight * terms["skin_variance"]
  adversarial = tf.constant(0.0)
  if cfg.adversarial:
    scores = _f32(_require(fake_scores, "fake_scores", "adversarial=True"), "fake_scores")
    terms["adversarial"] = -tf.reduce_mean(scores)
    adversarial = cfg.adv_weight * terms["adversarial"]
    if cfg.adv_in_sigma1:
      group1 += adversarial
      adversarial = tf.constant(0.0)

  terms["vertex_albedo"] = vertex_loss(fine_albedo, coarse_albedo, norm=cfg.vertex_norm)
  group4 = terms["vertex_albedo"]
  if cfg.photometric == "pixel":
    terms["vertex_sampled"] = vertex_loss(lit_fine, sampled_rgb, weights=vis,
                                          norm=cfg.vertex_norm)
    group4 += terms["vertex_sampled"]

  total = sigma1 * group1 + sigma4 * group4 + adversarial
  if regularization is not None:
    terms["regularization"] = _f32(regularization, "regularization")
    total += terms["regularization"]
  terms["total"] = total
  return terms
