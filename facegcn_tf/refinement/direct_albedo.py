"""The albedo the photo shows, solved directly: T_p with the fitted shading divided out.

Where a vertex is seen and not occluded, the lit colour the renderer draws is
``albedo_v * irradiance_v`` (`render.lighting`), and the photo's colour there is the
paper's T_p. The albedo that reproduces the photo is therefore ``T_p / irradiance`` in
closed form, with no gradient steps. It is trusted in proportion to

* the vertex being seen (z-buffer and normal test), inside the photo and not occluded
  (`fitting.occlusion`);
* on the silhouette, how squarely it faces the camera: there one pixel spreads over many
  vertices, samples the background and the shading is least certain, so the weight ramps
  from 0 at ``cos = grazing[0]`` to 1 at ``cos = grazing[1]``. Where the vertex projects
  inside the face the photo shows (``interior``; the pipeline uses the photo's face
  mask) the pixel there is this face whatever the normal says (creases, nostrils, folds of
  the mesh, a cheek seen edge-on), and the photo is trusted.

The albedo (at most 1) can only reproduce the photo where ``T_p <= irradiance``. What is
left over on the trusted vertices (specular highlights, which no Lambertian albedo explains)
is kept apart as a lit-only highlight term (`highlights`): it shows in the lit render, never
in the albedo.

Elsewhere the fallback albedo (the coarse 3DMM, or the GCN's output) is kept, and the
blend weight is returned so later stages (mirror fill, GCN) know what the photo decided.
"""

from typing import Optional, Tuple

import tensorflow as tf

from facegcn_tf.render import sampling

DEFAULT_GRAZING = (0.02, 0.12)
DEFAULT_MIN_IRRADIANCE = 0.1


def vertex_occlusion(occlusion: tf.Tensor, pixels: tf.Tensor) -> tf.Tensor:
  """Occlusion at the projected vertices.

  Args:
    occlusion: [B, H, W] in [0, 1] (1 = occluded).
    pixels: [B, V, 2] projected vertex positions (x, y), pixel centres at integers.

  Returns:
    [B, V] bilinear samples in [0, 1].
  """
  occlusion = tf.convert_to_tensor(occlusion, tf.float32)
  return sampling.bilinear_sample(occlusion[..., tf.newaxis], pixels)[..., 0]


def trust_weights(visibility: tf.Tensor, occluded: tf.Tensor, cos_view: tf.Tensor,
                  grazing: Tuple[float, float] = DEFAULT_GRAZING,
                  interior: Optional[tf.Tensor] = None) -> tf.Tensor:
  """[B, V] weight in [0, 1] of the photo's colour per vertex.

  Args:
    visibility: [B, V] 1 where seen.
    occluded: [B, V] occlusion at the vertex in [0, 1].
    cos_view: [B, V] cosine between the vertex normal and the direction to the camera.
    grazing: (cos where the weight starts rising from 0, cos where it reaches 1).
    interior: optional [B, V] in [0, 1], 1 where the vertex projects well inside the face
      the photo shows (not beyond its silhouette): there the grazing fade does not apply.
  """
  low, high = grazing
  t = tf.clip_by_value((cos_view - low) / max(high - low, 1e-6), 0.0, 1.0)
  facing = t * t * (3.0 - 2.0 * t)
  if interior is not None:
    facing = tf.maximum(facing, tf.convert_to_tensor(interior, tf.float32))
  unoccluded = tf.cast(occluded < 0.5, tf.float32)
  return tf.cast(visibility, tf.float32) * unoccluded * facing


def shading_divided(sampled: tf.Tensor, irradiance: tf.Tensor,
                    min_irradiance: float = DEFAULT_MIN_IRRADIANCE) -> tf.Tensor:
  """[B, V, 3] albedo ``T_p / irradiance`` in [0, 1].

  Args:
    sampled: [B, V, 3] photo colours at the vertices, in [0, 1].
    irradiance: [B, V, 3] the fitted SH irradiance (`render.lighting.irradiance`).
    min_irradiance: floor of the divisor.
  """
  return tf.clip_by_value(sampled / tf.maximum(irradiance, min_irradiance), 0.0, 1.0)


def highlights(sampled: tf.Tensor, irradiance: tf.Tensor, albedo: tf.Tensor,
               decided: tf.Tensor) -> tf.Tensor:
  """[B, V, 3] the photo's colour the lit albedo cannot reproduce on the decided vertices:
  ``max(T_p - albedo * irradiance, 0)`` where `decided` [B, V] is > 0.5, else 0.

  Args:
    sampled: [B, V, 3] T_p in [0, 1].
    irradiance: [B, V, 3] the fitted SH irradiance.
    albedo: [B, V, 3] the albedo (`direct_albedo`), at most 1.
    decided: [B, V] the photo's trust (`trust_weights`).
  """
  left = tf.convert_to_tensor(sampled, tf.float32) - albedo * irradiance
  on = tf.cast(tf.convert_to_tensor(decided, tf.float32) > 0.5, tf.float32)[..., tf.newaxis]
  return tf.maximum(left, 0.0) * on


def direct_albedo(sampled: tf.Tensor, irradiance: tf.Tensor, weight: tf.Tensor,
                  fallback: tf.Tensor,
                  min_irradiance: float = DEFAULT_MIN_IRRADIANCE) -> tf.Tensor:
  """[B, V, 3] albedo: the photo's where `weight` trusts it, `fallback` elsewhere.

  Args:
    sampled: [B, V, 3] T_p in [0, 1] (the photo at the projected vertices).
    irradiance: [B, V, 3] the fitted SH irradiance (`render.lighting.irradiance` of the posed
      normals and the fitted gamma).
    weight: [B, V] trust of the photo's colour (`trust_weights`).
    fallback: [B, V, 3] albedo where the photo is not trusted.
    min_irradiance: see `shading_divided`.
  """
  fallback = tf.convert_to_tensor(fallback, tf.float32)
  photo = shading_divided(tf.convert_to_tensor(sampled, tf.float32), irradiance,
                          min_irradiance)
  w = tf.convert_to_tensor(weight, tf.float32)[..., tf.newaxis]
  return w * photo + (1.0 - w) * fallback


__all__ = ["DEFAULT_GRAZING", "DEFAULT_MIN_IRRADIANCE", "direct_albedo", "highlights",
           "shading_divided", "trust_weights", "vertex_occlusion"]
