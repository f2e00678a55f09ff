"""Identity features of aligned face crops: the interface the rest of the project uses.

Two frozen networks stand behind one call, ``encoder(images) -> [B, D]``, where
``images`` are Deep3DFace-aligned crops, float32 RGB in [0, 255],
[B, 224, 224, 3]; gradients flow back to the pixels:

* ``kind="dlib"`` (:func:`dlib_encoder`; weights converted at setup time):
  dlib's ResNet-29 face descriptor, D = 128.
  dlib was trained on 150x150 "face chips" (``get_face_chip``, padding 0.25),
  which are tighter than the 224 aligned crop, so a square window of the crop
  is cut out and resized to 150 (``tf.image.crop_and_resize``, bilinear).
  The window follows from where the detector's 5 points lie in dlib's chip
  (:data:`DLIB_CHIP_POINTS5`, measured with dlib itself on the example photos)
  and from the alignment template and fit (:func:`dlib_chip_window`; the
  window must be computed with the same fit as the crops: the project aligns
  with the 2-D scale+translation fit, Deep3DFace with POS). For Deep3DFace's
  template and POS it is side 0.793 of the crop, centre (0.498, 0.553). Checks on the
  example photos (astronaut, Grace Hopper and their mirror images, MTCNN
  points, Deep3DFace alignment): (a) mapping dlib's own chip rectangle into
  the crop gives side 0.794 +- 0.017, centre y 0.540 +- 0.015 (68-point dlib
  points); (b) scanning side/centre for the smallest distance between this
  encoder's descriptor and dlib's descriptor of its own chip gives side
  0.78-0.80, centre y 0.55 (mean distance 0.14; the rest is mostly the
  in-plane roll that dlib removes and Deep3DFace alignment keeps). For the
  project's ICT template it is side 0.814, centre y 0.547 with POS, and side
  0.838, centre y 0.470 with the project's default 2-D fit (the face sits
  higher in those crops).
* ``kind="facenet"`` (:func:`facenet_encoder`; user-supplied file): the
  paper's FaceNet, D = 1792; see :mod:`facenet`.

The encoders are given their weights (arrays or the graph file's path);
:func:`facegcn_tf.assets.loaders.load_identity_encoder` locates and loads them.

Distances: :func:`facegcn_tf.metrics.identity_distance` is dlib's L2 convention (same person
below :data:`SAME_PERSON_THRESHOLD` = 0.6); :func:`cosine_distance` is the
paper's identity loss, 1 - cos.
"""

import dataclasses
import pathlib
from typing import Callable, Mapping, Optional, Union

import numpy as np
import tensorflow as tf

from facegcn_tf.data import alignment
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


# Deep3DFace's 5-point alignment template (BFM09 mean shape, decimetres; eye
# centres, nose tip, mouth corners, image-left first; y up).
D3D_TEMPLATE5 = np.array([
    [-0.31148657, 0.29036078, 0.13377953],
    [0.30979887, 0.28972036, 0.13179526],
    [0.0032535, -0.04617932, 0.55244243],
    [-0.25216928, -0.38133916, 0.22405732],
    [0.2484662, -0.38128236, 0.22235769],
])
# Where MTCNN's 5 points (the project's detector) lie in dlib's 150x150 chip
# (pixel centres, y down): measured on the example photos and their mirror
# images with dlib's own chips (get_face_chip_details, 5- and 68-point shape
# predictors), averaged and made left-right symmetric (spread 1-3.5 px).
DLIB_CHIP_POINTS5 = np.array([
    [46.8, 44.5], [102.2, 44.5], [74.5, 76.8], [48.8, 97.0], [100.2, 97.0]])
_CROP_SCALE = 102.0           # Deep3DFace: aligned pixels per template unit


