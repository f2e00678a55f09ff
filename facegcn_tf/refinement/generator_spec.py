"""What a texture generator is made of, so it can be rebuilt from a file.

A :class:`GeneratorSpec` names the face model, the mesh hierarchy and every
constructor argument of `networks.texture_generator.TextureGenerator`. The
trainer writes it as JSON next to the exported weights
(:func:`export_generator`), and per-image refinement / inference rebuild the
same network from it (:func:`load_generator`).

The generator's hyper-parameters are declared, defaulted and validated once, in
:class:`GeneratorHParams`; `GeneratorSpec`, `refinement.per_image.PerImageConfig`
and `training.gcn_trainer.GCNTrainConfig` inherit them as flat fields (so
``--set=order=6`` of ``scripts/train.py`` and saved JSON specs keep their names).
"""

import dataclasses
import json
import math
import os
from typing import Optional, Tuple

from facegcn_tf.errors import AssetNotFoundError
from facegcn_tf.graph import hierarchy as hierarchy_lib
from facegcn_tf.networks import gcn_decoder
from facegcn_tf.networks import gcn_refiner
from facegcn_tf.networks import texture_generator

WEIGHTS_FILE = "gcn_generator.weights.h5"
SPEC_FILE = "gcn_generator.json"
SPEC_FORMAT = "facegcn_tf.gcn_generator.v1"


def parse_widths(text: Optional[str], what: str) -> Optional[Tuple[int, ...]]:
  """``"32,16,16,16"`` -> (32, 16, 16, 16); ``""`` / None -> None (the network's default).

  Raises:
    ValueError: not a comma-separated list of positive ints.
  """
  if text is None or (isinstance(text, str) and not text.strip()):
    return None
  if isinstance(text, (tuple, list)):
    values = tuple(text)
  else:
    try:
      values = tuple(int(x) for x in str(text).split(","))
    except ValueError:
      raise ValueError(f"{what} must be comma-separated positive ints, got '{text}'") from None
  if not values or not all(isinstance(v, int) and v > 0 for v in values):
    raise ValueError(f"{what} must be comma-separated positive ints, got '{text}'")
  return values


DEFAULT_FACTORS = (4, 4, 4, 4)


@dataclasses.dataclass(frozen=True, kw_only=True)
class GeneratorHParams:
  """The texture generator's hyper-parameters (the one place each is declared).

  Attributes:
    refiner, decoder, activation, order: see `TextureGenerator` (order: the
      Chebyshev order K of the graph convolutions).
    decoder_widths, refiner_widths: comma-separated widths ("" = the networks'
      defaults).
    use_decoder, use_refiner: ablation switches (at least one).
    fc_weight_decay: the official code's L2 on FC layers (0 = off).
    factors: mesh-hierarchy decimation factors, comma-separated ("" = 4,4,4,4);
      a tuple of ints is accepted and stored as that text.
  """
  refiner: str = "residual"
  decoder: str = "residual"
  activation: str = "relu"
  order: int = 6
  decoder_widths: str = ""
  refiner_widths: str = ""
  use_decoder: bool = True
  use_refiner: bool = True
  fc_weight_decay: float = 0.0
  factors: str = ",".join(map(str, DEFAULT_FACTORS))

  def __post_init__(self):
    if self.refiner not in gcn_refiner.REFINERS:
      raise ValueError(f"refiner must be one of {gcn_refiner.REFINERS}, got '{self.refiner}'")
    if self.decoder not in gcn_decoder.BLOCKS:
      raise ValueError(f"decoder must be one of {gcn_decoder.BLOCKS}, got '{self.decoder}'")
    if isinstance(self.order, bool) or not isinstance(self.order, int) or self.order < 1:
      raise ValueError(f"order must be a positive int, got {self.order!r}")
    parse_widths(self.decoder_widths, "decoder_widths")
    parse_widths(self.refiner_widths, "refiner_widths")
    if not (self.use_decoder or self.use_refiner):
      raise ValueError("the generator needs the decoder, the refiner or both")
    value = self.fc_weight_decay
    if isinstance(value, bool) or not (isinstance(value, (int, float)) and math.isfinite(value)
                                       and value >= 0):
      raise ValueError(f"fc_weight_decay must be a finite number >= 0, got {value!r}")
    factors = parse_widths(self.factors, "factors")
    object.__setattr__(self, "factors", ",".join(map(str, factors)) if factors else "")

  def factor_tuple(self) -> Tuple[int, ...]:
    """The decimation factors as ints (the default ones for "")."""
    return parse_widths(self.factors, "factors") or DEFAULT_FACTORS

  def hparams(self) -> "GeneratorHParams":
    """Just the hyper-parameters (of a config or spec that extends them)."""
    return GeneratorHParams(**{f.name: getattr(self, f.name)
                               for f in dataclasses.fields(GeneratorHParams)})

  def spec(self, face_model: str, feature_dim: int, identity: str = "dlib") -> "GeneratorSpec":
    """The `GeneratorSpec` of a generator with these hyper-parameters."""
    return GeneratorSpec(face_model=face_model, feature_dim=feature_dim, identity=identity,
                         **dataclasses.asdict(self.hparams()))


