"""Deep3DFace-style alignment: POS fit, template, warps both ways (no detector needed)."""

import cv2
import numpy as np
import pytest

from facegcn_tf.data import alignment

def _rotation(yaw, pitch, roll):
  cy, sy, cp, sp = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch)
  cr, sr = np.cos(roll), np.sin(roll)
  ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
  rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
  rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
  return rz @ rx @ ry


def _project(template, scale, centre, height, rotation=np.eye(3)):
  """Image points (y down) of a weak-perspective view: template origin at ``centre``."""
  up = scale * (template @ rotation.T)[:, :2] + np.array([centre[0], height - 1 - centre[1]])
  return np.stack([up[:, 0], height - 1 - up[:, 1]], axis=-1)


def test_ict_template5_layout(ict_template5):
  t = ict_template5
  assert t.shape == (5, 3)
  assert t[0, 0] < 0 < t[1, 0]                      # image-left eye has negative x
  assert 0.55 < t[1, 0] - t[0, 0] < 0.75            # inter-ocular ~6.5 cm, in dm
  assert t[3, 1] < t[2, 1] < t[0, 1]                # mouth below nose below eyes (y up)
  assert t[2, 2] == t[:, 2].max()                   # nose tip nearest the camera


def test_five_point_template_rejects_bad_input(ict_template5):
  with pytest.raises(ValueError, match=r"\[68, 3\]"):
    alignment.five_point_template(np.zeros((5, 3)))
  lm68 = np.random.RandomState(0).randn(68, 3)
  lm68[36:42, 0], lm68[42:48, 0] = 1.0, -1.0
  with pytest.raises(ValueError, match="mirrored"):
    alignment.five_point_template(lm68)
  lm68[0, 0] = np.nan
  with pytest.raises(ValueError, match="NaN"):
    alignment.five_point_template(lm68)


def test_pos_fit_recovers_scale_and_translation(ict_template5):
  for yaw, pitch, roll in [(0, 0, 0), (0.4, -0.2, 0.1), (-0.3, 0.15, -0.25)]:
    rot = _rotation(yaw, pitch, roll)
    pts = 250.0 * (ict_template5 @ rot.T)[:, :2] + np.array([321.0, 207.0])
    scale, t = alignment.pos_fit(pts, ict_template5)
    assert scale == pytest.approx(250.0, rel=1e-9)
    assert np.allclose(t, [321.0, 207.0], atol=1e-9)


def test_scale_translation_fit_is_least_squares(ict_template5):
  rng = np.random.RandomState(5)
  exact = 170.0 * ict_template5[:, :2] + np.array([250.0, 190.0])
  scale, t = alignment.fit_scale_translation(exact, ict_template5)
  assert scale == pytest.approx(170.0) and np.allclose(t, [250.0, 190.0])
  noisy = exact + rng.randn(5, 2) * 3.0
  a = np.zeros((10, 3))
  a[0::2, 0], a[1::2, 0] = ict_template5[:, 0], ict_template5[:, 1]
  a[0::2, 1], a[1::2, 2] = 1.0, 1.0
  expected = np.linalg.lstsq(a, noisy.reshape(-1), rcond=None)[0]
  scale, t = alignment.fit_scale_translation(noisy, ict_template5)
  assert np.allclose([scale, *t], expected)
  with pytest.raises(ValueError, match="unknown alignment method"):
    alignment.estimate_transform(exact, ict_template5, (400, 400), method="affine")


def test_template_lands_where_deep3dface_puts_it(ict_template5):
  """Frontal face: aligned point = (112 + 102 X, 112 - 102 Y) for template point (X, Y, Z)."""
  pts = _project(ict_template5, 180.0, (300.0, 220.0), height=480)
  expected = np.stack([112 + 102 * ict_template5[:, 0], 112 - 102 * ict_template5[:, 1]], axis=-1)
  for method in ("pos", "scale_translation"):
    transform = alignment.estimate_transform(pts, ict_template5, (480, 640, 3), method=method)
    assert np.allclose(transform.to_aligned(pts), expected, atol=1e-6)
  assert transform.zoom == pytest.approx(102 / 180)
  assert np.allclose(transform.to_original(expected), pts, atol=1e-6)
  assert np.allclose(transform.matrix @ np.append(transform.inverse[:, 2], 1), 0, atol=1e-9)


