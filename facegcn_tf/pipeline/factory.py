"""Everything a reconstruction run needs, built once: `Components` and `build_components`."""

import dataclasses
from typing import Callable, Optional, Union

import tensorflow as tf

from facegcn_tf.assets import loaders
from facegcn_tf.data.preprocess import FacePreprocessor
from facegcn_tf.fitting.fitter import Fitter
from facegcn_tf.morphable import head as head_lib
from facegcn_tf.morphable import load_fitting_model, load_model
from facegcn_tf.morphable.model import MorphableModel
from facegcn_tf.networks.identity import IdentityEncoder
from facegcn_tf.pipeline.settings import Settings
from facegcn_tf.refinement import feed_forward
from facegcn_tf.refinement import generator_spec
from facegcn_tf.refinement import per_image
from facegcn_tf.render.renderer import FaceRenderer


@dataclasses.dataclass
class Components:
  """The models of a run.

  Attributes:
    model: the texture mesh's face model (what is exported).
    renderer: renders `model` at the aligned crop size.
    fit_renderer: renders the coarser mesh the coefficients are fitted on (ICT: the
      9,409-vertex face shares the subdivided model's coefficients exactly), or None to
      fit on `model` itself.
    preprocessor: detection, dense landmarks, alignment, masks.
    identity: the identity encoder (aligned crops -> features).
    refiner: the GCN refinement: a trained generator run feed-forward
      (`feed_forward.FeedForwardRefiner`), or per-image optimisation (`per_image.PerImageRefiner`,
      from scratch or fine-tuning a trained generator); None when the run does not refine.
    rnet: a feed-forward coarse regressor, crops [B, S, S, 3] 0..255 -> [B, N], or None
      to fit.
    fitter: the coarse fitter, built once so its traced steps serve every batch (None
      with an R-Net).
    head_model: the whole ICT head the ``head`` format exports (None for other models or
      when the run does not export it).
  """
  model: MorphableModel
  renderer: FaceRenderer
  fit_renderer: Optional[FaceRenderer]
  preprocessor: FacePreprocessor
  identity: IdentityEncoder
  refiner: Optional[Union[feed_forward.FeedForwardRefiner, per_image.PerImageRefiner]]
  rnet: Optional[Callable[[tf.Tensor], tf.Tensor]]
  fitter: Optional[Fitter] = None
  head_model: Optional[head_lib.HeadModel] = None


def _build_refiner(settings: Settings, renderer: FaceRenderer, identity):
  """Feed-forward (a checkpoint, 0 steps), fine-tuning (a checkpoint, N steps, low learning
  rate) or per-image refinement from scratch (N steps)."""
  checkpoint = settings.gcn_checkpoint
  if not checkpoint:
    return per_image.PerImageRefiner(renderer, identity,
                                     per_image.PerImageConfig(steps=settings.refine_steps))
  spec = generator_spec.load_spec(checkpoint)
  if spec.face_model != renderer.model.name:
    raise ValueError(f"the generator at '{checkpoint}' was trained on face model "
                     f"'{spec.face_model}', not '{renderer.model.name}'")
  encoder = identity if spec.identity == identity.kind else loaders.load_identity_encoder(
      spec.identity, weights_path=settings.identity_weights)
  feed_forward.check_encoder(spec, encoder, f"the generator at '{checkpoint}'")
  if settings.refine_steps == 0:
    return feed_forward.FeedForwardRefiner(renderer, encoder, checkpoint)
  config = per_image.PerImageConfig(steps=settings.refine_steps,
                                    learning_rate=feed_forward.FINE_TUNE_LEARNING_RATE)
  return per_image.PerImageRefiner(renderer, encoder, config, checkpoint)


def build_components(settings: Settings) -> Components:
  """Loads the face models and networks `settings` asks for.

  Raises:
    AssetNotFoundError, ValueError: a missing or unfitting model, weight or checkpoint
      file (the message names it and where it goes).
  """
  model = load_model(settings.face_model, settings.model_path)
  renderer = FaceRenderer(model)
  coarse_model = load_fitting_model(settings.face_model, settings.model_path)
  identity = loaders.load_identity_encoder("dlib", template5=model.template5)
  refiner = _build_refiner(settings, renderer, identity) if settings.refines else None
  rnet = (loaders.load_rnet_predictor(settings.rnet_checkpoint, model.layout)
          if settings.rnet_checkpoint else None)
  fit_renderer = FaceRenderer(coarse_model) if coarse_model is not None else None
  # The network only serves the fitter's occlusion estimate: not loaded without one.
  segments = rnet is None and settings.fit_config.occlusion is not None
  occluder_net = (loaders.load_occluder_net(settings.occluder_net)
                  if settings.learned_occlusion and segments else None)
  fitter = (None if rnet is not None else
            Fitter(renderer, identity if settings.fit_identity else None, settings.fit_config,
                   fit_renderer=fit_renderer, occluder_net=occluder_net))
  return Components(
      model=model, renderer=renderer, fit_renderer=fit_renderer,
      preprocessor=FacePreprocessor(model.template5, min_confidence=settings.min_confidence),
      identity=identity, refiner=refiner, rnet=rnet, fitter=fitter,
      head_model=load_head_model(model, settings))


def load_head_model(model: MorphableModel, settings: Settings) -> Optional[head_lib.HeadModel]:
  """The ICT head when the run exports ``head`` with an ICT face model, else None."""
  if "head" not in tuple(getattr(settings, "formats", ()) or ()) or not model.name.startswith("ict"):
    return None
  return head_lib.load_head()


__all__ = ["Components", "build_components", "load_head_model"]
