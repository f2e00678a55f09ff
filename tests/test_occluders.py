"""Synthetic occluders with known masks (data.occluders) and the benchmark's mask figures."""

import numpy as np
import pytest

from benchmarks import occluders as suite
from facegcn_tf.data import image_io, occluders


def _landmarks(center=(150.0, 160.0), size=70.0):
  """[68, 2] iBUG-like points: jaw, brows, eyes, nose, mouth in their usual places."""
  cx, cy = center
  points = np.zeros((68, 2))
  angles = np.linspace(np.pi, 0.0, 17)
  points[:17] = np.stack([cx + size * np.cos(angles), cy + size * np.sin(angles)], axis=1)
  points[17:27] = np.stack([np.linspace(cx - 0.8 * size, cx + 0.8 * size, 10),
                            np.full(10, cy - 0.55 * size)], axis=1)
  points[27:31] = np.stack([np.full(4, cx), np.linspace(cy - 0.4 * size, cy, 4)], axis=1)
  points[31:36] = np.stack([np.linspace(cx - 0.15 * size, cx + 0.15 * size, 5),
                            np.full(5, cy + 0.05 * size)], axis=1)
  for first, ex in ((36, cx - 0.4 * size), (42, cx + 0.4 * size)):
    ring = np.linspace(0, 2 * np.pi, 6, endpoint=False)
    points[first:first + 6] = np.stack([ex + 0.12 * size * np.cos(ring),
                                        cy - 0.35 * size + 0.05 * size * np.sin(ring)], axis=1)
  ring = np.linspace(0, 2 * np.pi, 20, endpoint=False)
  points[48:68] = np.stack([cx + 0.3 * size * np.cos(ring), cy + 0.45 * size + 0.1 * size
                            * np.sin(ring)], axis=1)
  return points


@pytest.mark.parametrize("kind", occluders.KINDS)
def test_each_occluder_changes_the_photo_exactly_on_its_mask(kind):
  rng = np.random.default_rng(0)
  image = rng.integers(90, 110, (320, 300, 3)).astype(np.uint8)
  points = _landmarks()
  drawn = occluders.draw_occluder(image, points, kind, 5)
  assert drawn.kind == kind and drawn.mask.shape == (320, 300) and drawn.mask.dtype == bool
  changed = np.any(drawn.image != image, axis=-1)
  assert not changed[~drawn.mask].any()               # nothing outside the mask
  assert changed[drawn.mask].mean() > 0.9             # (almost) everything inside it
  share = drawn.mask.mean()
  assert 0.002 < share < 0.3
  # Same seed, same occluder; another seed, another one.
  again = occluders.draw_occluder(image, points, kind, 5)
  assert np.array_equal(again.image, drawn.image) and np.array_equal(again.mask, drawn.mask)
  assert not np.array_equal(occluders.occluder_mask(kind, points, image.shape, 6), drawn.mask)


@pytest.mark.parametrize("kind", occluders.KINDS)
def test_a_grey_photo_gets_a_grey_occluder_on_the_same_mask(kind):
  rng = np.random.default_rng(2)
  grey = np.repeat(rng.integers(90, 110, (320, 300, 1)), 3, axis=-1).astype(np.uint8)
  colour = grey.copy()
  colour[..., 0] += 12                                # the same photo, tinted
  points = _landmarks()
  on_grey = occluders.draw_occluder(grey, points, kind, 5)
  on_colour = occluders.draw_occluder(colour, points, kind, 5)
  assert image_io.is_grayscale(on_grey.image)
  assert np.array_equal(on_grey.mask, on_colour.mask)  # the same random draws
  changed = np.any(on_grey.image != grey, axis=-1)
  assert not changed[~on_grey.mask].any() and changed[on_grey.mask].mean() > 0.5
  if kind == "hand":   # a skin tone: coloured wherever the photo is
    spread = np.ptp(on_colour.image[on_colour.mask].astype(int), axis=-1)
    assert np.median(spread) > 20


