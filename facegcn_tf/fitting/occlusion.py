"""Occlusion masks estimated per photo from what the face model cannot explain.

No face-parsing network can be obtained offline, so occluders (hair over the forehead,
glasses, sunglasses, hands, hats, surgical masks) are segmented the way FOCUS does it (Li et
al., CVPR 2023, "Robust Model-based Face Reconstruction through Weakly-Supervised Outlier
Segmentation"): the face model is fitted to the pixels it is told to trust, the pixels it
then fails to explain are outliers, and the fit is repeated on the inliers. FOCUS learns
the segmentation with a network; here it is a per-photo statistical test, combined with
the photo's own skin-colour model (`data.face_mask`, whose non-skin pieces outside the
facial features are occluders already) and, when given, the probabilities of a small
occluder network trained on synthetic occluders (`networks.occluder_net`): a skin-coloured
hand is explained by a flexible albedo, so only its shape gives it away.

* residual: ``e = ||I - R|| / 255`` per pixel between the photo and the lit coarse render;
* inlier scale: robust (median, 1.4826 x MAD) statistics of ``e`` over the pixels the fit
  trusted;
* outlier: ``e > median + k * scale`` (``k = OcclusionConfig.threshold``), with ``k`` raised
  by ``feature_factor`` inside the eyes, brows and lips (a smooth 3DMM albedo explains them
  worst, and they belong to the face), or outside the skin-colour model;
* learned: pixels the occluder network gives at least ``learned_threshold`` join the
  outliers; with the network, the eyes, brows and lips are its alone to judge (their
  residual says that a smooth albedo cannot paint a brow, not that something covers it);
* cleaning: a morphological opening drops single-pixel speckle (pores, noise), pieces
  smaller than ``min_area`` of the face are dropped, and the rest is grown by ``grow`` px:
  these are the confident pieces (seeds);
* growth (`grow_outliers`), because the fit partly absorbs what it is given (the inside of
  a dark lens fitted dark, a mask over the lips fitted white, the rest of a strand):
  hysteresis (pixels above ``low_threshold`` that touch a piece join it); colour (each
  piece's confident colours, a Gaussian per k-means cluster, claim the touching pixels
  they explain better than both the render and the face's own skin colours do, outside the
  eyes, brows and lips, which share hair's and frames' colours by nature); holes
  (`fill_holes`: a hole enclosed by an occluder, not open to the region's outside, joins
  it when most of its colours are the occluder's rather than the skin's; the skin seen
  inside glasses frames stays). On a grey photo a piece of the face's own hue does not
  grow by colour (its Gaussian is one of brightness only, and would claim shadows).

Everything is per image and runs on numpy/OpenCV once or twice per fit.
"""

import dataclasses
import statistics
from typing import Optional

import cv2
import numpy as np

# 0-based iBUG indices of the facial features whose colour a smooth albedo cannot explain.
_BROWS = (tuple(range(17, 22)), tuple(range(22, 27)))
_EYES = (tuple(range(36, 42)), tuple(range(42, 48)))
_LIPS = (tuple(range(48, 60)),)
# An occluder's colour Gaussian is fitted on the inner half of its colours (by Mahalanobis
# distance) and widened by this factor (2.45 restores a Gaussian's variance; a little more
# leaves room for the occluder's texture).
_TRIM_WIDEN = 3.0
_COLOUR_CLUSTERS = 3   # k-means clusters of an occluder piece's colours
_HOLE_SHARE = 0.5      # share of a hole's pixels that must fit its occluder's colours


