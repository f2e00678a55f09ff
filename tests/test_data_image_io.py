"""Photo loading: formats, conversions and every kind of bad input (files made at test time)."""

import hashlib
import os

import cv2
import numpy as np
import pytest
from PIL import Image

from facegcn_tf.data import image_io
from facegcn_tf.errors import ImageLoadError


def _photo(height=48, width=64):
  """A smooth colour test pattern (compresses well, survives JPEG)."""
  y, x = np.mgrid[0:height, 0:width]
  return np.stack([x * 255 // (width - 1), y * 255 // (height - 1),
                   np.full_like(x, 90)], axis=-1).astype(np.uint8)


def _save(img: Image.Image, path, **kwargs):
  img.save(str(path), **kwargs)
  return str(path)


@pytest.mark.parametrize("ext,kwargs", [
    (".png", {}), (".jpg", {"quality": 95}), (".webp", {"lossless": True}), (".bmp", {}),
    (".tiff", {}), (".gif", {}),
])
def test_common_formats_decode_to_rgb_uint8(tmp_path, ext, kwargs):
  rgb = _photo()
  path = _save(Image.fromarray(rgb), tmp_path / f"photo{ext}", **kwargs)
  loaded = image_io.load_image(path)
  assert loaded.rgb.dtype == np.uint8 and loaded.rgb.shape == (48, 64, 3)
  assert loaded.original_size == (48, 64)
  tolerance = {".jpg": 6, ".gif": 40}.get(ext, 0)  # GIF: 256-colour palette.
  assert np.abs(loaded.rgb.astype(int) - rgb).mean() <= tolerance


def test_exif_orientation_is_applied(tmp_path):
  rgb = _photo(40, 60)
  rgb[:10, :10] = (255, 0, 0)  # Red block at the stored top-left corner.
  exif = Image.Exif()
  exif[0x0112] = 6  # "Rotate 90 CW to display".
  path = _save(Image.fromarray(rgb), tmp_path / "rotated.jpg", exif=exif, quality=95)
  loaded = image_io.load_image(path)
  assert loaded.stored_size == (40, 60)
  assert loaded.original_size == (60, 40) and loaded.rgb.shape == (60, 40, 3)
  # Rotating 90 degrees clockwise moves the stored top-left corner to the top-right.
  assert loaded.rgb[2:8, -8:-2, 0].mean() > 200 and loaded.rgb[2:8, -8:-2, 1].mean() < 60
  assert loaded.rgb[2:8, 2:8, 0].mean() < 100


def test_sixteen_bit_gray_png_is_scaled_not_clipped(tmp_path):
  ramp = np.linspace(0, 65535, 64 * 48).reshape(48, 64).astype(np.uint16)
  path = str(tmp_path / "gray16.png")
  cv2.imwrite(path, ramp)
  loaded = image_io.load_image(path)
  assert loaded.source_mode.startswith("I")
  expected = np.rint(ramp / 257.0).astype(np.uint8)
  assert np.array_equal(loaded.rgb[..., 0], expected)
  assert np.array_equal(loaded.rgb[..., 0], loaded.rgb[..., 2])
  assert loaded.rgb.max() == 255 and loaded.rgb.min() == 0


def test_sixteen_bit_rgb_png(tmp_path):
  rgb16 = _photo().astype(np.uint16) * 257
  path = str(tmp_path / "rgb16.png")
  cv2.imwrite(path, rgb16[..., ::-1])
  loaded = image_io.load_image(path)
  assert np.abs(loaded.rgb.astype(int) - _photo()).max() <= 1


def test_grayscale_and_one_bit(tmp_path):
  gray = _photo()[..., 0]
  loaded = image_io.load_image(_save(Image.fromarray(gray, "L"), tmp_path / "gray.png"))
  assert loaded.rgb.shape == (48, 64, 3)
  assert np.array_equal(loaded.rgb[..., 1], gray)
  bits = Image.fromarray(gray > 128).convert("1")
  loaded = image_io.load_image(_save(bits, tmp_path / "bits.png"))
  assert set(np.unique(loaded.rgb)) <= {0, 255}


def test_rgba_and_la_are_composited_on_white(tmp_path):
  rgba = np.zeros((48, 64, 4), np.uint8)
  rgba[..., :3] = (200, 10, 10)
  rgba[:, :32, 3] = 255   # Left: opaque red.
  rgba[:, 32:, 3] = 0     # Right: transparent (colour underneath is black-ish red).
  loaded = image_io.load_image(_save(Image.fromarray(rgba, "RGBA"), tmp_path / "rgba.png"))
  assert np.array_equal(loaded.rgb[0, 0], [200, 10, 10])
  assert np.array_equal(loaded.rgb[0, -1], [255, 255, 255])
  la = np.zeros((48, 64, 2), np.uint8)
  la[..., 1] = 128  # Half transparent black -> mid grey.
  loaded = image_io.load_image(_save(Image.fromarray(la, "LA"), tmp_path / "la.png"))
  assert abs(int(loaded.rgb[5, 5, 0]) - 127) <= 1