def test_aligned_pixels_come_from_the_right_place(ict_template5):
  rng = np.random.RandomState(3)
  photo = cv2.GaussianBlur(rng.randint(0, 256, (480, 640, 3)).astype(np.uint8), (0, 0), 3)
  pts = _project(ict_template5, 180.0, (330.0, 250.0), height=480)
  face = alignment.align_face(photo, pts, ict_template5)
  assert face.image.shape == (224, 224, 3) and face.image.dtype == np.uint8
  assert face.valid.all()
  # Sample the photo at the original position of a grid of aligned pixels.
  ys, xs = np.mgrid[20:204:23, 20:204:23]
  orig = face.transform.to_original(np.stack([xs.ravel(), ys.ravel()], -1).astype(np.float64))
  sampled = cv2.remap(photo, orig[:, 0].astype(np.float32).reshape(xs.shape),
                      orig[:, 1].astype(np.float32).reshape(xs.shape), cv2.INTER_LINEAR)
  assert np.abs(sampled.astype(int) - face.image[ys, xs].astype(int)).mean() < 2.0


def test_shrinking_is_anti_aliased(ict_template5):
  checker = ((np.indices((1200, 1200)).sum(axis=0) % 2) * 255).astype(np.uint8)
  photo = np.repeat(checker[..., None], 3, axis=-1)
  pts = _project(ict_template5, 500.0, (600.0, 600.0), height=1200)  # zoom 0.2
  face = alignment.align_face(photo, pts, ict_template5)
  assert face.transform.zoom < 0.25 and face.valid.all()
  assert abs(face.image.mean() - 127.5) < 5 and face.image.std() < 6


def test_crop_outside_the_photo_is_black_and_invalid(ict_template5):
  photo = np.full((400, 300, 3), 200, np.uint8)
  pts = _project(ict_template5, 150.0, (20.0, 200.0), height=400)  # face at the left edge
  face = alignment.align_face(photo, pts, ict_template5)
  assert not face.valid[:, :40].any() and face.valid[:, 150:].all()
  # Black padding outside (the interpolation kernel may reach 2 px past the edge).
  near = cv2.dilate(face.valid.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
  assert (face.image[~near] == 0).all()
  assert (face.image[face.valid][:, 0] > 150).mean() > 0.95


def test_warp_back_and_paste(ict_template5):
  rng = np.random.RandomState(4)
  photo = cv2.GaussianBlur(rng.randint(0, 256, (500, 400, 3)).astype(np.uint8), (0, 0), 4)
  pts = _project(ict_template5, 150.0, (210.0, 260.0), height=500)  # zoom 0.68
  face = alignment.align_face(photo, pts, ict_template5)
  back = alignment.warp_to_original(face.image, face.transform, photo.shape)
  footprint = alignment.warp_to_original(np.full((224, 224), 255, np.uint8), face.transform,
                                         photo.shape)
  inner = cv2.erode(footprint, np.ones((9, 9), np.uint8)) == 255
  assert inner.sum() > 10000
  assert np.abs(back[inner].astype(int) - photo[inner].astype(int)).mean() < 3.0

  rgba = np.zeros((224, 224, 4), np.uint8)
  rgba[..., 0] = 255                    # Red under alpha 0 must not bleed.
  rgba[80:144, 80:144] = (0, 255, 0, 255)
  pasted = alignment.paste_onto(photo, rgba, face.transform)
  cx, cy = np.rint(face.transform.to_original(np.array([111.5, 111.5]))).astype(int)
  assert np.array_equal(pasted[cy, cx], [0, 255, 0])
  edge = alignment.warp_to_original(rgba, face.transform, photo.shape)
  partial = (edge[..., 3] > 0) & (edge[..., 3] < 255)
  assert partial.any() and edge[partial][:, 0].max() == 0
  far = np.zeros(photo.shape[:2], bool)
  far[:20, :20] = True
  assert np.array_equal(pasted[far], photo[far])


def test_bad_points_raise(ict_template5):
  with pytest.raises(ValueError, match=r"\[5, 2\]"):
    alignment.estimate_transform(np.zeros((4, 2)), ict_template5, (100, 100))
  with pytest.raises(ValueError, match="finite"):
    alignment.estimate_transform(np.full((5, 2), np.nan), ict_template5, (100, 100))
  with pytest.raises(ValueError, match="degenerate"):
    alignment.estimate_transform(np.full((5, 2), 50.0), ict_template5, (100, 100))
  transform = alignment.estimate_transform(_project(ict_template5, 100, (50, 50), 100),
                                           ict_template5, (100, 100))
  with pytest.raises(ValueError, match="source shape"):
    alignment.warp_to_aligned(np.zeros((90, 100, 3), np.uint8), transform)
