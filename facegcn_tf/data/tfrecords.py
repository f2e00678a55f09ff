"""The ``tf.train.Example`` layout of one aligned face, and its parser.

Keys (all coordinates in aligned-crop pixels unless stated):

=====================  ============  =============================================
key                    type          content
=====================  ============  =============================================
image/png              bytes         aligned RGB crop, PNG, [S, S, 3]
masks/png              bytes         PNG [S, S, 4], channels :data:`MASK_CHANNELS`
                                     (0/255)
landmarks68            float [136]   iBUG-68 (x, y) pairs
points5                float [10]    detector's 5 (x, y) pairs
affine                 float [6]     2x3 affine, original photo -> aligned
source/path            bytes         photo path (relative to the input folder)
source/size            int64 [2]     (height, width) of the full-resolution photo
detection/box          float [4]     (x0, y0, x1, y1) in original-photo pixels
detection/confidence   float [1]     MTCNN score
features               float [D]     optional per-face vector (e.g. identity);
                                     only present when D > 0
=====================  ============  =============================================
"""

from typing import Dict, Optional

import cv2
import numpy as np
import tensorflow as tf

from facegcn_tf.data.alignment import ALIGNED_SIZE

MASK_CHANNELS = ("face_mask", "skin_mask", "region_mask", "valid_mask")


def _bytes(value: bytes) -> tf.train.Feature:
  return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _floats(values) -> tf.train.Feature:
  flat = np.asarray(values, np.float32).reshape(-1)
  return tf.train.Feature(float_list=tf.train.FloatList(value=flat))


def _ints(values) -> tf.train.Feature:
  flat = np.asarray(values, np.int64).reshape(-1)
  return tf.train.Feature(int64_list=tf.train.Int64List(value=flat))


def _png(image: np.ndarray) -> bytes:
  """Lossless PNG of [H, W], [H, W, 3] RGB or [H, W, 4] uint8 (OpenCV wants BGR order)."""
  if image.ndim == 3 and image.shape[-1] == 3:
    image = image[..., ::-1]
  elif image.ndim == 3 and image.shape[-1] == 4:
    image = image[..., [2, 1, 0, 3]]
  ok, buf = cv2.imencode(".png", np.ascontiguousarray(image))
  if not ok:
    raise ValueError("PNG encoding failed")
  return buf.tobytes()


def encode_example(face, features: Optional[np.ndarray] = None) -> bytes:
  """Serialises a ``preprocess.PreparedFace``.

  Args:
    face: the prepared face.
    features: optional [D] float vector.

  Returns:
    A serialised ``tf.train.Example``.
  """
  masks = np.stack([face.masks.face, face.masks.skin, face.masks.region, face.aligned.valid],
                   axis=-1).astype(np.uint8) * 255
  feature = {
      "image/png": _bytes(_png(face.aligned.image)),
      "masks/png": _bytes(_png(masks)),
      "landmarks68": _floats(face.landmarks68),
      "points5": _floats(face.aligned.points5),
      "affine": _floats(face.aligned.transform.matrix),
      "source/path": _bytes(str(face.source_path).encode("utf-8")),
      "source/size": _ints(face.source_size),
      "detection/box": _floats(face.detection.box),
      "detection/confidence": _floats([face.detection.confidence]),
  }
  if features is not None:
    features = np.asarray(features, dtype=np.float32).reshape(-1)
    if features.size == 0 or not np.all(np.isfinite(features)):
      raise ValueError("feature vector is empty or not finite")
    feature["features"] = _floats(features)
  # Sorted map keys: the same face gives the same bytes in every process (Beam workers too).
  return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString(
      deterministic=True)


def feature_spec(feature_dim: int = 0) -> Dict[str, tf.io.FixedLenFeature]:
  """Parsing spec for :func:`parse_example`."""
  spec = {
      "image/png": tf.io.FixedLenFeature([], tf.string),
      "masks/png": tf.io.FixedLenFeature([], tf.string),
      "landmarks68": tf.io.FixedLenFeature([136], tf.float32),
      "points5": tf.io.FixedLenFeature([10], tf.float32),
      "affine": tf.io.FixedLenFeature([6], tf.float32),
      "source/path": tf.io.FixedLenFeature([], tf.string),
      "source/size": tf.io.FixedLenFeature([2], tf.int64),
      "detection/box": tf.io.FixedLenFeature([4], tf.float32),
      "detection/confidence": tf.io.FixedLenFeature([1], tf.float32),
  }
  if feature_dim > 0:
    spec["features"] = tf.io.FixedLenFeature([feature_dim], tf.float32)
  return spec


def parse_example(serialized: tf.Tensor, feature_dim: int = 0,
                  size: int = ALIGNED_SIZE) -> Dict[str, tf.Tensor]:
  """One serialised example -> dict of tensors.

  Returns:
    ``image`` [S, S, 3] float32 RGB in 0..255; ``face_mask``, ``skin_mask``,
    ``region_mask``, ``valid_mask`` [S, S, 1] float32 in {0, 1};
    ``landmarks68`` [68, 2]; ``points5`` [5, 2]; ``affine`` [2, 3];
    ``source_path`` string; ``source_size`` [2] int32; ``box`` [4];
    ``confidence`` scalar; ``features`` [D] when ``feature_dim`` > 0.
  """
  parsed = tf.io.parse_single_example(serialized, feature_spec(feature_dim))
  image = tf.io.decode_png(parsed["image/png"], channels=3)
  image = tf.ensure_shape(image, [size, size, 3])
  masks = tf.ensure_shape(tf.io.decode_png(parsed["masks/png"], channels=4), [size, size, 4])
  masks = tf.cast(masks > 127, tf.float32)
  out = {
      "image": tf.cast(image, tf.float32),
      "landmarks68": tf.reshape(parsed["landmarks68"], [68, 2]),
      "points5": tf.reshape(parsed["points5"], [5, 2]),
      "affine": tf.reshape(parsed["affine"], [2, 3]),
      "source_path": parsed["source/path"],
      "source_size": tf.cast(parsed["source/size"], tf.int32),
      "box": parsed["detection/box"],
      "confidence": parsed["detection/confidence"][0],
  }
  for i, name in enumerate(MASK_CHANNELS):
    out[name] = masks[..., i:i + 1]
  if feature_dim > 0:
    out["features"] = parsed["features"]
  return out
