"""dlib's ResNet-29 face-descriptor network as a differentiable Keras 3 model.

Architecture (dlib ``dnn_face_recognition_ex.cpp`` ``anet_type``), input side
first, spatial sizes for the 150x150 input:

* ``(rgb - [122.782, 117.001, 104.298]) / 256``;
* conv 7x7/2 (32, no padding) -> affine -> relu -> max-pool 3x3/2: 72 -> 35;
* 3 x res32; res64-down + 3 x res64 (17); res128-down + 2 x res128 (8);
  res256-down + 2 x res256 (4); res256-down "out" (2);
* global mean -> fc 256 -> 128 (no bias).

Each residual block is conv3x3 -> affine -> relu -> conv3x3 -> affine, added to
the shortcut, then relu. dlib pads stride-1 convolutions by 1 and stride-2 ones
not at all. In a "down" block the first conv has stride 2 and the shortcut is
a 2x2/2 average pool; dlib's ``add_prev`` adds tensors of different sizes by
treating missing entries as zeros, so the shortcut's extra channels are zero
and the main branch (3x3 from 8x8, 1x1 from 4x4) is zero-padded at the
bottom/right. "affine" is dlib's per-channel ``x * weights + biases`` (a frozen
batch-norm).

The network is handed its weights as named arrays (:func:`frozen_dlib_resnet`);
reading, converting and locating them is the job of :mod:`facegcn_tf.assets`.
"""

from typing import Mapping

import keras
import numpy as np

# Residual stages of dlib's anet_type, input side first: (name, filters, down).
RESIDUAL_BLOCKS = (
    ("conv32_1", 32, False), ("conv32_2", 32, False), ("conv32_3", 32, False),
    ("conv64_down", 64, True), ("conv64_1", 64, False), ("conv64_2", 64, False),
    ("conv64_3", 64, False),
    ("conv128_down", 128, True), ("conv128_1", 128, False), ("conv128_2", 128, False),
    ("conv256_down", 256, True), ("conv256_1", 256, False), ("conv256_2", 256, False),
    ("conv256_down_out", 256, True),
)
STEM = "conv32_down"          # con 7x7/2 -> affine -> relu -> max_pool 3x3/2
INPUT_SIZE = 150              # input_rgb_image_sized<150>
EMBEDDING_DIM = 128
INPUT_MEAN_RGB = (122.782, 117.001, 104.298)   # dlib input_rgb_image avg_red/green/blue
INPUT_DIVISOR = 256.0


@keras.saving.register_keras_serializable(package="facegcn_tf")
class ChannelAffine(keras.layers.Layer):
  """dlib's ``affine_`` layer in CONV_MODE: ``y = x * weights + biases`` per channel.

  Input/output: [B, H, W, C].
  """

  def build(self, input_shape):
    channels = input_shape[-1]
    self.weights_ = self.add_weight(name="weights", shape=(channels,), initializer="ones")
    self.biases = self.add_weight(name="biases", shape=(channels,), initializer="zeros")

  def call(self, x):
    return x * self.weights_ + self.biases


@keras.saving.register_keras_serializable(package="facegcn_tf")
class ZeroPadAdd(keras.layers.Layer):
  """dlib's ``add_prev``: sum of two [B, H, W, C] tensors of possibly different sizes.

  The output has the larger of each size; each input is zero-padded at the
  bottom, right and last channels before adding (dlib aligns tensors at index
  0). Inputs: [shortcut [B, H1, W1, C1], main [B, H2, W2, C2]] with static
  H, W, C. Output: [B, max(H), max(W), max(C)].
  """

  def call(self, inputs):
    a, b = inputs
    target = [max(int(a.shape[i]), int(b.shape[i])) for i in (1, 2, 3)]

    def pad(x):
      extra = [t - int(x.shape[i + 1]) for i, t in enumerate(target)]
      if not any(extra):
        return x
      return keras.ops.pad(x, [[0, 0], [0, extra[0]], [0, extra[1]], [0, extra[2]]])

    return pad(a) + pad(b)

  def compute_output_shape(self, input_shapes):
    a, b = input_shapes
    return (a[0],) + tuple(max(a[i], b[i]) for i in (1, 2, 3))


