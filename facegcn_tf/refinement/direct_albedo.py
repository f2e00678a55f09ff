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
  well inside the face the photo shows (``interior``; the pipeline uses the photo's face
  mask) the pixel there is this face whatever the normal says (creases, nostrils, folds of
  the mesh, a cheek seen edge-on), and the photo is trusted.

The albedo can only reproduce the photo where ``T_p <= irradiance`` (albedo <= 1). The
split of a colour into albedo and light is ambiguous up to a scale, so the light may be
scaled by a gain ``k >= 1`` per face (`light_gain`: the ratio ``T_p / irradiance`` that a
``quantile`` of the trusted vertices stay under, at most ``max_gain``); the albedo is then
``T_p / (k * irradiance)`` and the light ``k`` times the fitted one (`gained_gamma`), so
highlights the fitted light cannot explain are not clipped off.

Elsewhere the fallback albedo (the coarse 3DMM, or the GCN's output) is kept, divided by the
same gain, and the blend weight is returned so later stages (mirror fill, GCN) know what
the photo decided.
"""

from typing import Optional, Tuple

import numpy as np
import tensorflow as tf

from facegcn_tf.render import lighting
from facegcn_tf.render import sampling

DEFAULT_GRAZING = (0.02, 0.12)
DEFAULT_MIN_IRRADIANCE = 0.1
DEFAULT_GAIN_QUANTILE = 0.999
DEFAULT_MAX_GAIN = 2.0


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
    irradiance: [B, V, 3] the fitted SH irradiance (`lighting.irradiance`).
    min_irradiance: floor of the divisor.
  """
  return tf.clip_by_value(sampled / tf.maximum(irradiance, min_irradiance), 0.0, 1.0)


def light_gain(sampled: tf.Tensor, irradiance: tf.Tensor, weight: tf.Tensor,
               quantile: float = DEFAULT_GAIN_QUANTILE, max_gain: float = DEFAULT_MAX_GAIN,
               min_irradiance: float = DEFAULT_MIN_IRRADIANCE) -> tf.Tensor:
  """[B] gain ``k`` in [1, max_gain] of the fitted light, so that ``T_p / (k * irradiance)``
  stays <= 1 on a `quantile` of the trusted vertices (see the module docstring).

  Args:
    sampled: [B, V, 3] T_p in [0, 1].
    irradiance: [B, V, 3] the fitted SH irradiance.
    weight: [B, V] trust (`trust_weights`); vertices above 0.5 count.
    quantile: share of the trusted vertices whose albedo must fit in [0, 1].
    max_gain: the largest gain.
    min_irradiance: see `shading_divided`.
  """
  ratio = tf.reduce_max(tf.convert_to_tensor(sampled, tf.float32) /
                        tf.maximum(irradiance, min_irradiance), axis=-1)        # [B, V]
  trusted = tf.convert_to_tensor(weight, tf.float32) > 0.5
  ratio = tf.sort(tf.where(trusted, ratio, tf.zeros_like(ratio)), axis=-1)      # [B, V]
  count = tf.reduce_sum(tf.cast(trusted, tf.int32), axis=-1)                   # [B]
  total = tf.shape(ratio)[-1]
  # Untrusted vertices sort first (0); the quantile is taken among the trusted ones.
  rank = total - count + tf.cast(tf.math.floor(quantile * tf.cast(tf.maximum(count - 1, 0),
                                                                   tf.float32)), tf.int32)
  value = tf.gather(ratio, tf.minimum(rank, total - 1), batch_dims=1)
  value = tf.where(count > 0, value, tf.ones_like(value))
  return tf.clip_by_value(value, 1.0, max_gain)


def gained_gamma(gamma, gain):
  """[B, 27] SH coefficients whose irradiance is `gain` [B] times that of `gamma` [B, 27]
  (numpy or tf; the ambient offset of `lighting.irradiance` is accounted for)."""
  offset = np.zeros(27, np.float32)
  offset[0::9] = lighting.AMBIENT_OFFSET
  gain = np.asarray(gain, np.float32)[:, None]
  return gain * (np.asarray(gamma, np.float32) + offset) - offset


def direct_albedo(sampled: tf.Tensor, normals: tf.Tensor, gamma: tf.Tensor,
                  weight: tf.Tensor, fallback: tf.Tensor,
                  min_irradiance: float = DEFAULT_MIN_IRRADIANCE,
                  gain: Optional[tf.Tensor] = None) -> tf.Tensor:
  """[B, V, 3] albedo: the photo's where `weight` trusts it, `fallback` elsewhere.

  Args:
    sampled: [B, V, 3] T_p in [0, 1] (the photo at the projected vertices).
    normals: [B, V, 3] posed unit normals.
    gamma: [B, 27] fitted SH lighting coefficients.
    weight: [B, V] trust of the photo's colour (`trust_weights`).
    fallback: [B, V, 3] albedo where the photo is not trusted (under the fitted light).
    min_irradiance: see `shading_divided`.
    gain: optional [B] light gain (`light_gain`): the result is the albedo under ``gain``
      times the fitted light, the fallback divided by it.
  """
  irradiance = lighting.irradiance(normals, gamma)
  fallback = tf.convert_to_tensor(fallback, tf.float32)
  if gain is not None:
    k = tf.convert_to_tensor(gain, tf.float32)[:, tf.newaxis, tf.newaxis]
    irradiance, fallback = irradiance * k, fallback / k
  photo = shading_divided(tf.convert_to_tensor(sampled, tf.float32), irradiance,
                          min_irradiance)
  w = tf.convert_to_tensor(weight, tf.float32)[..., tf.newaxis]
  return w * photo + (1.0 - w) * fallback


__all__ = ["DEFAULT_GAIN_QUANTILE", "DEFAULT_GRAZING", "DEFAULT_MAX_GAIN",
           "DEFAULT_MIN_IRRADIANCE", "direct_albedo", "gained_gamma", "light_gain",
           "shading_divided", "trust_weights", "vertex_occlusion"]
