"""Coefficients -> posed, lit, rasterized face: the differentiable renderer of the pipeline.

`FaceRenderer` holds a `MorphableModel` as TF constants and a `Camera`, and turns a batch of
3DMM coefficient vectors (Deep3DFace layout: id, exp, tex, angles, gamma, trans) into
geometry, per-vertex colours, rendered images and the image colours sampled at the
projected vertices. Everything is batched, differentiable w.r.t. coefficients and vertex
colours, and runs inside `tf.function`.
"""

import collections
from typing import Optional

import tensorflow as tf

from facegcn_tf.morphable import albedo as albedo_lib
from facegcn_tf.morphable.model import MorphableModel
from facegcn_tf.render import geometry as geo
from facegcn_tf.render import lighting
from facegcn_tf.render import sampling
from facegcn_tf.render.camera import Camera
from facegcn_tf.render.interpolate import interpolate_attributes
from facegcn_tf.render.rasterizer import RasterOutput, rasterize

FaceGeometry = collections.namedtuple(
    "FaceGeometry", ["shape", "vertices", "normals", "clip", "pixels", "depth"])
FaceGeometry.__doc__ = """Posed geometry of a batch of faces.

shape: [B, V, 3] model-space shape (identity + expression), decimetres.
vertices: [B, V, 3] posed world-space vertices (rotation + translation).
normals: [B, V, 3] posed unit vertex normals.
clip: [B, V, 4] clip-space positions for the rasterizer.
pixels: [B, V, 2] projected positions (x right, y down, pixel centres at integers).
depth: [B, V] distance from the camera plane (decimetres).
"""

Rendering = collections.namedtuple("Rendering", ["image", "mask", "raster", "geometry", "colors"])
Rendering.__doc__ = """image: [B, H, W, 3]; mask: [B, H, W] coverage; raster: RasterOutput;
geometry: FaceGeometry; colors: [B, V, 3] the per-vertex colours that were rendered."""