def _conv_affine(x, name: str, filters: int, size: int, stride: int):
  x = keras.layers.Conv2D(
      filters, size, strides=stride, padding="valid" if stride != 1 else "same",
      name=f"{name}_conv")(x)
  return ChannelAffine(name=f"{name}_scale")(x)


def _residual(x, name: str, filters: int, down: bool):
  y = _conv_affine(x, f"{name}_conv1", filters, 3, 2 if down else 1)
  y = keras.layers.ReLU(name=f"{name}_relu1")(y)
  y = _conv_affine(y, f"{name}_conv2", filters, 3, 1)
  shortcut = keras.layers.AveragePooling2D(2, 2, name=f"{name}_pool")(x) if down else x
  return keras.layers.ReLU(name=f"{name}_relu")(ZeroPadAdd(name=f"{name}_add")([shortcut, y]))


def build_dlib_resnet(name: str = "dlib_resnet") -> keras.Model:
  """Builds the network with untrained weights.

  Returns:
    A Keras model: [B, 150, 150, 3] float RGB in [0, 255] -> [B, 128] descriptor.
  """
  inputs = keras.Input((INPUT_SIZE, INPUT_SIZE, 3), name="rgb150")
  mean = np.asarray(INPUT_MEAN_RGB, np.float32)
  x = (inputs - mean) / INPUT_DIVISOR
  x = _conv_affine(x, STEM, 32, 7, 2)
  x = keras.layers.ReLU(name=f"{STEM}_relu")(x)
  x = keras.layers.MaxPooling2D(3, 2, name=f"{STEM}_pool")(x)
  for block, filters, down in RESIDUAL_BLOCKS:
    x = _residual(x, block, filters, down)
  x = keras.layers.GlobalAveragePooling2D(name="global_mean")(x)
  outputs = keras.layers.Dense(EMBEDDING_DIM, use_bias=False, name="fc")(x)
  return keras.Model(inputs, outputs, name=name)


def _layer_assignments(model: keras.Model) -> list:
  """(variable, weight name) pairs for every trainable array of the network."""
  pairs = []
  prefixes = [STEM] + [
      f"{b}/{c}" for b, _, _ in RESIDUAL_BLOCKS for c in ("conv1", "conv2")]
  for prefix in prefixes:
    layer_base = prefix.replace("/", "_")
    conv = model.get_layer(f"{layer_base}_conv")
    scale = model.get_layer(f"{layer_base}_scale")
    pairs += [(conv.kernel, f"{prefix}/conv/filters"), (conv.bias, f"{prefix}/conv/bias"),
              (scale.weights_, f"{prefix}/scale/weights"),
              (scale.biases, f"{prefix}/scale/biases")]
  pairs.append((model.get_layer("fc").kernel, "fc"))
  return pairs


def set_weights(model: keras.Model, weights: Mapping[str, np.ndarray]) -> None:
  """Assigns named arrays (names as in :func:`_layer_assignments`) to the model's variables.

  Raises:
    ValueError: a name is missing, left over, or has the wrong shape.
  """
  pairs = _layer_assignments(model)
  names = {n for _, n in pairs}
  missing = sorted(names - set(weights))
  extra = sorted(set(weights) - names)
  if missing or extra:
    raise ValueError(f"the weights do not fit the network: missing {missing[:3]}, "
                     f"unexpected {extra[:3]}")
  for variable, name in pairs:
    value = np.asarray(weights[name], np.float32)
    if tuple(variable.shape) != value.shape:
      raise ValueError(f"{name}: shape {value.shape}, network expects {tuple(variable.shape)}")
    variable.assign(value)


def frozen_dlib_resnet(weights: Mapping[str, np.ndarray]) -> keras.Model:
  """Builds the network and assigns ``weights``; the model is frozen.

  Args:
    weights: named float32 arrays, e.g. from
      ``facegcn_tf.assets.identity_weights.load_weights``.

  Returns:
    The model, [B, 150, 150, 3] RGB in [0, 255] -> [B, 128], ``trainable=False``.

  Raises:
    ValueError: the arrays do not fit the network.
  """
  model = build_dlib_resnet()
  set_weights(model, weights)
  model.trainable = False
  return model
