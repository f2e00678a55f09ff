"""Training pairs for the occluder network: synthetic faces with synthetic occluders.

No photo of a real face is used, so the bundled example photos stay held out for judging
the network (`benchmarks/occluders.py`, `tests/test_occluder_net.py`):

* faces: random coefficients of the project's face model (`render.random_faces`) rendered
  over crops of scikit-image's non-face pictures (coffee, a cat, a rocket, textures);
* occluders: `data.occluders` (sunglasses, frames, a skin-coloured hand, a surgical mask,
  hair strands), placed from the render's exact landmarks; a share of faces gets none, a
  share gets two;
* occluder colours beyond the drawn ones: a share of occluders is recoloured to a random
  colour with its texture kept (light metal and tortoiseshell frames, coloured masks,
  gloves), and the thin kind (frames) is drawn more often;
* optionally (`lens_share`, off by default), frames with tinted see-through lenses and a
  glare (`occluders.see_through_lenses`) that stay labelled face;
* photo-like degradations: blur, sensor noise, and some faces turned grey.

Everything is drawn from one seed, so a set is regenerated exactly.
"""

import dataclasses
from typing import List, Tuple

import cv2
import numpy as np

from facegcn_tf.data import occluders
from facegcn_tf.render import random_faces
from facegcn_tf.render.renderer import FaceRenderer

# scikit-image pictures shipped inside its wheel, none with a face.
BACKGROUNDS = ("coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field",
               "brick", "grass", "gravel")


@dataclasses.dataclass(frozen=True)
class OccluderDataConfig:
  """How the pairs are drawn.

  Attributes:
    samples: number of pairs.
    size: side of the stored images and masks (the network's working size).
    clean_share: share of faces without an occluder.
    second_share: share of occluded faces that get a second occluder.
    blur_share, max_blur: share of faces blurred, and the largest Gaussian sigma (px at
      the render size).
    max_noise: the largest std of the added pixel noise (0..255 levels).
    grey_share: share of faces turned grey (grey photos are common in the wild).
    recolour_share: share of drawn occluders given a uniformly random colour (their
      shading and noise kept), so the network learns shapes, not the drawer's palette.
    lens_share: share of frames given tinted see-through lenses (labelled face); 0 for the
      shipped network (docs/fitting.md, "See-through lenses: tried, not shipped").
    kind_weights: relative frequency of each of `occluders.KINDS` (frames, 2 px strokes at
      the working size, are the hardest to learn and are drawn twice as often).
    seed: the generator's seed.
  """
  samples: int = 6000
  size: int = 112
  clean_share: float = 1.0 / 6.0
  second_share: float = 0.3
  blur_share: float = 0.5
  max_blur: float = 1.2
  max_noise: float = 6.0
  grey_share: float = 0.2
  recolour_share: float = 0.4
  lens_share: float = 0.0
  kind_weights: Tuple[float, ...] = (1.0, 2.0, 1.0, 1.0, 1.0)
  seed: int = 0

  def __post_init__(self):
    if len(self.kind_weights) != len(occluders.KINDS) or min(self.kind_weights) < 0 \
        or sum(self.kind_weights) <= 0:
      raise ValueError(f"kind_weights must be {len(occluders.KINDS)} non-negative weights "
                       f"(one per {occluders.KINDS}) with a positive sum, got "
                       f"{self.kind_weights}")


@dataclasses.dataclass(frozen=True)
class OccluderPairs:
  """images: [N, s, s, 3] uint8 RGB; masks: [N, s, s] float32 occluder coverage in [0, 1];
  coverage: [N, s, s] float32 the rendered face's coverage; kinds: the occluders drawn."""
  images: np.ndarray
  masks: np.ndarray
  coverage: np.ndarray
  kinds: List[str]


def background_photos() -> List[np.ndarray]:
  """The non-face pictures faces are composited over: [H, W, 3] uint8 each."""
  import skimage.data  # pylint: disable=import-outside-toplevel
  out = []
  for name in BACKGROUNDS:
    image = np.asarray(getattr(skimage.data, name)())
    out.append(np.repeat(image[..., None], 3, axis=-1) if image.ndim == 2 else image[..., :3])
  return out


