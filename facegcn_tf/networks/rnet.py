"""Deep3DFace's R-Net coefficient regressor in Keras 3 (paper_spec §2.1).

ResNet-50 v1 backbone, global average pooling (= ``pool5``, [B, 2048]) and
one linear head per coefficient group — id, exp, tex, angles (3), gamma (27),
trans-xy (2), trans-z (1) — concatenated in that order, which is the
Deep3DFace coefficient order (``CoeffLayout``). Deep3DFace writes the heads as
1x1 convolutions on the [B, 1, 1, 2048] pool; a Dense layer on the pooled
vector is the same map. All heads start at ZERO (kernel and bias), so an
untrained R-Net predicts the mean face, frontal, ambient light, at the origin.

Input convention of this model: aligned crops, float **RGB 0..255**,
[B, S, S, 3]. The first layer turns them into what the Keras ResNet-50 expects
(Keras's "caffe" preprocessing: BGR, minus the ImageNet channel means), so
Keras ImageNet weights given as a LOCAL file (``backbone_weights``) fit.
Deep3DFace's TF-slim R-Net instead takes BGR 0..255 without mean subtraction;
its released frozen graph is wrapped by :mod:`rnet_pb`.

The backbone starts from random weights by default, or from a local Keras
ResNet-50 weights file; Keras's ``weights="imagenet"`` (fetched from the
internet at build time) is refused.
"""

import pathlib
from typing import Optional, Union

import keras

from facegcn_tf.errors import AssetNotFoundError
from facegcn_tf.morphable.model import CoeffLayout

# Keras's "caffe" ImageNet means, in BGR order.
IMAGENET_BGR_MEAN = (103.939, 116.779, 123.68)
POOLED_DIM = 2048
MIN_INPUT_SIZE = 32


@keras.saving.register_keras_serializable(package="facegcn_tf")
class RgbToCaffe(keras.layers.Layer):
  """[B, H, W, 3] RGB 0..255 -> BGR minus the ImageNet means (no weights)."""

  def call(self, images):
    bgr = images[..., ::-1]
    return bgr - keras.ops.convert_to_tensor(IMAGENET_BGR_MEAN, dtype=bgr.dtype)


def head_sizes(layout: CoeffLayout) -> dict:
  """Head name -> output size, in Deep3DFace's order (trans split into xy and z)."""
  return {"id": layout.n_id, "exp": layout.n_exp, "tex": layout.n_tex,
          "angles": layout.n_angles, "gamma": layout.n_gamma, "trans_xy": 2, "trans_z": 1}


def build_rnet(layout: CoeffLayout, input_size: int = 224,
               backbone_weights: Optional[Union[str, pathlib.Path]] = None,
               name: str = "rnet") -> keras.Model:
  """Builds the R-Net.

  Under a ``mixed_float16`` global policy the backbone computes in float16;
  the heads and both outputs stay float32.

  Args:
    layout: coefficient layout of the face model (its ``total`` is the output size).
    input_size: side S of the square input crops (>= 32; Deep3DFace: 224).
    backbone_weights: None (random initialisation) or a LOCAL Keras ResNet-50
      "notop" weights file (``.h5``) to start the backbone from.
    name: model name.

  Returns:
    ``keras.Model``: images [B, S, S, 3] float32 RGB 0..255 ->
    ``(coeffs [B, layout.total], pooled [B, 2048])``.

  Raises:
    ValueError: bad layout or input size, or ``backbone_weights="imagenet"``.
    AssetNotFoundError: ``backbone_weights`` names a missing file.
  """
  if not isinstance(layout, CoeffLayout):
    raise ValueError(f"layout must be a CoeffLayout, got {type(layout).__name__}")
  if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size < MIN_INPUT_SIZE:
    raise ValueError(f"input_size must be an int >= {MIN_INPUT_SIZE}, got {input_size!r}")
  if backbone_weights is not None:
    if str(backbone_weights) == "imagenet":
      raise ValueError("backbone_weights='imagenet' makes Keras fetch the weights from the "
                       "internet; pass the path of a local ResNet-50 notop .h5 file instead "
                       "(or None)")
    if not pathlib.Path(backbone_weights).expanduser().is_file():
      raise AssetNotFoundError(f"ResNet-50 backbone weights '{backbone_weights}' not found")
    backbone_weights = str(pathlib.Path(backbone_weights).expanduser())

  images = keras.Input((input_size, input_size, 3), dtype="float32", name="images")
  backbone = keras.applications.ResNet50(
      include_top=False, weights=backbone_weights, input_shape=(input_size, input_size, 3),
      pooling="avg", name="resnet50")
  features = backbone(RgbToCaffe(name="rgb_to_caffe")(images))
  pooled = keras.layers.Activation("linear", dtype="float32", name="pooled")(features)
  heads = [
      keras.layers.Dense(size, kernel_initializer="zeros", bias_initializer="zeros",
                         dtype="float32", name=f"head_{part}")(pooled)
      for part, size in head_sizes(layout).items() if size > 0
  ]
  coeffs = keras.layers.Concatenate(axis=-1, dtype="float32", name="coeffs")(heads)
  return keras.Model(images, [coeffs, pooled], name=name)



def load_rnet(weights_path: Union[str, pathlib.Path], layout: CoeffLayout,
              input_size: int = 224) -> keras.Model:
  """Builds the R-Net and loads trained weights (``rnet.weights.h5`` of the R-Net trainer).

  Args:
    weights_path: the ``.weights.h5`` file.
    layout: coefficient layout the weights were trained for.
    input_size: side of the input crops the weights were trained for.

  Raises:
    AssetNotFoundError: the weights file is missing.
    ValueError: the file does not fit this layout/input size.
  """
  path = pathlib.Path(weights_path).expanduser()
  if not path.is_file():
    raise AssetNotFoundError(f"R-Net weights '{path}' not found (the R-Net trainer writes "
                             "them to <output_dir>/rnet.weights.h5)")
  model = build_rnet(layout, input_size)
  try:
    model.load_weights(str(path))
  except (ValueError, KeyError) as e:
    raise ValueError(f"R-Net weights '{path}' do not fit layout {layout.sizes} at input size "
                     f"{input_size}: {str(e).splitlines()[0][:200]}") from None
  return model
