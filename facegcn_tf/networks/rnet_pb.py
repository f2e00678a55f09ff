"""Deep3DFace's released R-Net (``FaceReconModel.pb``, BFM09, user-supplied) as a function.

The frozen graph (microsoft/Deep3DFaceReconstruction, Google-Drive link in its
README; the GCN code expects it as ``data/FaceReconModel.pb``) feeds
``input_imgs:0`` with aligned 224x224 crops in **BGR, 0..255** and gives
``coeff:0`` [B, 257] (BFM layout: id 80, exp 64, tex 80, angles 3, gamma 27,
trans 3) and the ResNet-50 feature ``resnet_v1_50/pool5:0`` [B, 1, 1, 2048]
(paper_spec §2.1 and §1 step 1).

:class:`FrozenRNet` takes the project's convention, RGB 0..255, swaps the
channels to BGR itself, resizes other sizes to 224 (bilinear, as the GCN code
does) and returns ``(coeffs [B, 257], pooled [B, 2048])`` like the Keras
R-Net of :mod:`rnet`. It is given the file's path;
:func:`facegcn_tf.assets.loaders.locate_rnet_pb` finds it on the asset search path.
"""

import pathlib
from typing import Tuple, Union

import tensorflow as tf

from facegcn_tf.morphable.model import BFM_LAYOUT
from facegcn_tf.networks import frozen_graph

INPUT_TENSOR = "input_imgs:0"
COEFF_TENSOR = "coeff:0"
POOL_TENSOR = "resnet_v1_50/pool5:0"
INPUT_SIZE = 224

PathLike = Union[str, pathlib.Path]


def _check_images(images) -> tf.Tensor:
  x = tf.convert_to_tensor(images)
  if not (x.dtype.is_floating or x.dtype.is_integer):
    raise ValueError(f"R-Net: images must be numeric, got {x.dtype.name}")
  x = tf.cast(x, tf.float32)
  if x.shape.rank is not None and (x.shape.rank != 4 or x.shape[-1] not in (None, 3)):
    raise ValueError(f"R-Net: expected images [B, H, W, 3] (RGB 0..255), got shape {x.shape}")
  return x


class FrozenRNet:
  """Deep3DFace's frozen R-Net: aligned crops RGB 0..255 -> (coeffs [B, 257], pooled [B, 2048]).

  Args:
    path: the ``.pb`` file.

  Raises:
    AssetNotFoundError: the file does not exist.
    ValueError: the file is not a GraphDef with the three tensors.
  """

  layout = BFM_LAYOUT

  def __init__(self, path: PathLike):
    self.path = pathlib.Path(path).expanduser()
    self._fn = frozen_graph.load_frozen_graph(
        self.path, [INPUT_TENSOR], [COEFF_TENSOR, POOL_TENSOR], "a Deep3DFace R-Net graph")
    coeff_shape, pool_shape = (t.shape for t in self._fn.structured_outputs)
    self.coeff_dim = coeff_shape[-1] if coeff_shape.rank else None
    dims = pool_shape[1:] if pool_shape.rank is not None else None
    self.feature_dim = (int(dims.num_elements())
                        if dims is not None and dims.is_fully_defined() else None)

  def __call__(self, images) -> Tuple[tf.Tensor, tf.Tensor]:
    """images [B, H, W, 3] float RGB 0..255 (224 aligned crops) -> (coeffs, pooled features).

    Other sizes are resized to 224 (bilinear) first.
    """
    x = _check_images(images)
    if x.shape[1] != INPUT_SIZE or x.shape[2] != INPUT_SIZE:
      x = tf.image.resize(x, (INPUT_SIZE, INPUT_SIZE), method="bilinear")
    bgr = tf.reverse(x, axis=[-1])
    coeffs, pooled = self._fn(bgr)
    return coeffs, tf.reshape(pooled, [tf.shape(pooled)[0], -1])