def test_see_through_lenses_tint_only_inside_the_rims_and_stay_face():
  rng = np.random.default_rng(4)
  image = rng.integers(90, 110, (320, 300, 3)).astype(np.uint8)
  points = _landmarks()
  frames = occluders.draw_occluder(image, points, "frames", 5)
  inside = occluders.lens_interiors(frames.mask)
  # Two lenses, each around its eye's centre, none of the rim in them.
  assert not (inside & frames.mask).any() and inside.sum() > 5 * frames.mask.sum() / 10
  for first in (36, 42):
    x, y = np.rint(points[first:first + 6].mean(axis=0)).astype(int)
    assert inside[y, x]
  lensed = occluders.see_through_lenses(frames, 3)
  assert np.array_equal(lensed.mask, frames.mask) and lensed.kind == "frames"  # still face
  changed = np.any(lensed.image != frames.image, axis=-1)
  assert not changed[~inside].any() and changed[inside].mean() > 0.5
  # See-through: the photo's own texture survives under the tint.
  under = np.corrcoef(lensed.image[inside].astype(float).sum(-1),
                      frames.image[inside].astype(float).sum(-1))[0, 1]
  assert under > 0.5, under
  with pytest.raises(ValueError, match="frames"):
    occluders.see_through_lenses(occluders.draw_occluder(image, points, "sunglasses", 5))


def test_occluders_sit_where_they_belong():
  points = _landmarks()
  shape = (320, 300)
  eyes = np.rint(points[[37, 44]]).astype(int)
  for kind in ("sunglasses",):
    mask = occluders.occluder_mask(kind, points, shape, 0)
    assert mask[eyes[:, 1], eyes[:, 0]].all()
  mouth = np.rint(points[48:68].mean(axis=0)).astype(int)
  mask = occluders.occluder_mask("surgical_mask", points, shape, 0)
  assert mask[mouth[1], mouth[0]] and mask[int(points[8, 1]) - 2, int(points[8, 0])]
  assert not mask[eyes[:, 1], eyes[:, 0]].any()
  hair = occluders.occluder_mask("hair", points, shape, 0)
  rows = np.nonzero(hair)[0]
  assert rows.mean() < points[17:27, 1].mean()         # mostly above the brows
  frames = occluders.occluder_mask("frames", points, shape, 0)
  assert not frames[eyes[:, 1], eyes[:, 0]].any()      # frames: the eyes show through


def test_augment_photo_keeps_size_and_mirrors():
  rng = np.random.default_rng(1)
  image = rng.integers(0, 256, (40, 60, 3)).astype(np.uint8)
  mirrored = occluders.augment_photo(image, occluders.Augmentation(mirror=True))
  assert np.array_equal(mirrored, image[:, ::-1])
  variant = occluders.augment_photo(image, occluders.random_augmentation(3))
  assert variant.shape == image.shape and variant.dtype == np.uint8
  with pytest.raises(ValueError):
    occluders.draw_occluder(image, _landmarks(), "scarf")


def test_mask_figures_of_the_benchmark():
  truth = np.zeros((10, 10), bool)
  truth[2:6, 2:6] = True                               # 16 px
  estimate = np.zeros((10, 10), bool)
  estimate[4:8, 2:6] = True                            # 16 px, 8 on the truth
  inside = np.ones((10, 10), bool)
  assert suite.precision_recall(estimate, truth, inside) == (0.5, 0.5)
  inside[6:, :] = False                                # the 8 misses leave the face
  assert suite.precision_recall(estimate, truth, inside) == (1.0, 0.5)
  pixels = np.array([[3.2, 2.9], [8.0, 8.0], [-1.0, 3.0], [12.0, 1.0]])
  assert suite.under_mask(truth, pixels).tolist() == [True, False, False, False]


