"""Deep3DFace's pinhole camera: clip-space transform and pixel projection.

The camera sits at (0, 0, `distance`) looking down -z with +y up (paper_spec §2.4): focal
length 1015 px for a 224-px image, principal point at the image centre, so the vertical
field of view is 2·atan(112 / 1015) = 12.5936°. Geometry is in decimetres (the unit every
`MorphableModel` uses), so the default distance is 10.

Pixel coordinates follow OpenCV: x to the right, y down, the CENTRE of pixel (row r,
column c) at (c, r). The image centre of a 224-px image is therefore 111.5 (Deep3DFace writes
"112" for the same point with centres at half-integers).

tensorflow-graphics supplies the projection matrix (`perspective.right_handed`) and the
pinhole projection (`perspective.project`).
"""

import dataclasses
import math

import tensorflow as tf
from tensorflow_graphics.rendering.camera import perspective


@dataclasses.dataclass(frozen=True)
class Camera:
  """A pinhole camera on the +z axis looking at the origin.

  Attributes:
    focal: focal length in pixels (Deep3DFace: 1015 at 224 px).
    image_size: square image side in pixels.
    distance: camera distance from the origin, in the geometry's unit (dm).
    near, far: clipping planes (distances from the camera).
  """
  focal: float = 1015.0
  image_size: int = 224
  distance: float = 10.0
  near: float = 2.0
  far: float = 20.0

  def __post_init__(self):
    if not (self.focal > 0 and self.image_size > 0 and 0 < self.near < self.far):
      raise ValueError(f"invalid camera {self}")

  def resized(self, image_size: int) -> "Camera":
    """The same field of view rendered at another resolution."""
    return dataclasses.replace(self, image_size=int(image_size),
                               focal=self.focal * image_size / self.image_size)

  @property
  def fov_y(self) -> float:
    """Vertical field of view in radians."""
    return 2.0 * math.atan(0.5 * self.image_size / self.focal)

  def to_eye(self, vertices: tf.Tensor) -> tf.Tensor:
    """[B, V, 3] world -> eye space (camera at the origin looking down -z)."""
    return vertices - tf.constant([0.0, 0.0, self.distance], vertices.dtype)

  def to_clip(self, vertices: tf.Tensor) -> tf.Tensor:
    """[B, V, 3] world -> [B, V, 4] clip-space (x, y, z, w) for the rasterizer."""
    eye = self.to_eye(vertices)
    matrix = perspective.right_handed(
        tf.constant([self.fov_y], vertices.dtype), tf.constant([1.0], vertices.dtype),
        tf.constant([self.near], vertices.dtype), tf.constant([self.far], vertices.dtype))
    homogeneous = tf.concat([eye, tf.ones_like(eye[..., :1])], axis=-1)
    return tf.einsum("ij,bvj->bvi", tf.reshape(matrix, [4, 4]), homogeneous)

  def project(self, vertices: tf.Tensor) -> tf.Tensor:
    """[B, V, 3] world -> [B, V, 2] pixel coordinates (x right, y down, centres at integers)."""
    eye = self.to_eye(vertices)
    # OpenCV-style camera frame: x right, y down, z forward (= -eye z).
    cv = tf.stack([eye[..., 0], -eye[..., 1], -eye[..., 2]], axis=-1)
    centre = 0.5 * self.image_size - 0.5
    batch_shape = tf.shape(cv)[:-1]
    focal = tf.fill(tf.concat([batch_shape, [2]], 0), tf.cast(self.focal, cv.dtype))
    principal = tf.fill(tf.concat([batch_shape, [2]], 0), tf.cast(centre, cv.dtype))
    return perspective.project(cv, focal, principal)

  def ndc_depth(self, vertices: tf.Tensor) -> tf.Tensor:
    """[B, V, 3] world -> [B, V] NDC depth, comparable with the rasterizer's z-buffer."""
    clip = self.to_clip(vertices)
    return clip[..., 2] / clip[..., 3]

  def linear_depth(self, ndc_z: tf.Tensor) -> tf.Tensor:
    """NDC depth (any shape) -> distance along the viewing axis, in the geometry's unit."""
    n, f = self.near, self.far
    return 2.0 * f * n / ((f + n) - ndc_z * (f - n))
