"""The bundled example photos: public-domain pictures shipped inside installed wheels.

* ``astronaut``: Eileen Collins, scikit-image's ``data.astronaut()``, 512x512.
* ``camera``: the cameraman, scikit-image's ``data.camera()``, 512x512 grey.
* ``grace_hopper``: matplotlib's sample ``grace_hopper.jpg``, 512x600.

They are the examples setup writes, the photos the evaluations score and the
test fixtures; nothing is downloaded.
"""

import os
import pathlib
import shutil
from typing import Dict, List, Optional, Sequence, Union

import numpy as np

NAMES = ("astronaut", "camera", "grace_hopper")
PORTRAITS = ("astronaut", "grace_hopper")   # the colour portraits the evaluations score
FILE_NAMES = {"astronaut": "astronaut.png", "camera": "camera.png",
              "grace_hopper": "grace_hopper.jpg"}


def _check_names(names: Optional[Sequence[str]]) -> List[str]:
  names = list(NAMES if names is None else names)
  unknown = [n for n in names if n not in NAMES]
  if unknown:
    raise ValueError(f"unknown example photos {unknown}; the bundled ones are {list(NAMES)}")
  return names


def _grace_hopper_path() -> str:
  import matplotlib.cbook  # pylint: disable=import-outside-toplevel
  return str(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


def _skimage(name: str) -> np.ndarray:
  import skimage.data  # pylint: disable=import-outside-toplevel
  return getattr(skimage.data, name)()


def example_photos(names: Optional[Sequence[str]] = None) -> Dict[str, np.ndarray]:
  """The example photos as ``{name: [H, W, 3] uint8 RGB}``, in the order of ``names``.

  Args:
    names: some of ``NAMES`` (default: all). The grey ``camera`` is given three
      equal channels.

  Raises:
    ValueError: an unknown name.
  """
  import matplotlib.image  # pylint: disable=import-outside-toplevel
  photos = {}
  for name in _check_names(names):
    if name == "grace_hopper":
      with open(_grace_hopper_path(), "rb") as f:
        image = np.asarray(matplotlib.image.imread(f, format="jpg"))
    else:
      image = _skimage(name)
    if image.ndim == 2:
      image = np.repeat(image[..., np.newaxis], 3, axis=-1)
    photos[name] = np.ascontiguousarray(image, dtype=np.uint8)
  return photos


def write_example_photos(folder: Union[str, os.PathLike],
                         names: Optional[Sequence[str]] = None) -> List[pathlib.Path]:
  """Writes the example photos as files, the way a user would have them.

  ``astronaut.png`` and ``camera.png`` are written from scikit-image's arrays
  (``camera`` stays grey); ``grace_hopper.jpg`` is matplotlib's file copied
  byte for byte. Files already there are kept.

  Args:
    folder: created if missing.
    names: some of ``NAMES`` (default: all).

  Returns:
    The files' paths, in the order of ``names``.
  """
  import skimage.io  # pylint: disable=import-outside-toplevel
  folder = pathlib.Path(folder)
  folder.mkdir(parents=True, exist_ok=True)
  paths = []
  for name in _check_names(names):
    path = folder / FILE_NAMES[name]
    if not path.exists():
      if name == "grace_hopper":
        shutil.copyfile(_grace_hopper_path(), path)
      else:
        skimage.io.imsave(str(path), _skimage(name), check_contrast=False)
    paths.append(path)
  return paths
