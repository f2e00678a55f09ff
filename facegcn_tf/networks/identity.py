"""Identity features of aligned face crops: the interface the rest of the project uses.

Two frozen networks stand behind one call, ``encoder(images) -> [B, D]``, where
``images`` are Deep3DFace-aligned crops, float32 RGB in [0, 255],
[B, 224, 224, 3]; gradients flow back to the pixels:

* ``kind="dlib"`` (default; shipped): dlib's ResNet-29 face descriptor, D = 128.
  dlib was trained on 150x150 "face chips" (dlib ``get_face_chip``, padding
  0.25), which are tighter than the 224 aligned crop. The window that matches
  them, :data:`DLIB_CHIP_WINDOW`, was measured on the example photos
  (astronaut, Grace Hopper and their mirror images): mapping dlib's own chip
  rectangle (5- and 68-point shape predictors) into the Deep3DFace crop gives
  a square of side 0.794 +- 0.017 of the crop, centred at x = 0.504, y = 0.540
  (+- 0.015); scanning side/centre for the smallest distance between the
  encoder's descriptor and dlib's descriptor of its own chip gives the same
  optimum (side 0.79, centre y 0.54; mean distance 0.15, the remainder being
  the in-plane roll that dlib removes and Deep3DFace alignment does not).
  The window is cut with ``tf.image.crop_and_resize`` (bilinear).
* ``kind="facenet"`` (user-supplied file): the paper's FaceNet, D = 1792; see
  :mod:`facenet`.

Distances: :func:`identity_distance` is dlib's L2 convention (same person
below :data:`SAME_PERSON_THRESHOLD` = 0.6); :func:`cosine_distance` is the
paper's identity loss, 1 - cos.
"""

import dataclasses
import pathlib
from typing import Callable, Optional, Union

import tensorflow as tf

from facegcn_tf.networks import facenet
from facegcn_tf.networks import identity_dlib

SAME_PERSON_THRESHOLD = 0.6
ALIGNED_SIZE = 224
KINDS = ("dlib", "facenet")

PathLike = Union[str, pathlib.Path]


@dataclasses.dataclass(frozen=True)
class CropWindow:
  """A square window of an aligned crop, in fractions of the crop's height/width."""
  side: float
  center_y: float
  center_x: float = 0.5


DLIB_CHIP_WINDOW = CropWindow(side=0.79, center_y=0.54)


def crop_window(images: tf.Tensor, window: CropWindow, out_size: int) -> tf.Tensor:
  """Cuts ``window`` out of each image and resizes it (bilinear, differentiable).

  Pixel centres follow the half-pixel convention, so the output samples the
  continuous square [c - side/2, c + side/2] evenly.

  Args:
    images: [B, H, W, C] float32.
    window: the window in fractions of H and W.
    out_size: output side S.

  Returns:
    [B, S, S, C] float32.
  """
  shape = tf.shape(images)
  h = tf.cast(shape[1], tf.float32)
  w = tf.cast(shape[2], tf.float32)

  def span(center, size):
    length = window.side * size
    start = center * size - length / 2
    first = start + 0.5 * length / out_size - 0.5
    last = start + (out_size - 0.5) * length / out_size - 0.5
    return first / (size - 1), last / (size - 1)

  y1, y2 = span(window.center_y, h)
  x1, x2 = span(window.center_x, w)
  box = tf.stack([y1, x1, y2, x2])
  boxes = tf.tile(box[tf.newaxis], [shape[0], 1])
  return tf.image.crop_and_resize(images, boxes, tf.range(shape[0]), (out_size, out_size))


def _check_images(images) -> tf.Tensor:
  x = tf.convert_to_tensor(images)
  if x.dtype != tf.float32:
    if not (x.dtype.is_integer or x.dtype.is_floating):
      raise ValueError(f"identity encoder: images must be numeric, got {x.dtype.name}")
    x = tf.cast(x, tf.float32)
  if x.shape.rank is not None and (x.shape.rank != 4 or x.shape[-1] not in (None, 3)):
    raise ValueError(f"identity encoder: expected images [B, H, W, 3], got shape {x.shape}")
  for d in x.shape[1:3] if x.shape.rank == 4 else ():
    if d is not None and d < 32:
      raise ValueError(f"identity encoder: image side {d} is too small (aligned crops are "
                       f"{ALIGNED_SIZE}x{ALIGNED_SIZE})")
  return x


class IdentityEncoder:
  """A frozen identity network: aligned crops [B, H, W, 3] (RGB 0..255) -> [B, D].

  Build it with :func:`build_identity_encoder`.
  """

  def __init__(self, kind: str, features: Callable[[tf.Tensor], tf.Tensor],
               feature_dim: Optional[int], network=None):
    self.kind = kind
    self._features = features
    self._feature_dim = feature_dim
    self.network = network          # the Keras model (dlib) or None

  @property
  def feature_dim(self) -> Optional[int]:
    """D: 128 for dlib, 1792 for FaceNet."""
    return self._feature_dim

  def __call__(self, images) -> tf.Tensor:
    """images [B, H, W, 3] float32 RGB in [0, 255] (224x224 aligned crops) -> [B, D]."""
    return self._features(_check_images(images))


def build_identity_encoder(kind: str = "dlib",
                           weights_path: Optional[PathLike] = None) -> IdentityEncoder:
  """Builds the identity encoder.

  Args:
    kind: "dlib" (shipped, converted at setup time) or "facenet" (user file).
    weights_path: dlib: a converted ``.npz`` (default: the asset search path);
      facenet: the frozen ``.pb`` or its directory (default:
      ``facenet/20170512-110547.pb`` on the asset search path).

  Raises:
    ValueError: unknown kind or a file that does not fit;
    AssetNotFoundError: the weights are missing (the message says how to get them).
  """
  if kind == "dlib":
    model = identity_dlib.load_dlib_resnet(weights_path)

    def features(images):
      chips = crop_window(images, DLIB_CHIP_WINDOW, identity_dlib.INPUT_SIZE)
      return model(chips, training=False)

    return IdentityEncoder(kind, features, identity_dlib.EMBEDDING_DIM, network=model)
  if kind == "facenet":
    net = facenet.FaceNetFeatures(weights_path)
    return IdentityEncoder(kind, net, net.feature_dim)
  raise ValueError(f"unknown identity encoder kind '{kind}'; choose from {KINDS}")


def identity_distance(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
  """L2 distance [..., D] x [..., D] -> [...] (dlib's convention; < 0.6 = same person).

  A 1e-12 inside the square root keeps the gradient finite at a == b.
  """
  a = tf.convert_to_tensor(a, tf.float32)
  b = tf.convert_to_tensor(b, tf.float32)
  return tf.sqrt(tf.reduce_sum(tf.square(a - b), axis=-1) + 1e-12)


def cosine_distance(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
  """1 - cos(a, b): [..., D] x [..., D] -> [...] (the paper's identity loss per pair)."""
  a = tf.math.l2_normalize(tf.convert_to_tensor(a, tf.float32), axis=-1)
  b = tf.math.l2_normalize(tf.convert_to_tensor(b, tf.float32), axis=-1)
  return 1.0 - tf.reduce_sum(a * b, axis=-1)