def dlib_chip_window(template5: Optional[np.ndarray] = None,
                     fit_method: str = "scale_translation") -> CropWindow:
  """The window of an aligned crop that matches dlib's 150x150 face chip.

  A face whose 5 points sit where dlib's chip puts them
  (:data:`DLIB_CHIP_POINTS5`) is aligned the way the crops were (``fit_method``
  fit to ``template5``, 102 px per template unit, template origin to the crop
  centre); the chip's square then lands on the returned window.

  Args:
    template5: [5, 3] alignment template of the crops (eye centres, nose tip,
      mouth corners; image-left first; y up), e.g. the project's morphable
      model's (``data.alignment.five_point_template``); None = Deep3DFace's
      :data:`D3D_TEMPLATE5`.
    fit_method: the fit the crops were aligned with, a key of
      ``data.alignment.FIT_METHODS`` ("scale_translation", the project's
      default, or "pos", Deep3DFace's).

  Returns:
    The CropWindow, in fractions of the aligned crop's side.

  Raises:
    ValueError: not a finite [5, 3] template, or a degenerate one.
  """
  t = D3D_TEMPLATE5 if template5 is None else np.asarray(template5, np.float64)
  if t.shape != (5, 3) or not np.isfinite(t).all():
    raise ValueError(f"alignment template must be a finite [5, 3] array, got shape {t.shape}")
  chip = identity_dlib.INPUT_SIZE
  up = np.stack([DLIB_CHIP_POINTS5[:, 0], -DLIB_CHIP_POINTS5[:, 1]], axis=1)
  if fit_method not in alignment.FIT_METHODS:
    raise ValueError(f"unknown fit_method '{fit_method}'; choose from {sorted(alignment.FIT_METHODS)}")
  scale, shift = alignment.FIT_METHODS[fit_method](up, t)
  if not np.isfinite(scale) or scale < 1e-6 or (t[0, 0] >= t[1, 0]):
    raise ValueError("degenerate or mirrored alignment template")
  k = _CROP_SCALE / scale            # crop pixels per chip pixel
  center = (chip - 1) / 2.0
  half = ALIGNED_SIZE / 2.0
  return CropWindow(side=float(k * chip / ALIGNED_SIZE),
                    center_x=float((half + k * (center - shift[0])) / ALIGNED_SIZE),
                    center_y=float((half + k * (center + shift[1])) / ALIGNED_SIZE))


DLIB_CHIP_WINDOW = dlib_chip_window()  # Deep3DFace template, 2-D fit: side 0.804, centre (0.500, 0.534)


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

  Build it with :func:`dlib_encoder` or :func:`facenet_encoder`.
  """

  def __init__(self, kind: str, features: Callable[[tf.Tensor], tf.Tensor],
               feature_dim: Optional[int], network=None,
               window: Optional[CropWindow] = None):
    self.kind = kind
    self._features = features
    self._feature_dim = feature_dim
    self.network = network          # the Keras model (dlib) or None
    self.window = window            # the chip window (dlib) or None (whole crop)

  @property
  def feature_dim(self) -> Optional[int]:
    """D: 128 for dlib, 1792 for FaceNet."""
    return self._feature_dim

  def __call__(self, images) -> tf.Tensor:
    """images [B, H, W, 3] float32 RGB in [0, 255] (224x224 aligned crops) -> [B, D]."""
    return self._features(_check_images(images))


def dlib_encoder(weights: Mapping[str, np.ndarray],
                 template5: Optional[np.ndarray] = None,
                 fit_method: str = "scale_translation") -> IdentityEncoder:
  """dlib's face descriptor on the chip window of aligned crops.

  Args:
    weights: the network's named float32 arrays (see
      :func:`identity_dlib.set_weights`).
    template5: the [5, 3] template the crops were aligned to, which places the
      dlib chip window (see :func:`dlib_chip_window`); None = Deep3DFace's template.
    fit_method: the alignment fit the crops were made with
      (``data.alignment.FIT_METHODS``; the project aligns with "scale_translation").

  Returns:
    The encoder, [B, H, W, 3] RGB 0..255 -> [B, 128].

  Raises:
    ValueError: the arrays do not fit, or a bad template / fit method.
  """
  window = dlib_chip_window(template5, fit_method)
  model = identity_dlib.frozen_dlib_resnet(weights)

  def features(images):
    chips = crop_window(images, window, identity_dlib.INPUT_SIZE)
    return model(chips, training=False)

  return IdentityEncoder("dlib", features, identity_dlib.EMBEDDING_DIM, network=model,
                         window=window)


def facenet_encoder(graph_path: PathLike) -> IdentityEncoder:
  """The paper's FaceNet on the whole aligned crop.

  Args:
    graph_path: the frozen ``.pb`` file.

  Returns:
    The encoder, [B, H, W, 3] RGB 0..255 -> [B, D] (D = 1792 for the real graph).

  Raises:
    AssetNotFoundError: the file does not exist.
    ValueError: not a FaceNet GraphDef.
  """
  net = facenet.FaceNetFeatures(graph_path)
  return IdentityEncoder("facenet", net, net.feature_dim)


def cosine_distance(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
  """1 - cos(a, b): [..., D] x [..., D] -> [...] (the paper's identity loss per pair)."""
  a = tf.math.l2_normalize(tf.cast(tf.convert_to_tensor(a), tf.float32), axis=-1)
  b = tf.math.l2_normalize(tf.cast(tf.convert_to_tensor(b), tf.float32), axis=-1)
  return 1.0 - tf.reduce_sum(a * b, axis=-1)