class FaceRenderer:
  """Renders a morphable model from coefficients.

  Only the model's face region (`MorphableModel.face_region`: the inner face, no ears,
  neck or scalp) is rasterized, so renders, overlays and the photometric losses cover the
  face alone; vertex normals use every triangle, so the region's border shades as it does
  inside the whole mesh.

  Args:
    model: the face model (geometry in decimetres).
    camera: the pinhole camera (default: Deep3DFace's, 224 px).
    whole_mesh: rasterize every triangle instead of the face region.
  """

  def __init__(self, model: MorphableModel, camera: Optional[Camera] = None,
               whole_mesh: bool = False):
    self.model = model
    self.camera = camera or Camera()
    self.layout = model.layout
    self.whole_mesh = whole_mesh
    # Rasterized (and interpolated) triangles: [F', 3].
    self.triangles = tf.constant(model.triangles if whole_mesh else model.region_triangles,
                                 tf.int32)
    self._all_triangles = tf.constant(model.triangles, tf.int32)
    self._mean_shape = tf.constant(model.mean_shape)
    self._id_basis = tf.constant(model.id_basis)
    self._exp_basis = tf.constant(model.exp_basis)
    self._mean_albedo = tf.constant(model.mean_albedo)
    self._albedo_basis = tf.constant(model.albedo_basis)
    self._landmarks = tf.constant(model.landmarks68, tf.int32)

  @property
  def image_size(self) -> int:
    return self.camera.image_size

  def split(self, coeffs: tf.Tensor) -> dict:
    """[B, N] coefficients -> dict of parts (see `CoeffLayout`)."""
    return self.layout.split(tf.convert_to_tensor(coeffs, tf.float32))

  def zero_coefficients(self, batch_size: int = 1) -> tf.Tensor:
    """[B, N] zeros: mean shape and albedo, frontal, ambient light only."""
    return tf.zeros([batch_size, self.layout.total], tf.float32)

  def shape(self, coeffs: tf.Tensor) -> tf.Tensor:
    """[B, N] -> [B, V, 3] model-space shape (identity + expression)."""
    parts = self.split(coeffs)
    ids_and_exp = tf.concat([parts["id"], parts["exp"]], axis=-1)
    basis = tf.concat([self._id_basis, self._exp_basis], axis=0)
    return geo.linear_combination(self._mean_shape, basis, ids_and_exp)

  def albedo(self, coeffs: tf.Tensor) -> tf.Tensor:
    """[B, N] -> [B, V, 3] coarse albedo in [0, 1], on skin hues (`albedo.to_skin_hues`)."""
    parts = self.split(coeffs)
    albedo = geo.linear_combination(self._mean_albedo, self._albedo_basis, parts["tex"])
    return albedo_lib.to_skin_hues(tf.clip_by_value(albedo, 0.0, 1.0))

  def geometry(self, coeffs: tf.Tensor, shape: Optional[tf.Tensor] = None) -> FaceGeometry:
    """Poses the shape of `coeffs` (or a given model-space `shape` [B, V, 3])."""
    parts = self.split(coeffs)
    if shape is None:
      shape = self.shape(coeffs)
    normals = geo.rotate(geo.vertex_normals(shape, self._all_triangles), parts["angles"])
    vertices = geo.rigid_transform(shape, parts["angles"], parts["trans"])
    clip = self.camera.to_clip(vertices)
    return FaceGeometry(shape=shape, vertices=vertices, normals=normals, clip=clip,
                        pixels=self.camera.project(vertices), depth=clip[..., 3])

  def landmarks(self, geometry: FaceGeometry) -> tf.Tensor:
    """[B, 68, 2] projected 68-point landmarks (pixel coordinates)."""
    return tf.gather(geometry.pixels, self._landmarks, axis=1)

  def lit_colors(self, albedo: tf.Tensor, geometry: FaceGeometry, coeffs: tf.Tensor):
    """[B, V, 3] albedo lit by the SH coefficients of `coeffs` (not clipped)."""
    return lighting.shade(albedo, geometry.normals, self.split(coeffs)["gamma"])

  def rasterize(self, geometry: FaceGeometry) -> RasterOutput:
    size = self.camera.image_size
    return rasterize(geometry.clip, self.triangles, (size, size))

  def render(self, coeffs: tf.Tensor,
             vertex_colors: Optional[tf.Tensor] = None,
             lit: bool = True,
             background: float = 0.0,
             geometry: Optional[FaceGeometry] = None,
             raster: Optional[RasterOutput] = None) -> Rendering:
    """Renders faces.

    Args:
      coeffs: [B, N] coefficients.
      vertex_colors: [B, V, 3] albedo to use instead of the model's coarse albedo.
      lit: apply the SH lighting of `coeffs` to the albedo.
      background: value of uncovered pixels.
      geometry, raster: reuse earlier results (the geometry is otherwise posed from coeffs).

    Returns:
      A `Rendering`; `image` is [B, H, W, 3] (not clipped).
    """
    geometry = geometry if geometry is not None else self.geometry(coeffs)
    raster = raster if raster is not None else self.rasterize(geometry)
    albedo = vertex_colors if vertex_colors is not None else self.albedo(coeffs)
    colors = self.lit_colors(albedo, geometry, coeffs) if lit else albedo
    image = interpolate_attributes(colors, self.triangles, raster, background=background)
    return Rendering(image=image, mask=raster.mask, raster=raster, geometry=geometry,
                     colors=colors)

  def view_cosines(self, geometry: FaceGeometry) -> tf.Tensor:
    """[B, V] cosine between each posed normal and the direction to the camera."""
    to_camera = tf.math.l2_normalize(
        tf.constant([0.0, 0.0, self.camera.distance]) - geometry.vertices, axis=-1)
    return tf.reduce_sum(geometry.normals * to_camera, axis=-1)

  def visibility(self, geometry: FaceGeometry, raster: RasterOutput,
                 tolerance: float = 0.02) -> tf.Tensor:
    """[B, V] 1 where a vertex is seen: in the image, facing the camera, not occluded.

    `tolerance` (decimetres, default 2 mm) absorbs the z-buffer being sampled at pixel
    centres rather than at the vertices.
    """
    depth_buffer = self.camera.linear_depth(raster.z_buffer)
    facing = self.view_cosines(geometry) > 0.0
    return sampling.vertex_visibility(geometry.pixels, geometry.depth, depth_buffer,
                                      raster.mask, facing, tolerance)

  def drawn_vertices(self, raster: RasterOutput) -> tf.Tensor:
    """[B, V] 1 for the vertices of every triangle the raster shows in some pixel: their
    colours reach the image even where the z-buffer test at the vertex itself fails (corners
    on a silhouette or a depth edge)."""
    num_vertices = self.model.num_vertices
    covered = tf.cast(raster.mask > 0.5, tf.int32)
    size = int(self.triangles.shape[0])

    def one(args):
      ids, on = args
      shown = tf.math.unsorted_segment_max(on, ids, size) > 0            # [F']
      corners = tf.boolean_mask(self.triangles, shown)                   # [F'', 3]
      hits = tf.scatter_nd(tf.reshape(corners, [-1, 1]),
                           tf.ones([tf.size(corners)], tf.float32), [num_vertices])
      return tf.cast(hits > 0, tf.float32)

    ids = tf.reshape(raster.triangle_ids, [tf.shape(covered)[0], -1])
    return tf.map_fn(one, (ids, tf.reshape(covered, tf.shape(ids))),
                     fn_output_signature=tf.float32)

  def sample_image(self, image: tf.Tensor, geometry: FaceGeometry, raster: RasterOutput,
                   tolerance: float = 0.02, visibility: Optional[tf.Tensor] = None):
    """The photo's colours at the projected vertices (the paper's T_p).

    Args:
      image: [B, H, W, C] the aligned photo (any value range).
      geometry, raster: from `geometry` / `rasterize` of the same coefficients.
      tolerance: see `visibility`.
      visibility: [B, V] the vertices' visibility when already computed (`visibility`).

    Returns:
      (colors [B, V, C] bilinear samples times visibility, visibility [B, V] in {0, 1}).
    """
    vis = (self.visibility(geometry, raster, tolerance) if visibility is None
           else tf.cast(visibility, tf.float32))
    colors = sampling.bilinear_sample(tf.cast(image, tf.float32), geometry.pixels)
    return colors * vis[..., tf.newaxis], vis
