"""The bundled example photos: arrays and the files setup writes."""

import matplotlib.cbook
import numpy as np
import pytest

from facegcn_tf.data import examples
from facegcn_tf.data.image_io import load_image


def test_example_photos_are_rgb_uint8_in_the_order_asked():
  photos = examples.example_photos(["grace_hopper", "camera", "astronaut"])
  assert list(photos) == ["grace_hopper", "camera", "astronaut"]
  assert photos["astronaut"].shape == (512, 512, 3)
  assert photos["grace_hopper"].shape == (600, 512, 3)
  assert photos["camera"].shape == (512, 512, 3)
  assert all(p.dtype == np.uint8 for p in photos.values())
  grey = photos["camera"]
  np.testing.assert_array_equal(grey[..., 0], grey[..., 1])
  np.testing.assert_array_equal(grey[..., 0], grey[..., 2])
  assert list(examples.example_photos()) == list(examples.NAMES)
  assert list(examples.example_photos(examples.PORTRAITS)) == ["astronaut", "grace_hopper"]


def test_written_files_hold_the_same_pixels_and_are_kept(tmp_path):
  paths = examples.write_example_photos(tmp_path / "examples")
  assert [p.name for p in paths] == ["astronaut.png", "camera.png", "grace_hopper.jpg"]
  hopper = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
  assert paths[2].read_bytes() == open(hopper, "rb").read()
  photos = examples.example_photos()
  np.testing.assert_array_equal(load_image(paths[0]).rgb, photos["astronaut"])
  np.testing.assert_array_equal(load_image(paths[1]).rgb, photos["camera"])
  np.testing.assert_array_equal(load_image(paths[2]).rgb, photos["grace_hopper"])
  paths[0].write_bytes(b"user's own file")
  again = examples.write_example_photos(tmp_path / "examples", ["astronaut"])
  assert again == [paths[0]] and paths[0].read_bytes() == b"user's own file"


def test_unknown_name_is_rejected(tmp_path):
  with pytest.raises(ValueError, match="lena"):
    examples.example_photos(["lena"])
  with pytest.raises(ValueError, match="lena"):
    examples.write_example_photos(tmp_path, ["astronaut", "lena"])
  assert not (tmp_path / "astronaut.png").exists()