@dataclasses.dataclass(frozen=True)
class OcclusionConfig:
  """Settings of `estimate_occlusion`.

  Attributes:
    threshold: outlier test ``e > median + threshold * scale``.
    feature_factor: the threshold's factor inside the eyes, brows and lips, when no
      occluder network is given (with one, the network alone judges them).
    min_scale: floor of the robust scale (colour units / 255), so a near-perfect fit does
      not call noise an occluder.
    min_area: pieces smaller than this fraction of the rendered face are dropped.
    grow: dilation of the kept pieces, in pixels at 224.
    low_threshold: hysteresis: pixels above ``median + low_threshold * scale`` (raised by
      `feature_factor` in the features) that touch a piece join it; ``>= threshold``
      turns all growth (hysteresis, colour and holes) off.
    colour_p: chi-square quantile (3 dof) within which a colour fits an occluder's.
    min_colour_scale: floor of an occluder colour Gaussian's standard deviation (0..1).
    min_chroma: colour growth runs only where the face's colours vary in hue: the spread
      (`chroma_spread`) of the trusted pixels' chromaticity must reach this. A grey photo
      (spread about 0) tells an occluder from a shadow by brightness alone, and its colour
      Gaussians would claim every shadow as dark as a strand of hair.
    learned_threshold: a pixel the occluder network (`networks.occluder_net`) gives at
      least this probability is a seed, like a residual outlier (it then grows the same way).
      Low (0.1), because a seed the network misses can invert the segmentation: a faint,
      skin-coloured hand the fit explains as skin leaves the real face as the outlier
      (docs/fitting.md, "Seeding at probability 0.1").
  """
  threshold: float = 3.0
  feature_factor: float = 2.0
  min_scale: float = 0.02
  min_area: float = 0.004
  grow: int = 1
  low_threshold: float = 2.0
  colour_p: float = 0.99
  min_colour_scale: float = 0.04
  min_chroma: float = 0.02
  learned_threshold: float = 0.1

  def __post_init__(self):
    for name in ("threshold", "feature_factor", "min_scale", "min_area", "low_threshold",
                 "colour_p", "min_colour_scale", "min_chroma", "learned_threshold"):
      value = getattr(self, name)
      if not (isinstance(value, (int, float)) and np.isfinite(value) and value > 0):
        raise ValueError(f"OcclusionConfig.{name} must be a finite number > 0, got {value!r}")
    if isinstance(self.grow, bool) or not isinstance(self.grow, int) or self.grow < 0:
      raise ValueError(f"OcclusionConfig.grow must be an int >= 0, got {self.grow!r}")


def feature_polygons_mask(landmarks68: np.ndarray, shape) -> np.ndarray:
  """[H, W] bool: the eyes, brows (thickened) and lips of the 68 landmarks.

  Args:
    landmarks68: [68, 2] (x, y) pixel coordinates.
    shape: (H, W).
  """
  points = np.asarray(landmarks68, np.float64)
  out = np.zeros(tuple(shape)[:2], np.uint8)
  scale = max(float(np.ptp(points[:, 0])), 1.0)
  for loop in _EYES + _LIPS:
    cv2.fillPoly(out, [np.rint(points[list(loop)]).astype(np.int32)], 1)
  for brow in _BROWS:
    line = np.rint(points[list(brow)]).astype(np.int32)
    cv2.polylines(out, [line], False, 1, thickness=max(2, int(round(0.06 * scale))))
  grow = max(1, int(round(0.02 * scale)))
  out = cv2.dilate(out, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1,) * 2))
  return out.astype(bool)


def residual_outliers(photo: np.ndarray, render: np.ndarray, region: np.ndarray,
                      trusted: np.ndarray, features: np.ndarray,
                      config: OcclusionConfig = OcclusionConfig(),
                      learned: Optional[np.ndarray] = None) -> np.ndarray:
  """Pixels of one face that the fitted model does not explain.

  Args:
    photo: [H, W, 3] RGB 0..255.
    render: [H, W, 3] lit render RGB 0..255 (the fit's).
    region: [H, W] bool, where the face is rendered (and the photo is valid).
    trusted: [H, W] bool, the pixels the fit used (inlier statistics come from them).
    features: [H, W] bool, eyes / brows / lips (raised threshold; with `learned`, the
      network's alone).
    config: the `OcclusionConfig`.
    learned: optional [H, W] occluder probabilities of the occluder network; pixels at
      `config.learned_threshold` or above are seeds too, and in `features` only these
      (the residual neither seeds nor grows there).

  Returns:
    [H, W] bool outliers inside `region`, cleaned (see the module docstring).
  """
  region = np.asarray(region, bool)
  error = np.linalg.norm(np.asarray(photo, np.float32) - np.asarray(render, np.float32),
                         axis=-1) / 255.0
  network = region & (np.asarray(learned) >= config.learned_threshold
                       if learned is not None else False)
  sample = error[region & np.asarray(trusted, bool)]
  if sample.size < 50:
    sample = error[region]
  if sample.size < 50:   # too few pixels for residual statistics: the network's alone
    return network
  median = float(np.median(sample))
  scale = max(1.4826 * float(np.median(np.abs(sample - median))), config.min_scale)
  features = np.asarray(features, bool)
  factor = np.where(features, config.feature_factor, 1.0)
  score = (error - median) / scale
  if learned is not None:
    # With the network, it alone judges the eyes, brows and lips: the residual there
    # measures the smooth albedo's failure to paint them, not an occluder.
    score = np.where(features & ~network, 0.0, score)
  outliers = (region & (score > factor * config.threshold)) | network
  seeds = clean_mask(outliers, region, config)
  if config.low_threshold >= config.threshold:
    return seeds
  return grow_outliers(photo, seeds, score, region, features, trusted, config)


