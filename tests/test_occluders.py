"""Synthetic occluders with known masks (data.occluders) and the benchmark's mask figures."""

import numpy as np
import pytest

from benchmarks import occluders as suite
from facegcn_tf.data import occluders


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
  under it as close to a perfect mask's as the rest of the face is."""
  assert suite.out_of_albedo(0.05, 12.0, 10.0) == 1
  assert suite.out_of_albedo(0.05, 12.6, 10.0) == 0     # under > 1.25 x elsewhere
  assert suite.out_of_albedo(0.2, 5.0, 10.0) == 0       # a fifth of the occluder copied
  assert suite.out_of_albedo(suite.NULL, 5.0, 10.0) == suite.NULL
