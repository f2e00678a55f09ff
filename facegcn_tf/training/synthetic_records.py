"""Tiny synthetic training sets for smoke runs, tests and benchmarks.

Random faces of a morphable model are rendered at 224 px with a striped
albedo (a high-frequency detail no PCA albedo has, so refinement has something
to recover) over flat random backgrounds, and written with the data
pipeline's own writer (`data.dataset.write_dataset`) as ``prepare_data``-style
TFRecords: aligned crop, masks = the render's coverage, exact iBUG-68
landmarks, identity transform.
"""

from typing import Dict

import numpy as np

from facegcn_tf.data import dataset as data_lib
from facegcn_tf.data.alignment import ALIGNED_SIZE, AlignedFace, AlignTransform
from facegcn_tf.data.detection import Detection
from facegcn_tf.data.face_mask import FaceMasks
from facegcn_tf.data.preprocess import PreparedFace
from facegcn_tf.render import random_faces
from facegcn_tf.render.camera import Camera
from facegcn_tf.render.renderer import FaceRenderer


def striped_albedo(model, frequency: float = 7.0) -> np.ndarray:
  """[V, 3] in [0, 1]: the model's mean albedo times `frequency` vertical stripes across the face."""
  x = model.mean_shape[:, 0]
  span = max(float(x.max() - x.min()), 1e-9)
  stripes = 0.5 + 0.5 * np.sign(np.sin(2 * np.pi * frequency * (x - x.min()) / span))
  tint = np.stack([1.0 - 0.35 * stripes, 1.0 - 0.1 * stripes, 1.0 - 0.45 * stripes], -1)
  return np.clip(model.mean_albedo * tint, 0.0, 1.0).astype(np.float32)


def striped_faces(model, count: int, seed: int = 3, max_yaw_deg: float = 20.0) -> Dict[str, np.ndarray]:
  """`count` striped random faces (`render.random_faces`) at 224 px over flat backgrounds.

  Returns:
    images [N, 224, 224, 3] float32 0..255, mask [N, 224, 224] coverage,
    coeffs [N, C] (texture coefficients 0: the truth's albedo is the striped
    one), landmarks [N, 68, 2], albedo [V, 3].
  """
  rng = np.random.default_rng(seed)
  prior = random_faces.FacePrior(max_yaw=max_yaw_deg, texture_std=0.0)
  coeffs = random_faces.random_coefficients(model.layout, count, rng, prior)
  albedo = striped_albedo(model)
  background = rng.uniform(40, 200, (count, 1, 1, 3))
  faces = random_faces.render_faces(FaceRenderer(model, Camera()), coeffs, background, rng,
                                    landmark_noise=0.0,
                                    vertex_colors=np.broadcast_to(albedo, (count,) + albedo.shape))
  return {"images": faces.images, "mask": faces.face_mask, "coeffs": faces.coeffs,
          "landmarks": faces.true_landmarks68, "albedo": albedo}


def prepared_face(image: np.ndarray, mask: np.ndarray, landmarks: np.ndarray,
                  name: str) -> PreparedFace:
  """A `PreparedFace` of an already aligned 224 crop (identity transform, masks = `mask`)."""
  image = np.round(np.clip(image, 0, 255)).astype(np.uint8)
  mask = np.asarray(mask) > 0.5
  lm = np.asarray(landmarks, np.float64)
  points5 = np.stack([lm[36:42].mean(0), lm[42:48].mean(0), lm[30], lm[48], lm[54]])
  eye = np.eye(2, 3)
  transform = AlignTransform(matrix=eye, inverse=eye, scale=1.0, translation=np.zeros(2),
                             size=ALIGNED_SIZE, source_shape=(ALIGNED_SIZE, ALIGNED_SIZE))
  return PreparedFace(
      aligned=AlignedFace(image=image, valid=np.ones_like(mask), points5=points5,
                          transform=transform),
      masks=FaceMasks(region=mask, skin=mask, face=mask), landmarks68=lm,
      dense=np.zeros((468, 3)),
      detection=Detection(np.array([0.0, 0.0, ALIGNED_SIZE, ALIGNED_SIZE]), 1.0, points5),
      source_path=name, source_size=(ALIGNED_SIZE, ALIGNED_SIZE))


def write_records(output_dir: str, model, count: int = 4, shard_size: int = 2,
                  seed: int = 3) -> Dict[str, object]:
  """Writes `count` synthetic faces as TFRecord shards into `output_dir`.

  Returns:
    {"pattern": the shards' glob, "faces": `striped_faces`' dict,
    "names": the records' source paths ("faceN.png")}.
  """
  faces = striped_faces(model, count, seed)
  names = [f"face{i}.png" for i in range(count)]
  index = {name: i for i, name in enumerate(names)}

  def prepare(name):
    i = index[name]
    return prepared_face(faces["images"][i], faces["mask"][i], faces["landmarks"][i], name)

  data_lib.write_dataset(names, output_dir, prepare, shard_size=shard_size)
  return {"pattern": f"{output_dir}/{data_lib.DEFAULT_PREFIX}-*.tfrecord", "faces": faces,
          "names": names}


__all__ = ["prepared_face", "striped_albedo", "striped_faces", "write_records"]
