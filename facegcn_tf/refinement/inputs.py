"""Inputs and rendering helpers of the GCN texture refinement (paper_spec §1 steps 5-15).

From aligned photos and their coarse 3DMM coefficients (the frozen coarse
stage), :func:`build_inputs` poses and rasterizes the coarse face once and
collects everything the texture generator and its losses need:

* T   — the coarse albedo, in [-1, 1]                              (step 7)
* T_p — the photo's colours at the projected vertices, in [-1, 1], times
        their visibility, and the visibility (z-buffer test, facing the
        camera, and — by default, as in the official code — inside the
        photo's face mask): ``[B, V, 4] = (rgb · vis, vis)``      (steps 10-11)
* the lit coarse colours and their rendering                       (steps 8-9)
* M = projected-mesh coverage ∩ face mask (pixel loss and composite mask)
* the identity features of the photo (decoder input, identity loss).

The fine albedo T' is then lit (:func:`light`), rendered with the SAME raster
(:func:`render_colors`) and composited onto the photo (:func:`composite`),
steps 14-15. The geometry is frozen, so nothing here needs gradients with
respect to the coefficients; gradients flow from the renders to the colours.

Colour conventions: photos enter as RGB 0..255 (the data pipeline's range);
everything the generator and the losses see is in [-1, 1] (the paper's);
:func:`to_unit` / :func:`to_signed` convert. Pure functions of tensors.
"""

import collections

import tensorflow as tf

from facegcn_tf.render import sampling
from facegcn_tf.render.interpolate import interpolate_attributes

RefinementInputs = collections.namedtuple("RefinementInputs", [
    "image", "coeffs", "geometry", "raster", "coarse_albedo", "sampled", "lit_coarse",
    "coarse_render", "coverage", "mask", "features"])
RefinementInputs.__doc__ = """What the generator and its losses need for one batch.

image: [B, S, S, 3] the photo I in [-1, 1].
coeffs: [B, N] the coarse coefficients.
geometry, raster: the posed coarse face (`FaceGeometry`) and its `RasterOutput`.
coarse_albedo: [B, V, 3] T in [-1, 1].
sampled: [B, V, 4] T_p = (photo rgb in [-1, 1] · vis, vis); vis in {0, 1}.
lit_coarse: [B, V, 3] the lit coarse colours in [-1, 1] (clipped).
coarse_render: [B, S, S, 3] the lit coarse face rendered, [-1, 1], -1 outside.
coverage: [B, S, S] 1 where the mesh covers the pixel.
mask: [B, S, S] coverage · face mask (M_proj · M_face), in {0, 1}.
features: [B, D] identity features of the photo, or None.
"""


# `metrics.masked_psnr` keywords for colours in [-1, 1] (peak-to-peak 2).
SIGNED = {"peak": 2.0, "value_range": (-1.0, 1.0)}


def to_signed(x):
  """[0, 1] -> [-1, 1]."""
  return x * 2.0 - 1.0


def to_unit(x):
  """[-1, 1] -> [0, 1]."""
  return (x + 1.0) * 0.5


def to_255(x):
  """[-1, 1] -> 0..255."""
  return (x + 1.0) * 127.5


def _check_batch(images, coeffs, face_mask, renderer):
  size = renderer.image_size
  if images.shape.rank != 4 or tuple(images.shape[1:]) != (size, size, 3):
    raise ValueError(f"images must be [B, {size}, {size}, 3] RGB 0..255 crops at the "
                     f"renderer's size, got shape {images.shape}")
  if coeffs.shape.rank != 2 or coeffs.shape[1] != renderer.layout.total:
    raise ValueError(f"coeffs must be [B, {renderer.layout.total}] for this face model, "
                     f"got shape {coeffs.shape}")
  if face_mask.shape.rank == 4 and face_mask.shape[-1] == 1:
    face_mask = face_mask[..., 0]
  if face_mask.shape.rank != 3 or tuple(face_mask.shape[1:]) != (size, size):
    raise ValueError(f"face_mask must be [B, {size}, {size}] (or [..., 1]), got shape "
                     f"{face_mask.shape}")
  batch = {images.shape[0], coeffs.shape[0], face_mask.shape[0]} - {None}
  if len(batch) > 1:
    raise ValueError(f"images, coeffs and face_mask have different batch sizes {sorted(batch)}")
  return face_mask


def _check_values(images, coeffs, face_mask):
  for name, x in (("images", images), ("coeffs", coeffs), ("face_mask", face_mask)):
    if not bool(tf.reduce_all(tf.math.is_finite(x))):
      raise ValueError(f"{name} contain NaN or inf")
  low, high = float(tf.reduce_min(images)), float(tf.reduce_max(images))
  if low < -1.0 or high > 256.0:
    raise ValueError(f"images must be RGB in [0, 255], got values in [{low:g}, {high:g}]")
  if high <= 1.0:
    raise ValueError("images look like [0, 1] floats; pass RGB in [0, 255]")
  if float(tf.reduce_min(face_mask)) < 0.0 or float(tf.reduce_max(face_mask)) > 1.0:
    raise ValueError("face_mask must hold values in [0, 1]")