def test_the_out_of_the_albedo_rule_of_the_benchmark():
  """Out of the albedo: little of the occluder copied into the albedo (leak), and the albedo
  under it no further from a perfect mask's than two fits of the face differ elsewhere."""
  assert suite.out_of_albedo(0.05, 12.0, 10.0) == 1
  assert suite.out_of_albedo(0.05, 12.6, 10.0) == 0     # under > 1.25 x elsewhere
  assert suite.out_of_albedo(0.2, 5.0, 10.0) == 0       # a fifth of the occluder copied
  assert suite.out_of_albedo(suite.NULL, 5.0, 10.0) == suite.NULL


def _skin_scene(size=120, seed=0):
  """A skin-coloured face disc: (photo, render, region), photo = render + noise."""
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[:size, :size]
  region = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (0.45 * size) ** 2
  render = np.zeros((size, size, 3), np.float32)
  render[region] = (200.0, 150.0, 130.0)
  photo = np.clip(render + rng.normal(0.0, 3.0, render.shape), 0, 255).astype(np.float32)
  return photo, render, region, rng


def _estimate(photo, render, region, **config):
  from facegcn_tf.fitting import occlusion
  features = np.zeros(region.shape, bool)
  return occlusion.residual_outliers(photo, render, region, region, features,
                                     occlusion.OcclusionConfig(**config))


def test_a_lens_the_fit_absorbed_is_found_whole():
  """A dark lens whose inside the coarse render has (partly) painted dark: only its rim is
  a confident outlier; its colour claims the rest (the hole inside the rim)."""
  photo, render, region, rng = _skin_scene()
  yy, xx = np.mgrid[:120, :120]
  lens = ((yy - 50) / 14.0) ** 2 + ((xx - 45) / 18.0) ** 2 < 1.0
  inner = ((yy - 50) / 10.0) ** 2 + ((xx - 45) / 14.0) ** 2 < 1.0
  photo[lens] = np.clip(30.0 + rng.normal(0.0, 4.0, (lens.sum(), 3)), 0, 255)
  render[inner] = 32.0            # the fit explains the lens's inside
  old = _estimate(photo, render, region, low_threshold=3.0, colour_p=1e-6)
  assert (old & lens).sum() / lens.sum() < 0.7          # rim only, without growth
  found = _estimate(photo, render, region)
  assert (found & lens).sum() / lens.sum() > 0.97
  assert (found & ~lens).sum() < 0.02 * region.sum()    # and little else


def test_the_eye_inside_a_frame_stays_while_a_strand_is_followed():
  """Holes of another colour than their occluder stay (the eye inside a frame); pixels the
  face explains worse than the strand's colour does join it (hysteresis + colour)."""
  photo, render, region, rng = _skin_scene(seed=1)
  import cv2
  ring = np.zeros((120, 120), np.uint8)
  cv2.ellipse(ring, (45, 50), (18, 14), 0, 0, 360, 1, thickness=3)
  ring = ring.astype(bool)
  eye = np.zeros((120, 120), np.uint8)
  cv2.ellipse(eye, (45, 50), (15, 11), 0, 0, 360, 1, thickness=-1)
  eye = eye.astype(bool) & ~ring
  photo[ring] = np.clip(25.0 + rng.normal(0.0, 3.0, (ring.sum(), 3)), 0, 255)
  found = _estimate(photo, render, region)
  assert (found & ring).sum() / ring.sum() > 0.95
  assert (found & eye).sum() / eye.sum() < 0.2           # the skin inside is not filled
  # A blond strand; its lower half the fit had half absorbed (score between 0 and the
  # threshold), its upper half is a confident outlier.
  strand = np.zeros((120, 120), np.uint8)
  cv2.line(strand, (80, 20), (80, 100), 1, thickness=4)
  strand = strand.astype(bool)
  blond = np.array([230.0, 215.0, 150.0])
  photo[strand] = np.clip(blond + rng.normal(0.0, 3.0, (strand.sum(), 3)), 0, 255)
  lower = strand & (np.mgrid[:120, :120][0] > 60)
  render[lower] = 0.85 * blond + 0.15 * np.array([200.0, 150.0, 130.0])
  old = _estimate(photo, render, region, low_threshold=3.0, colour_p=1e-6)
  assert (old & lower).sum() / lower.sum() < 0.2
  found = _estimate(photo, render, region)
  assert (found & strand).sum() / strand.sum() > 0.95
  assert (found & region & ~strand & ~ring).sum() < 0.05 * region.sum()   # their rims