def _connected_to(candidates: np.ndarray, seeds: np.ndarray) -> np.ndarray:
  """[H, W] bool: the 8-connected pieces of `candidates | seeds` that hold a seed."""
  count, labels = cv2.connectedComponents((candidates | seeds).astype(np.uint8), connectivity=8)
  hit = np.zeros(count, bool)
  hit[np.unique(labels[seeds])] = True
  hit[0] = False
  return hit[labels]


def grow_outliers(photo: np.ndarray, seeds: np.ndarray, score: np.ndarray, region: np.ndarray,
                  features: np.ndarray, trusted: np.ndarray,
                  config: OcclusionConfig = OcclusionConfig()) -> np.ndarray:
  """Grows confident occluder pieces over the rest of each occluder.

  Hysteresis: pixels whose residual score exceeds `low_threshold` (raised by
  `feature_factor` in the features) join a piece they touch. Colour: a piece's confident
  colours (a Gaussian in RGB per k-means cluster) claim the touching pixels the render does
  not explain perfectly (score > 0) whose colour fits one of them, better (in Mahalanobis
  distance) than the render's score and the face's own skin colours (the trusted,
  unclaimed pixels) do: the inside of a dark lens, the rest of a strand, where the fit had
  partly absorbed the occluder. Colour claims no pixel of the eyes, brows and lips
  (`features`): a brow is hair-coloured and lashes are dark, so a strand's or a frame's
  colour would take them from the face (only the residual and the network's seeds do).
  Last, `fill_holes`.

  Args:
    photo: [H, W, 3] RGB 0..255.
    seeds: [H, W] bool confident occluder pixels.
    score: [H, W] residual score ``(e - median) / scale``.
    region, features, trusted: [H, W] bool as in `residual_outliers`.
    config: the `OcclusionConfig`.

  Returns:
    [H, W] bool, the seeds grown, inside `region`.
  """
  features = np.asarray(features, bool)
  factor = np.where(features, config.feature_factor, 1.0)
  low = region & (score > factor * config.low_threshold)
  grown = _connected_to(low, seeds) & region
  colours = np.asarray(photo, np.float64).reshape(-1, 3) / 255.0
  open_ = (region & (score > 0.0) & ~grown & ~features).reshape(-1)
  limit = _chi2_3dof(config.colour_p)
  # Each piece's colours come from its confident pixels (the seeds it holds).
  count, labels = cv2.connectedComponents(grown.astype(np.uint8), connectivity=8)
  claimed = np.zeros(open_.shape, bool)
  flat = labels.reshape(-1)
  confident = np.asarray(seeds, bool).reshape(-1)
  open_score = score.reshape(-1)[open_] ** 2
  face = colours[(region & np.asarray(trusted, bool) & ~grown).reshape(-1)]
  skin = _colour_model(face, config)
  # On a grey face (one hue, whatever its tint) colour tells a piece from a shadow only
  # when the piece's own hue differs (a blue mask); a grey strand's Gaussian would claim
  # every shadow as dark as it.
  grey_face = chroma_spread(face) < config.min_chroma
  face_hue = _median_chroma(face)
  if skin is not None:
    open_score = np.minimum(open_score, _mahalanobis2(colours[open_], *skin))
  for label in range(1, count):
    piece = colours[(flat == label) & confident]
    if grey_face and np.linalg.norm(_median_chroma(piece) - face_hue) < config.min_chroma:
      continue
    for model in _colour_models(piece, config):
      d2 = _mahalanobis2(colours[open_], *model)
      # The piece explains the pixel, and better than the face does.
      ok = (d2 <= limit) & (d2 < open_score)
      claimed[np.flatnonzero(open_)[ok]] = True
  grown = (grown | _connected_to(claimed.reshape(grown.shape), grown)) & region
  return fill_holes(photo, grown, region, skin, config)


