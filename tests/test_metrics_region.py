"""Face region, spill and overlay figures (issue #11 point 7)."""

import numpy as np
import pytest

from facegcn_tf import metrics


def _synthetic_landmarks(center=(100.0, 120.0), size=60.0):
  """[68, 2] iBUG-like points: jaw on a lower half-ellipse, brows above the eyes."""
  cx, cy = center
  points = np.zeros((68, 2))
  angles = np.linspace(np.pi, 0.0, 17)  # jaw from image-left to image-right, through the chin
  points[:17] = np.stack([cx + size * np.cos(angles), cy + size * np.sin(angles)], axis=1)
  points[17:27] = np.stack([np.linspace(cx - 0.8 * size, cx + 0.8 * size, 10),
                            np.full(10, cy - 0.5 * size)], axis=1)
  # The rest inside the face (eyes, nose, mouth) on a small grid.
  inner = np.stack(np.meshgrid(np.linspace(cx - 0.5 * size, cx + 0.5 * size, 7),
                               np.linspace(cy - 0.3 * size, cy + 0.6 * size, 6)), -1).reshape(-1, 2)
  points[27:] = inner[:41]
  return points


def test_face_region_raised_over_forehead_and_dilated():
  points = _synthetic_landmarks()
  region = metrics.face_region_mask(points, (240, 200))
  assert region.dtype == bool and region.shape == (240, 200)
  # Every landmark is inside; the chin is at y = 180, the brows at y = 90.
  xs, ys = np.rint(points).astype(int).T
  assert region[ys.clip(0, 239), xs.clip(0, 199)].all()
  brow_to_chin = 180.0 - 90.0
  lift = metrics.FOREHEAD_LIFT * brow_to_chin
  assert region[int(90 - lift + 3), 100]          # the forehead above the brows
  assert not region[int(90 - lift - 8), 100]       # but not the scalp above it
  dilation = metrics.REGION_DILATION * brow_to_chin
  assert region[int(180 + dilation - 1), 100]       # the dilated chin
  assert not region[int(180 + dilation + 3), 100]
  assert not region[20, 10] and not region[230, 190]


def test_face_region_clipped_at_the_photo_edge():
  points = _synthetic_landmarks(center=(10.0, 120.0))
  region = metrics.face_region_mask(points, (240, 200))
  assert region[120, 0] and region.sum() > 0


def test_face_region_rejects_bad_landmarks():
  with pytest.raises(ValueError):
    metrics.face_region_mask(np.zeros((5, 2)), (10, 10))
  with pytest.raises(ValueError):
    metrics.face_region_mask(np.full((68, 2), np.nan), (10, 10))


def test_spill_counts_changes_outside_the_region():
  photo = np.full((50, 60, 3), 100, np.uint8)
  region = np.zeros((50, 60), bool)
  region[10:30, 10:40] = True                     # 600 px
  overlay = photo.copy()
  overlay[10:30, 10:40] = 200                      # 600 changed inside
  assert metrics.spill(photo, overlay, region) == 0.0
  overlay[40:50, 0:20] = 0                         # 200 changed outside
  assert metrics.spill(photo, overlay, region) == pytest.approx(200 / 800)
  overlay[0:2, 0:60] = 101                         # a change within the tolerance is none
  assert metrics.spill(photo, overlay, region) == pytest.approx(200 / 800)
  assert np.isnan(metrics.spill(photo, photo, region))