def test_colour_growth_leaves_the_facial_features_to_the_face():
  """A brown strand touching a brown brow the fit has almost explained: the strand's colour
  would claim the brow, but the brows, eyes and lips belong to the face (hair-coloured
  brows, dark lashes), so only residuals and the network's seeds take them."""
  from facegcn_tf.fitting import occlusion
  import cv2
  photo, render, region, rng = _skin_scene(seed=3)
  brown = np.array([90.0, 60.0, 40.0])
  strand = np.zeros((120, 120), np.uint8)
  cv2.line(strand, (40, 12), (40, 44), 1, thickness=4)
  strand = strand.astype(bool)
  brow = np.zeros((120, 120), bool)
  brow[45:51, 30:72] = True
  for where in (strand, brow):
    photo[where] = np.clip(brown + rng.normal(0.0, 3.0, (where.sum(), 3)), 0, 255)
  render[brow] = 0.92 * brown + 0.08 * np.array([200.0, 150.0, 130.0])   # almost explained
  config = occlusion.OcclusionConfig()
  unmarked = occlusion.residual_outliers(photo, render, region, region,
                                         np.zeros_like(region), config)
  assert (unmarked & strand).sum() / strand.sum() > 0.95
  assert (unmarked & brow).sum() / brow.sum() > 0.5       # claimed by the strand's colour
  found = occlusion.residual_outliers(photo, render, region, region, brow, config)
  assert (found & strand).sum() / strand.sum() > 0.95
  assert (found & brow).sum() / brow.sum() < 0.1


def test_with_the_network_it_alone_judges_the_eyes_brows_and_lips():
  """A dark brow the smooth albedo cannot paint, and a grey strand touching it. Without the
  network the brow's residual passes even the raised threshold, so the brow is taken for an
  occluder; with the network, which sees no occluder there, the brow stays face (neither a
  seed nor reached by the strand's hysteresis) while the strand is still found; where the
  network does see one (sunglasses over an eye), the feature is an occluder."""
  from facegcn_tf.fitting import occlusion
  import cv2
  photo, render, region, rng = _skin_scene(seed=7)
  brow = np.zeros(region.shape, bool)
  brow[45:51, 30:72] = True
  strand = np.zeros((120, 120), np.uint8)
  cv2.line(strand, (50, 12), (50, 44), 1, thickness=4)
  strand = strand.astype(bool)
  photo[brow] = np.clip(np.array([60.0, 40.0, 30.0]) + rng.normal(0.0, 3.0, (brow.sum(), 3)),
                        0, 255)
  photo[strand] = np.clip(np.array([120.0, 120.0, 120.0]) + rng.normal(0.0, 3.0,
                                                                      (strand.sum(), 3)), 0, 255)
  config = occlusion.OcclusionConfig()
  share = lambda found, where: (found & where).sum() / where.sum()
  residual_only = occlusion.residual_outliers(photo, render, region, region, brow, config)
  assert share(residual_only, brow) > 0.9
  quiet = np.full(region.shape, 0.02)
  judged = occlusion.residual_outliers(photo, render, region, region, brow, config, quiet)
  assert share(judged, strand) > 0.95
  assert share(judged, brow) < 0.05
  covered = occlusion.residual_outliers(photo, render, region, region, brow, config,
                                        np.where(brow, 0.9, 0.02))
  assert share(covered, brow) > 0.95