def _chroma(colours: np.ndarray) -> np.ndarray:
  colours = np.asarray(colours, np.float64).reshape(-1, 3) + 1e-3
  return colours / colours.sum(axis=-1, keepdims=True)


def _median_chroma(colours: np.ndarray) -> np.ndarray:
  """[3] the median chromaticity ``c / sum(c)`` of [N, 3] colours (grey for none)."""
  return np.median(_chroma(colours), axis=0) if len(colours) else np.full(3, 1.0 / 3.0)


def chroma_spread(colours: np.ndarray) -> float:
  """The spread of [N, 3] colours' chromaticity ``c / sum(c)``: the norm of its per-channel
  standard deviations (0 for a grey photo, whatever its tint; 0.07-0.12 on the colour
  examples' faces); 0 for fewer than 10 colours."""
  if len(np.asarray(colours).reshape(-1, 3)) < 10:
    return 0.0
  return float(np.linalg.norm(_chroma(colours).std(axis=0)))


def fill_holes(photo: np.ndarray, mask: np.ndarray, region: np.ndarray, skin=None,
               config: OcclusionConfig = OcclusionConfig()) -> np.ndarray:
  """Fills the holes of an occluder that look like it: pieces of `region` outside `mask`,
  enclosed by it (not touching the region's edge), most of whose colours fit the Gaussian
  of the occluder pixels around them (a dark lens inside its detected rim, the lips under a
  mask that the fit had painted white). Holes of another colour stay (eyes inside frames).

  Args:
    photo: [H, W, 3] RGB 0..255.
    mask: [H, W] bool occluders.
    region: [H, W] bool the rendered face.
    skin: optional (mean, inverse covariance) of the face's skin colours (0..1): a hole
      fills only where its colours are closer to the occluder's than to these.
    config: the `OcclusionConfig`.
  """
  mask = np.asarray(mask, bool)
  region = np.asarray(region, bool)
  count, labels = cv2.connectedComponents((region & ~mask).astype(np.uint8), connectivity=4)
  if count <= 1:
    return mask
  # The region's outside, not its own holes (the eyes and the mouth the render leaves open).
  _, outside = cv2.connectedComponents((~region).astype(np.uint8), connectivity=8)
  border = np.unique(np.concatenate([outside[0], outside[-1], outside[:, 0], outside[:, -1]]))
  exterior = np.isin(outside, border[border > 0])
  edge = cv2.dilate(exterior.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
  open_ = np.ones(count, bool)
  open_[np.unique(labels[edge])] = False
  open_[0] = False
  colours = np.asarray(photo, np.float64) / 255.0
  limit = _chi2_3dof(config.colour_p)
  out = mask.copy()
  ring_kernel = np.ones((5, 5), np.uint8)
  for label in np.flatnonzero(open_):
    hole = labels == label
    ring = cv2.dilate(hole.astype(np.uint8), ring_kernel).astype(bool) & mask
    model = _colour_model(colours[ring], config)
    if model is None:
      continue
    d2 = _mahalanobis2(colours[hole], *model)
    fits = d2 <= limit
    if skin is not None:   # and closer to the occluder than to the face's skin
      fits &= d2 < _mahalanobis2(colours[hole], *skin)
    if np.mean(fits) > _HOLE_SHARE:
      out |= hole
  return out


def _colour_models(sample: np.ndarray, config: OcclusionConfig):
  """Colour models (`_colour_model`) of a piece's [N, 3] colours, one per k-means cluster
  (`_COLOUR_CLUSTERS`): a piece may join occluders of several colours (blond strands and a
  dark hat brim)."""
  clusters = min(_COLOUR_CLUSTERS, len(sample) // 20)
  if clusters <= 1:
    model = _colour_model(sample, config)
    return [] if model is None else [model]
  criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 10, 1e-3)
  cv2.setRNGSeed(0)
  _, assigned, _ = cv2.kmeans(sample.astype(np.float32), clusters, None, criteria, 1,
                              cv2.KMEANS_PP_CENTERS)
  models = [_colour_model(sample[assigned[:, 0] == k], config) for k in range(clusters)]
  return [m for m in models if m is not None]


def _colour_model(sample: np.ndarray, config: OcclusionConfig):
  """(mean, inverse covariance) of [N, 3] colours in 0..1, from their inner half (not a
  piece's blurred rim, nor face pixels it took in); None for fewer than 10."""
  if len(sample) < 10:
    return None
  mean = np.median(sample, axis=0)
  cov = np.cov(sample.T) + np.eye(3) * 1e-6
  d2 = _mahalanobis2(sample, mean, np.linalg.inv(cov))
  core = sample[d2 <= np.quantile(d2, 0.5)]
  if len(core) >= 5:
    mean, cov = core.mean(axis=0), np.cov(core.T)
  cov = cov * _TRIM_WIDEN + np.eye(3) * config.min_colour_scale ** 2
  return mean, np.linalg.inv(cov)


def _mahalanobis2(x: np.ndarray, mean: np.ndarray, inverse: np.ndarray) -> np.ndarray:
  diff = x - mean
  return np.einsum("ni,ij,nj->n", diff, inverse, diff)


def _chi2_3dof(p: float) -> float:
  """Chi-square quantile of 3 degrees of freedom (Wilson-Hilferty)."""
  z = statistics.NormalDist().inv_cdf(p)
  return 3.0 * (1.0 - 2.0 / 27.0 + z * np.sqrt(2.0 / 27.0)) ** 3


def clean_mask(mask: np.ndarray, region: np.ndarray,
               config: OcclusionConfig = OcclusionConfig()) -> np.ndarray:
  """Opening, small-piece removal and growth of a [H, W] bool mask, kept inside `region`."""
  region = np.asarray(region, bool)
  mask = np.asarray(mask, bool).astype(np.uint8)
  cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
  mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, cross)
  count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
  keep = stats[:, cv2.CC_STAT_AREA] >= config.min_area * max(int(region.sum()), 1)
  keep[0] = False
  mask = keep[labels].astype(np.uint8)
  if config.grow:
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * config.grow + 1,) * 2)
    mask = cv2.dilate(mask, disk)
  return mask.astype(bool) & region


