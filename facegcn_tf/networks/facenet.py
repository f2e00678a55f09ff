"""User-supplied FaceNet (davidsandberg Inception-ResNet-v1 frozen graph) as a feature function.

The paper's code feeds ``input:0`` with the 224 aligned crop resized
(bilinear) to 160x160 and scaled by ``(x - 127.5) / 128``, feeds
``phase_train:0 = False``, and reads the 1792-d pre-bottleneck feature
``InceptionResnetV1/Logits/AvgPool_1a_8x8/AvgPool:0`` ([B, 1, 1, 1792]).
The weights (release ``20170512-110547``, MS-Celeb-1M; Deep3DFaceReconstruction
calls it ``FaceNetModel.pb``) are on no package registry, so the user supplies
the file; :func:`facegcn_tf.assets.loaders.locate_facenet_pb` finds it and
:class:`FaceNetFeatures` is given its path.
"""

import pathlib
from typing import Optional, Union

import tensorflow as tf

from facegcn_tf.networks import frozen_graph

INPUT_TENSOR = "input:0"
PHASE_TRAIN_TENSOR = "phase_train:0"
FEATURE_TENSOR = "InceptionResnetV1/Logits/AvgPool_1a_8x8/AvgPool:0"
INPUT_SIZE = 160
FEATURE_DIM = 1792          # for the real network; read from the graph when known

PathLike = Union[str, pathlib.Path]


def load_frozen_graph(path: PathLike):
  """Imports a frozen FaceNet GraphDef as a TF2 function.

  Args:
    path: the ``.pb`` file.

  Returns:
    A differentiable concrete function ``f(images, phase_train) -> features``:
    images [B, 160, 160, 3] float32 already scaled by ``(x - 127.5) / 128``,
    phase_train a scalar bool; features is the AvgPool tensor [B, 1, 1, D].

  Raises:
    ValueError: not a GraphDef, or it lacks one of the three tensors.
  """
  return frozen_graph.load_frozen_graph(
      path, [INPUT_TENSOR, PHASE_TRAIN_TENSOR], FEATURE_TENSOR,
      "a davidsandberg Inception-ResNet-v1 graph")


def facenet_preprocess(images: tf.Tensor) -> tf.Tensor:
  """Aligned crops [B, H, W, 3] RGB in [0, 255] -> [B, 160, 160, 3] in about [-1, 1]."""
  resized = tf.image.resize(images, (INPUT_SIZE, INPUT_SIZE), method="bilinear")
  return (resized - 127.5) / 128.0


class FaceNetFeatures:
  """``images [B, H, W, 3]`` (aligned crops, RGB 0..255) -> [B, D] AvgPool features.

  Args:
    path: the frozen ``.pb`` file.

  Raises:
    AssetNotFoundError: the file does not exist.
    ValueError: not a GraphDef, or it lacks one of the three tensors.
  """

  def __init__(self, path: PathLike):
    self.path = pathlib.Path(path).expanduser()
    self._fn = load_frozen_graph(self.path)
    shape = self._fn.structured_outputs.shape
    dims = shape[1:] if shape.rank is not None else None
    self._feature_dim = (int(tf.TensorShape(dims).num_elements())
                         if dims is not None and dims.is_fully_defined() else None)

  @property
  def feature_dim(self) -> Optional[int]:
    """D, read from the graph's static shape (None when the graph leaves it open)."""
    return self._feature_dim

  def __call__(self, images: tf.Tensor) -> tf.Tensor:
    x = facenet_preprocess(tf.convert_to_tensor(images, tf.float32))
    features = self._fn(x, tf.constant(False))
    return tf.reshape(features, [tf.shape(features)[0], -1])