def build_inputs(renderer, images, coeffs, face_mask, encoder=None, features=None,
                 mask_visibility: bool = True, geometry=None, raster=None,
                 visibility=None) -> RefinementInputs:
  """Coarse geometry, T, T_p, lit coarse colours, masks and identity features of a batch.

  Args:
    renderer: `render.renderer.FaceRenderer` of the texture mesh; its image
      size S is the photos' size.
    images: [B, S, S, 3] aligned photos, float RGB 0..255.
    coeffs: [B, N] coarse coefficients of the renderer's model.
    face_mask: [B, S, S] (or [B, S, S, 1]) in [0, 1]: the face region the
      losses may use (face segmentation times the crop's valid area).
    encoder: identity encoder (`networks.identity`), used when `features` is
      None; with neither, `features` stays None.
    features: [B, D] precomputed identity features of the photos.
    mask_visibility: T_p's visibility also requires the vertex to fall inside
      `face_mask` (the official code's skin-mask test), so occluders (hair,
      glasses) are not copied into the albedo.
    geometry, raster: the posed coarse face (`FaceGeometry` of `coeffs`) and its
      `RasterOutput` at the renderer's size, when the coarse stage already made them;
      otherwise they are computed here.
    visibility: [B, V] the vertices' visibility in that raster (`FaceRenderer.visibility`),
      when already computed.

  Returns:
    `RefinementInputs` (no gradients flow back into `coeffs`).

  Raises:
    ValueError: wrong shapes; in eager mode also NaN/inf, images not in
      0..255 (or apparently in [0, 1]) or a mask outside [0, 1].
  """
  images = tf.cast(tf.convert_to_tensor(images), tf.float32)
  coeffs = tf.stop_gradient(tf.cast(tf.convert_to_tensor(coeffs), tf.float32))
  face_mask = tf.cast(tf.convert_to_tensor(face_mask), tf.float32)
  face_mask = _check_batch(images, coeffs, face_mask, renderer)
  if tf.executing_eagerly():  # value checks (inside tf.function the data pipeline's job)
    _check_values(images, coeffs, face_mask)
  if geometry is None:
    geometry = renderer.geometry(coeffs)
  if raster is None:
    raster = renderer.rasterize(geometry)
  coverage = tf.stop_gradient(raster.mask)
  image = images / 127.5 - 1.0
  albedo = renderer.albedo(coeffs)                                   # [0, 1]
  lit = tf.clip_by_value(renderer.lit_colors(albedo, geometry, coeffs), 0.0, 1.0)
  rgb, vis = renderer.sample_image(image, geometry, raster, visibility=visibility)
  if mask_visibility:
    inside = sampling.bilinear_sample(face_mask[..., tf.newaxis], geometry.pixels)[..., 0]
    vis = vis * tf.cast(inside > 0.5, tf.float32)
    rgb = rgb * (tf.cast(inside > 0.5, tf.float32)[..., tf.newaxis])
  sampled = tf.concat([rgb, vis[..., tf.newaxis]], axis=-1)
  lit_coarse = to_signed(lit)
  coarse_render = render_colors(renderer, lit_coarse, raster)
  if features is None and encoder is not None:
    features = encoder(images)
  if features is not None:
    features = tf.stop_gradient(tf.cast(tf.convert_to_tensor(features), tf.float32))
    if features.shape.rank != 2:
      raise ValueError(f"features must be [B, D], got shape {features.shape}")
  return RefinementInputs(
      image=image, coeffs=coeffs, geometry=geometry, raster=raster,
      coarse_albedo=tf.stop_gradient(to_signed(albedo)), sampled=tf.stop_gradient(sampled),
      lit_coarse=tf.stop_gradient(lit_coarse), coarse_render=tf.stop_gradient(coarse_render),
      coverage=coverage, mask=coverage * face_mask, features=features)


def generator_inputs(inputs: RefinementInputs):
  """`(features [B, D], T [B, V, 3], T_p [B, V, 4])`, the `TextureGenerator`'s input tuple."""
  if inputs.features is None:
    raise ValueError("the generator needs identity features: build_inputs(..., encoder=...) "
                     "or features=...")
  return inputs.features, inputs.coarse_albedo, inputs.sampled


def light(renderer, albedo, inputs: RefinementInputs):
  """SH-lights an albedo in [-1, 1] with each image's coarse lighting and normals.

  Args:
    renderer: the `FaceRenderer` of `inputs`.
    albedo: [B, V, 3] in [-1, 1] (e.g. the fine albedo T').
    inputs: the batch's `RefinementInputs`.

  Returns:
    [B, V, 3] lit colours T̃' in [-1, 1] units (not clipped, so losses keep
    their gradients where the shading overshoots).
  """
  albedo = tf.cast(albedo, tf.float32)
  return to_signed(renderer.lit_colors(to_unit(albedo), inputs.geometry, inputs.coeffs))


def render_colors(renderer, colors, raster, background: float = -1.0):
  """[B, V, 3] per-vertex colours -> [B, S, S, 3] image with the given raster.

  `background` fills uncovered pixels (-1 = black in [-1, 1] units).
  """
  return interpolate_attributes(tf.cast(colors, tf.float32), renderer.triangles, raster,
                                background=background)


def composite(rendering, image, mask):
  """The overlay `R' · M + I · (1 - M)`, all in [-1, 1].

  Args:
    rendering: [B, S, S, 3] the rendered fine face R' (clipped to [-1, 1] here).
    image: [B, S, S, 3] the photo I.
    mask: [B, S, S] the composite mask M.
  """
  m = tf.cast(mask, tf.float32)[..., tf.newaxis]
  return tf.clip_by_value(rendering, -1.0, 1.0) * m + image * (1.0 - m)


__all__ = ["SIGNED", "RefinementInputs", "build_inputs", "composite", "generator_inputs", "light",
           "render_colors", "to_255", "to_signed", "to_unit"]