def estimate_occlusion(photos: np.ndarray, renders: np.ndarray, coverage: np.ndarray,
                       face_mask: np.ndarray, features: np.ndarray,
                       config: OcclusionConfig = OcclusionConfig(),
                       oval: Optional[np.ndarray] = None,
                       learned: Optional[np.ndarray] = None) -> np.ndarray:
  """Occlusion masks of a batch: residual outliers plus the skin model's occluders.

  Args:
    photos: [B, H, W, 3] RGB 0..255 aligned crops.
    renders: [B, H, W, 3] lit coarse renders, RGB 0..255.
    coverage: [B, H, W] render coverage in [0, 1].
    face_mask: [B, H, W] the photo's face mask (skin, features, no skin-model occluders;
      `data.face_mask.face_masks`), in [0, 1].
    features: [B, H, W] bool, the eyes, brows and lips (`feature_polygons_mask` of each
      face's landmarks), where the residual threshold is raised.
    config: the `OcclusionConfig`.
    oval: optional [B, H, W] the face region the skin-colour model judged
      (`FaceMasks.region`); its non-skin pieces count as occluders. None: residuals only.
    learned: optional [B, H, W] occluder probabilities of the occluder network
      (`networks.occluder_net.occluder_probability`); confident pixels seed the growth.

  Returns:
    [B, H, W] float32 in {0, 1}: 1 where the rendered face is occluded in the photo.
  """
  photos = np.asarray(photos, np.float32)
  out = np.zeros(photos.shape[:3], np.float32)
  for i in range(photos.shape[0]):
    region = np.asarray(coverage[i]) > 0.5
    trusted = np.asarray(face_mask[i]) > 0.5
    parts = np.asarray(features[i], bool)
    outliers = residual_outliers(photos[i], renders[i], region, trusted, parts, config,
                                 None if learned is None else learned[i])
    if oval is not None:
      # The skin model's occluders: oval pixels it left out of the face mask. Outside the
      # oval it made no judgement.
      inside = region & (np.asarray(oval[i]) > 0.5)
      outliers |= clean_mask(inside & ~trusted & ~parts, region, config)
    out[i] = outliers.astype(np.float32)
  return out


__all__ = ["OcclusionConfig", "chroma_spread", "clean_mask", "estimate_occlusion", "feature_polygons_mask",
           "fill_holes", "grow_outliers", "residual_outliers"]