def test_region_figures_psnr_ssim_inside_the_region():
  rng = np.random.default_rng(0)
  photo = rng.integers(0, 256, (80, 90, 3)).astype(np.uint8)
  region = np.zeros((80, 90), bool)
  region[20:60, 20:70] = True
  overlay = photo.copy()
  overlay[~region] = 0                             # outside changes: spill, not PSNR
  figures = metrics.region_figures(photo, overlay, region)
  assert figures["spill"] == pytest.approx(1.0, abs=0.01)
  assert figures["psnr_db"] > 100 and figures["region_changed"] == 0.0
  figures = metrics.region_figures(photo, photo, region)
  assert np.isnan(figures["spill"]) and figures["ssim"] == pytest.approx(1.0)
  noisy = photo.astype(np.int16)
  noisy[region] += rng.choice([-10, 10], size=noisy[region].shape).astype(np.int16)
  noisy = np.clip(noisy, 0, 255).astype(np.uint8)
  figures = metrics.region_figures(photo, noisy, region)
  mse = np.mean((noisy[region].astype(float) - photo[region]) ** 2) / 255.0 ** 2
  assert figures["psnr_db"] == pytest.approx(10 * np.log10(1 / mse), abs=0.01)
  assert 0.0 < figures["ssim"] < 1.0
  assert figures["spill"] == 0.0 and figures["region_changed"] > 0.9
  # SSIM on the region's bounding box equals SSIM on the whole image inside the region.
  assert figures["ssim"] == pytest.approx(metrics.masked_ssim(photo / 255.0, noisy / 255.0, region),
                                          abs=1e-6)


def test_masked_mean():
  values = np.arange(4.0).reshape(2, 2)
  assert metrics.masked_mean(values, np.array([[0, 1], [1, 0]])) == 1.5
  assert np.isnan(metrics.masked_mean(values, np.zeros((2, 2))))


def test_overlay_figures_of_a_pasted_render(ict_template5):
  """export.evaluation.overlay_figures on a render pasted into a larger photo: the same
  figures as judging the whole photo, the render's spill where it covers more than the
  face region, and the occluded fraction only with an occlusion map."""
  from facegcn_tf.data import alignment
  from facegcn_tf.export import evaluation, overlay
  rng = np.random.default_rng(0)
  photo = rng.integers(60, 200, (420, 520, 3)).astype(np.uint8)
  points5 = 180.0 * ict_template5[:, :2] * np.array([1, -1]) + np.array([300.0, 200.0])
  transform = alignment.estimate_transform(points5, ict_template5, photo.shape)
  size = transform.size
  crop = alignment.warp_to_aligned(photo, transform)
  landmarks = _synthetic_landmarks(center=(112.0, 120.0), size=60.0)
  ys, xs = np.mgrid[0:size, 0:size]
  mask = ((xs - 112.0) ** 2 + (ys - 115.0) ** 2 < 85.0 ** 2).astype(np.float32)
  fine = np.clip(crop / 255.0 + rng.normal(0, 0.05, crop.shape), 0, 1).astype(np.float32)
  renders = overlay.AlignedRenders(crop=crop, coarse=fine, fine=fine, shape=fine, mask=mask)
  figures = evaluation.overlay_figures(photo, renders, transform, landmarks)
  pasted = overlay.paste_back(photo, fine, mask, transform)
  region = metrics.face_region_mask(transform.to_original(landmarks), photo.shape[:2])
  whole = metrics.region_figures(photo, pasted, region)
  assert figures["spill"] == pytest.approx(whole["spill"])
  assert figures["psnr_overlay_full_db"] == pytest.approx(whole["psnr_db"], abs=1e-4)
  assert figures["ssim_overlay_full"] == pytest.approx(whole["ssim"], abs=1e-6)
  assert 0.05 < figures["spill"] < 0.9                # the disc reaches past the face region
  assert 20.0 < figures["psnr_overlay_224_db"] < 40.0
  assert np.isnan(figures["occluded_fraction"])
  # The fitter's occlusion map covers the upper half of the face, which the render then
  # leaves out: the occluded fraction is that half's share of the whole face.
  occlusion = np.zeros((size, size), np.float32)
  occlusion[:112] = mask[:112]
  visible = mask.copy()
  visible[:112] = 0.0
  half = evaluation.overlay_figures(photo, renders._replace(mask=visible), transform, landmarks,
                                    occlusion)
  assert half["occluded_fraction"] == pytest.approx(mask[:112].sum() / mask.sum())
