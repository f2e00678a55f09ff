"""How much of the photo's detail a result keeps: renders at the photo's own resolution.

The aligned crop is 224 px, but a face in a photo often spans more. Here a face is
re-rendered at the resolution it has in the ORIGINAL photo (the aligned camera scaled by the
alignment's zoom) in two ways, and each is compared with the photo warped into the same
frame, over the rendered face minus the occluders:

* ``vertex``: the lit per-vertex fine albedo (the paper's output, what the PLY holds);
* ``texture``: the lit UV texture (``NAME_texture.png``, what OBJ/GLB viewers show): the
  mesh is split at its UV seams, each pixel's UV is interpolated and the texture looked up
  (bilinear), then lit by the interpolated SH irradiance.
"""

from typing import Dict

import cv2
import numpy as np
import tensorflow as tf

from facegcn_tf import metrics
from facegcn_tf.export import seams
from facegcn_tf.export.result import FaceResult
from facegcn_tf.render import lighting
from facegcn_tf.render.interpolate import interpolate_attributes
from facegcn_tf.render.rasterizer import rasterize
from facegcn_tf.render.renderer import FaceRenderer

MAX_SIDE = 1024


def photo_resolution(result: FaceResult) -> int:
  """The side (px) the 224 aligned crop has in the original photo, capped at `MAX_SIDE`."""
  transform = result.face.aligned.transform
  corners = transform.to_original(np.array([[0.0, 0.0], [transform.size, 0.0]]))
  side = float(np.linalg.norm(corners[1] - corners[0]))
  return int(np.clip(round(side), transform.size, MAX_SIDE))


def sharpness_figures(renderer: FaceRenderer, result: FaceResult,
                      texture: np.ndarray) -> Dict[str, float]:
  """PSNR / SSIM of the per-vertex and the UV-textured renders at the photo's resolution.

  Args:
    renderer: the pipeline's renderer (its model and camera at the aligned size).
    result: the face.
    texture: [T, T', 3] uint8 the written albedo texture (``NAME_texture.png``, RGB).

  Returns:
    ``side_px`` (the render side), ``psnr_vertex_db``, ``ssim_vertex``,
    ``psnr_texture_db``, ``ssim_texture``.
  """
  side = photo_resolution(result)
  size = renderer.image_size
  scale = side / size
  hires = FaceRenderer(renderer.model, renderer.camera.resized(side))
  coeffs = tf.constant(result.coeffs[None], tf.float32)
  geometry = hires.geometry(coeffs)
  raster = hires.rasterize(geometry)
  gamma = hires.split(coeffs)["gamma"]
  vertex = hires.render(coeffs, vertex_colors=tf.constant(result.fine_albedo[None]),
                        geometry=geometry, raster=raster).image[0].numpy()

  model = renderer.model
  split = seams.split_at_seams(model.region_triangles,
                               model.triangle_uv[model.face_region])
  irradiance = lighting.irradiance(geometry.normals, gamma)[0].numpy()
  corner_attrs = np.concatenate([model.uv[split.uv_index], irradiance[split.vertex_index]],
                                axis=1).astype(np.float32)
  clip = tf.gather(geometry.clip, split.vertex_index, axis=1)
  split_raster = rasterize(clip, tf.constant(split.triangles), (side, side))
  attrs = interpolate_attributes(tf.constant(corner_attrs[None]), tf.constant(split.triangles),
                                 split_raster)[0].numpy()
  height, width = texture.shape[:2]
  albedo = cv2.remap(np.ascontiguousarray(texture), attrs[..., 0] * width - 0.5,
                     (1.0 - attrs[..., 1]) * height - 0.5, cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE).astype(np.float32) / 255.0
  textured = albedo * attrs[..., 2:5]

  transform = result.face.aligned.transform
  matrix = np.asarray(transform.matrix, np.float64) * scale
  matrix[:, 2] += 0.5 * (scale - 1.0)     # pixel centres at integers in both frames
  photo = cv2.warpAffine(result.photo, matrix, (side, side),
                         flags=cv2.INTER_AREA).astype(np.float32) / 255.0
  keep = cv2.resize(result.renders.mask.astype(np.float32), (side, side),
                    interpolation=cv2.INTER_LINEAR) > 0.99
  region = (keep & (raster.mask[0].numpy() > 0.5)).astype(np.float32)
  out = {"side_px": float(side)}
  for name, image in (("vertex", vertex), ("texture", textured)):
    image = np.clip(image, 0.0, 1.0)
    out[f"psnr_{name}_db"] = float(metrics.masked_psnr(photo, image, region, peak=1.0))
    out[f"ssim_{name}"] = float(metrics.masked_ssim(photo, image, region))
  return out


__all__ = ["photo_resolution", "sharpness_figures"]