def _degrade(image: np.ndarray, config: OccluderDataConfig,
             rng: np.random.Generator) -> np.ndarray:
  """[S, S, 3] float RGB: blur, noise and greying of one face."""
  if rng.random() < config.blur_share:
    image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.3, config.max_blur))
  image = image + rng.normal(0.0, rng.uniform(0.0, config.max_noise), image.shape)
  if rng.random() < config.grey_share:
    image = np.repeat(image.mean(axis=-1, keepdims=True), 3, axis=-1)
  return np.clip(image, 0.0, 255.0)


def recolour(image: np.ndarray, mask: np.ndarray, colour: np.ndarray) -> np.ndarray:
  """[H, W, 3] uint8 `image` with its pixels on [H, W] bool `mask` moved to mean RGB
  `colour` [3] (0..255), their deviation from their own mean (shading, noise) kept."""
  out = image.copy()
  if mask.any():
    pixels = image[mask].astype(np.float32)
    moved = pixels - pixels.mean(axis=0) + np.asarray(colour, np.float32)[None, :]
    out[mask] = np.clip(np.rint(moved), 0, 255).astype(np.uint8)
  return out


def _resize(image: np.ndarray, size: int) -> np.ndarray:
  return cv2.resize(np.asarray(image, np.float32), (size, size), interpolation=cv2.INTER_AREA)


def occluder_pairs(renderer: FaceRenderer, config: OccluderDataConfig = OccluderDataConfig(),
                   chunk: int = 16) -> OccluderPairs:
  """Draws `config.samples` synthetic occluded faces (see the module docstring).

  Args:
    renderer: renders the random faces (its model and image size S).
    config: the `OccluderDataConfig`.
    chunk: faces rendered per batch.
  """
  rng = np.random.default_rng(config.seed)
  backgrounds = background_photos()
  count, size = config.samples, config.size
  images = np.zeros([count, size, size, 3], np.uint8)
  masks = np.zeros([count, size, size], np.float32)
  coverage = np.zeros([count, size, size], np.float32)
  kinds = []
  weights = np.asarray(config.kind_weights, np.float64) / sum(config.kind_weights)
  for start in range(0, count, chunk):
    n = min(chunk, count - start)
    coeffs = random_faces.random_coefficients(renderer.model.layout, n, rng)
    faces = random_faces.render_faces(
        renderer, coeffs, random_faces.background_crops(backgrounds, n, renderer.image_size, rng),
        rng)
    for i in range(n):
      image = np.clip(np.rint(faces.images[i]), 0, 255).astype(np.uint8)
      mask = np.zeros(image.shape[:2], bool)
      drawn = []
      if rng.random() >= config.clean_share:
        draws = 2 if rng.random() < config.second_share else 1
        for kind in rng.choice(occluders.KINDS, size=draws, replace=False, p=weights):
          occluded = occluders.draw_occluder(image, faces.true_landmarks68[i], str(kind), rng)
          # (No draw at lens_share 0: the pairs stay those the shipped network saw.)
          if kind == "frames" and config.lens_share > 0 and rng.random() < config.lens_share:
            occluded = occluders.see_through_lenses(occluded, rng)
          drawn_image = occluded.image
          if rng.random() < config.recolour_share:
            drawn_image = recolour(drawn_image, occluded.mask, rng.uniform(0.0, 255.0, 3))
          image, mask = drawn_image, mask | occluded.mask
          drawn.append(str(kind))
      degraded = _degrade(image.astype(np.float32), config, rng)
      images[start + i] = np.clip(np.rint(_resize(degraded, size)), 0, 255).astype(np.uint8)
      masks[start + i] = _resize(mask, size)
      coverage[start + i] = _resize(faces.face_mask[i], size)
      kinds.append("+".join(drawn) or "none")
  return OccluderPairs(images=images, masks=masks, coverage=coverage, kinds=kinds)


__all__ = ["BACKGROUNDS", "OccluderDataConfig", "OccluderPairs", "background_photos",
           "occluder_pairs", "recolour"]