@dataclasses.dataclass(frozen=True, kw_only=True)
class GeneratorSpec(GeneratorHParams):
  """Constructor arguments of a `TextureGenerator` plus its mesh.

  Attributes:
    face_model: the face model name (its mesh is the texture mesh).
    feature_dim: length of the identity feature vector (decoder input).
    identity: the identity encoder kind the features come from.
    (the rest): `GeneratorHParams`.
  """
  face_model: str
  feature_dim: int
  identity: str = "dlib"

  def __post_init__(self):
    if isinstance(self.feature_dim, bool) or not isinstance(self.feature_dim, int) \
        or self.feature_dim < 1:
      raise ValueError(f"feature_dim must be a positive int, got {self.feature_dim!r}")
    super().__post_init__()

  def to_json(self) -> dict:
    out = dataclasses.asdict(self)
    out["factors"] = list(self.factor_tuple())
    out["format"] = SPEC_FORMAT
    return out

  @classmethod
  def from_json(cls, data: dict) -> "GeneratorSpec":
    if data.get("format") != SPEC_FORMAT:
      raise ValueError(f"not a generator spec ({SPEC_FORMAT})")
    fields = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: (tuple(v) if k == "factors" else v) for k, v in data.items() if k in fields})


def build_hierarchy(model, spec: GeneratorSpec):
  """The (disk-cached) mesh hierarchy of `model` with the spec's factors."""
  return hierarchy_lib.build_hierarchy(model.mean_shape, model.triangles,
                                       factors=spec.factor_tuple())


def build_generator(spec: GeneratorSpec, hierarchy, name: str = "generator"):
  """A built (weights created) `TextureGenerator` for `spec` on `hierarchy`."""
  generator = texture_generator.TextureGenerator(
      hierarchy, spec.feature_dim, refiner=spec.refiner, activation=spec.activation,
      widths=parse_widths(spec.decoder_widths, "decoder_widths"), decoder=spec.decoder,
      refiner_widths=parse_widths(spec.refiner_widths, "refiner_widths"), order=spec.order,
      use_decoder=spec.use_decoder, use_refiner=spec.use_refiner,
      fc_weight_decay=spec.fc_weight_decay, name=name)
  n = hierarchy.num_vertices[0]
  generator.build([(None, spec.feature_dim), (None, n, 3),
                   (None, n, texture_generator.SAMPLED_CHANNELS)])
  return generator


def export_generator(generator, spec: GeneratorSpec, output_dir: str, extra: Optional[dict] = None):
  """Writes ``gcn_generator.weights.h5`` + ``gcn_generator.json`` to `output_dir`; returns the weights path."""
  os.makedirs(output_dir, exist_ok=True)
  path = os.path.join(output_dir, WEIGHTS_FILE)
  tmp = path + ".tmp.weights.h5"
  generator.save_weights(tmp)
  os.replace(tmp, path)
  meta = spec.to_json()
  meta.update(extra or {})
  spec_path = os.path.join(output_dir, SPEC_FILE)
  with open(spec_path + ".tmp", "w", encoding="utf-8") as f:
    json.dump(meta, f, indent=1)
  os.replace(spec_path + ".tmp", spec_path)
  return path


def load_spec(path: str) -> GeneratorSpec:
  """The spec of an exported generator (`path` = its folder, weights file or JSON)."""
  folder = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
  spec_path = os.path.join(folder, SPEC_FILE)
  if not os.path.isfile(spec_path):
    raise AssetNotFoundError(f"no trained generator at '{path}' (expected {SPEC_FILE} and "
                             f"{WEIGHTS_FILE}, written by scripts/train.py --stage=gcn)")
  with open(spec_path, "r", encoding="utf-8") as f:
    try:
      return GeneratorSpec.from_json(json.load(f))
    except (ValueError, TypeError) as err:
      raise ValueError(f"'{spec_path}' is not a valid generator spec: {err}") from None


def load_generator(path: str, model, hierarchy=None):
  """(generator, spec) from an exported folder / weights file, checked against `model`.

  Raises:
    AssetNotFoundError: nothing exported there.
    ValueError: exported for another face model, or weights that do not fit.
  """
  spec = load_spec(path)
  if spec.face_model != model.name:
    raise ValueError(f"the generator at '{path}' was trained on face model '{spec.face_model}', "
                     f"not '{model.name}'")
  folder = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
  weights = os.path.join(folder, WEIGHTS_FILE)
  if not os.path.isfile(weights):
    raise AssetNotFoundError(f"'{weights}' is missing")
  hierarchy = hierarchy if hierarchy is not None else build_hierarchy(model, spec)
  generator = build_generator(spec, hierarchy)
  try:
    generator.load_weights(weights)
  except ValueError as err:
    raise ValueError(f"'{weights}' does not fit its spec: {str(err).splitlines()[0]}") from None
  return generator, spec


__all__ = ["GeneratorHParams", "GeneratorSpec", "SPEC_FILE", "WEIGHTS_FILE", "build_generator", "build_hierarchy",
           "export_generator", "load_generator", "load_spec", "parse_widths"]