def test_cmyk_jpeg(tmp_path):
  cmyk = Image.new("CMYK", (64, 48), (0, 255, 255, 0))  # Pure red in CMYK.
  loaded = image_io.load_image(_save(cmyk, tmp_path / "cmyk.jpg", quality=95))
  assert loaded.source_mode == "CMYK"
  r, g, b = loaded.rgb[24, 32].astype(int)
  assert r > 230 and g < 25 and b < 25


def test_palette_png_with_transparency(tmp_path):
  img = Image.new("P", (64, 48), 1)
  img.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)
  img.paste(0, (0, 0, 32, 48))
  img.info["transparency"] = 0
  loaded = image_io.load_image(_save(img, tmp_path / "palette.png", transparency=0))
  assert np.array_equal(loaded.rgb[0, 0], [255, 255, 255])  # Transparent -> white.
  assert np.array_equal(loaded.rgb[0, -1], [0, 0, 255])


def test_float_tiffs(tmp_path):
  gray = np.linspace(0, 1, 64 * 48, dtype=np.float32).reshape(48, 64)
  loaded = image_io.load_image(_save(Image.fromarray(gray, "F"), tmp_path / "gray_f.tiff"))
  assert loaded.source_mode == "F"
  assert np.abs(loaded.rgb[..., 0].astype(int) - np.rint(gray * 255)).max() <= 1
  rgb = np.random.RandomState(0).rand(48, 64, 3).astype(np.float32)
  path = str(tmp_path / "rgb_f.tiff")
  cv2.imwrite(path, rgb[..., ::-1])  # Pillow cannot read 3-channel float TIFF: OpenCV fallback.
  loaded = image_io.load_image(path)
  assert loaded.source_mode.startswith("cv2:float32")
  assert np.abs(loaded.rgb.astype(int) - np.rint(rgb * 255)).max() <= 1


@pytest.mark.parametrize(
    "kind", ["truncated", "random", "empty", "directory", "missing", "text", "tiny"])
def test_bad_inputs_raise_image_load_error_naming_the_file(tmp_path, kind):
  path = tmp_path / f"bad_{kind}.jpg"
  if kind == "truncated":
    full = tmp_path / "full.jpg"
    Image.fromarray(np.random.RandomState(1).randint(0, 255, (200, 200, 3), np.uint8)).save(full)
    path.write_bytes(full.read_bytes()[:3000])
  elif kind == "random":
    path.write_bytes(np.random.RandomState(2).bytes(5000))
  elif kind == "empty":
    path.write_bytes(b"")
  elif kind == "directory":
    path.mkdir()
  elif kind == "text":
    path.write_text("this is not an image\n")
  elif kind == "tiny":
    Image.fromarray(_photo(20, 30)).save(path)
  with pytest.raises(ImageLoadError) as info:
    image_io.load_image(path)
  message = str(info.value)
  assert str(path) in message and "\n" not in message
  expected = {"truncated": "truncated", "empty": "empty", "directory": "directory",
              "tiny": "30x20", "missing": "No such file"}
  if kind in expected:
    assert expected[kind] in message


def test_input_file_is_never_modified(tmp_path):
  exif = Image.Exif()
  exif[0x0112] = 8
  path = _save(Image.fromarray(_photo()).convert("CMYK"), tmp_path / "keep.jpg", exif=exif)
  before = hashlib.sha256(open(path, "rb").read()).hexdigest()
  mtime = os.stat(path).st_mtime_ns
  image_io.load_image(path)
  assert hashlib.sha256(open(path, "rb").read()).hexdigest() == before
  assert os.stat(path).st_mtime_ns == mtime


def test_downscale_for_detection_maps_points_back():
  big = np.zeros((3000, 2000, 3), np.uint8)
  big[1200:1240, 700:740] = 255  # A bright 40x40 square centred at (719.5, 1219.5).
  small, scale = image_io.downscale_for_detection(big, max_side=1000)
  assert max(small.shape[:2]) == 1000 and scale == pytest.approx(1 / 3)
  ys, xs = np.nonzero(small[..., 0] > 127)
  centre_small = np.array([xs.mean(), ys.mean()])
  back = image_io.to_original_coords(centre_small, scale)
  assert np.allclose(back, [719.5, 1219.5], atol=1.5)
  same, scale_one = image_io.downscale_for_detection(small, max_side=1000)
  assert same is small and scale_one == 1.0


def test_ensure_rgb_uint8_rejects_bad_arrays():
  with pytest.raises(ValueError, match="uint8"):
    image_io.ensure_rgb_uint8(np.zeros((8, 8, 3), np.float32))
  with pytest.raises(ValueError, match=r"\[H, W, 3\]"):
    image_io.ensure_rgb_uint8(np.zeros((8, 8), np.uint8))
