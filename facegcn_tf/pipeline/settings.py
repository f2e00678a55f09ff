"""What a reconstruction run does: the `Settings` every stage reads."""

import dataclasses
from typing import Optional, Tuple

from facegcn_tf.export import writer
from facegcn_tf.fitting.fitter import FitConfig
from facegcn_tf.pipeline import presets


@dataclasses.dataclass(frozen=True)
class Settings:
  """What `Reconstructor` does.

  Attributes:
    face_model: "ict" (default), "ict_coarse" or "bfm".
    model_path: model file (default: asset search path).
    min_confidence: detector threshold.
    all_faces: reconstruct every face of a photo (NAME_face0, NAME_face1, ...), not only
      the most confident one.
    batch_size: faces fitted / refined together.
    fit_config: the coarse fitting schedule.
    fit_identity: the coarse fit uses the identity loss (an identity-network pass per step).
    albedo_source: "photo": the photo decides the albedo where it shows the face, the GCN
      (or the coarse albedo) fills the rest; "gcn": the GCN's output everywhere (the
      paper's T'; needs refine steps or a checkpoint). See `pipeline.refine`.
    refine_steps: per-image GCN steps filling what the photo does not show (0: no GCN;
      the fine albedo is the photo's, shading divided out, with the mirror / coarse fill).
    rnet_checkpoint: a trained R-Net (``rnet.weights.h5`` from ``train.py --stage=rnet``,
      with its ``rnet.json`` beside it) or Deep3DFace's ``FaceReconModel.pb`` (BFM): the
      coarse coefficients come from it, feed-forward, instead of fitting.
    gcn_checkpoint: a trained generator (``train.py --stage=gcn``). With ``refine_steps=0``
      it is run feed-forward (the paper's inference); with N > 0 steps it is fine-tuned on
      each photo at a low learning rate (`refinement.feed_forward.FINE_TUNE_LEARNING_RATE`).
      Its saved spec decides the identity encoder, order and widths.
    identity_weights: the identity network file a checkpoint's spec needs besides the
      bundled dlib one (FaceNet's frozen ``.pb``; default: the asset search path).
    learned_occlusion: the coarse fit's occlusion estimate also uses the occluder network
      (`networks.occluder_net`; a skin-coloured hand is found by its shape).
    occluder_net: its weights (``.npz`` of `scripts/train_occluders.py`); default: the
      asset search path, then the weights the project ships.
    formats: export formats (`writer.FORMATS`).
    texture_size: UV texture side.
    overwrite: redo faces whose outputs exist.
  """
  face_model: str = "ict"
  model_path: Optional[str] = None
  min_confidence: float = 0.9
  all_faces: bool = False
  batch_size: int = 4
  fit_config: FitConfig = presets.PRESETS[presets.DEFAULT_PRESET].fit_config()
  fit_identity: bool = presets.PRESETS[presets.DEFAULT_PRESET].fit_identity
  refine_steps: int = presets.PRESETS[presets.DEFAULT_PRESET].refine_steps
  albedo_source: str = "photo"
  rnet_checkpoint: Optional[str] = None
  gcn_checkpoint: Optional[str] = None
  identity_weights: Optional[str] = None
  learned_occlusion: bool = True
  occluder_net: Optional[str] = None
  formats: Tuple[str, ...] = writer.DEFAULT_FORMATS
  texture_size: int = 1024
  overwrite: bool = False

  def __post_init__(self):
    if self.albedo_source not in ("photo", "gcn"):
      raise ValueError(f"albedo_source must be 'photo' or 'gcn', got {self.albedo_source!r}")
    if self.albedo_source == "gcn" and not self.refines:
      raise ValueError("albedo_source 'gcn' needs a GCN: refine_steps > 0 or a gcn_checkpoint")
    if self.batch_size < 1:
      raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
    if self.refine_steps < 0:
      raise ValueError(f"refine_steps must be >= 0, got {self.refine_steps}")
    object.__setattr__(self, "formats", writer.check_formats(self.formats))

  @classmethod
  def from_preset(cls, name: str = presets.DEFAULT_PRESET, **overrides) -> "Settings":
    """Settings of the named preset (`pipeline.presets`), with `overrides` on top."""
    preset = presets.get_preset(name)
    values = dict(fit_config=preset.fit_config(), fit_identity=preset.fit_identity,
                  refine_steps=preset.refine_steps)
    values.update(overrides)
    return cls(**values)

  @property
  def refines(self) -> bool:
    """Whether a GCN refinement stage runs (steps to take, or a generator to run)."""
    return self.refine_steps > 0 or bool(self.gcn_checkpoint)


__all__ = ["Settings"]