def test_a_clean_face_has_no_occluders():
  photo, render, region, _ = _skin_scene(seed=2)
  assert not _estimate(photo, render, region).any()


def test_the_occluder_networks_pieces_are_seeds_the_residual_cannot_see():
  """A skin-coloured hand the render explains perfectly: no residual outlier, but the
  network's confident pixels are seeds, and below its threshold they are not."""
  from facegcn_tf.fitting import occlusion
  photo, render, region, _ = _skin_scene(seed=4)
  hand = np.zeros(region.shape, bool)
  hand[60:90, 40:80] = True
  photo[hand] = render[hand] = (150.0, 100.0, 80.0)   # the fit absorbed it
  assert not _estimate(photo, render, region).any()
  features = np.zeros(region.shape, bool)
  config = occlusion.OcclusionConfig()
  seed_at = config.learned_threshold
  for level, found_share in ((0.9, 0.95), (seed_at, 0.95), (0.5 * seed_at, 0.0)):
    learned = np.where(hand, level, 0.02)
    found = occlusion.residual_outliers(photo, render, region, region, features, config,
                                        learned)
    assert (found & hand).sum() >= found_share * hand.sum(), level
    near = np.zeros(region.shape, bool)
    near[57:93, 37:83] = True   # the hand and a 3-px rim (growth)
    assert not (found & ~near).any()
    if found_share == 0.0:
      assert not found.any()


def test_a_face_too_small_for_residual_statistics_keeps_the_networks_seeds():
  """Under 50 region pixels the residual says nothing; the network's pixels still count."""
  from facegcn_tf.fitting import occlusion
  photo, render, _, _ = _skin_scene(seed=6)
  region = np.zeros(photo.shape[:2], bool)
  region[50:56, 50:56] = True                          # 36 px
  learned = np.zeros(region.shape)
  learned[50:53, 50:56] = 0.9
  found = occlusion.residual_outliers(photo, render, region, region,
                                      np.zeros(region.shape, bool), occlusion.OcclusionConfig(),
                                      learned)
  assert found.sum() == 18 and found[50:53, 50:56].all()
  assert not occlusion.residual_outliers(photo, render, region, region,
                                         np.zeros(region.shape, bool)).any()


def test_a_grey_photo_grows_no_occluder_by_colour():
  """On a grey photo colour cannot tell a dark strand from the shadow beside it: the
  shadow the render half explains (score between 0 and the hysteresis threshold) stays out,
  unless colour growth is forced on (then the strand's Gaussian claims it)."""
  from facegcn_tf.fitting import occlusion
  photo, render, region, rng = _skin_scene(seed=3)
  render[region] = 150.0             # grey noise: the photo has one hue
  photo = np.clip(render + rng.normal(0.0, 3.0, render.shape[:2] + (1,)), 0, 255)
  yy, xx = np.mgrid[:120, :120]
  strand = region & (np.abs(xx - 40) <= 3)
  shadow = region & (xx > 43) & (xx < 60)
  photo[strand] = np.clip(30.0 + rng.normal(0.0, 3.0, (strand.sum(), 1)), 0, 255)
  photo[shadow] = np.clip(40.0 + rng.normal(0.0, 3.0, (shadow.sum(), 1)), 0, 255)
  render[shadow] = 46.0               # the fit half explains the shadow
  tint = np.array([1.1, 1.0, 0.85], np.float32)   # a grey photo stays grey under a tint
  assert occlusion.chroma_spread(photo[region] * tint) < 0.005
  found = _estimate(photo * tint, render * tint, region)
  assert (found & strand).sum() / strand.sum() > 0.95
  assert (found & shadow).sum() / shadow.sum() < 0.2
  forced = _estimate(photo * tint, render * tint, region, min_chroma=1e-9)
  assert (forced & shadow).sum() / shadow.sum() > 0.8
