"""Photos in, `FaceResult`s out: the stages of one reconstruction, in order.

    prepare (load, detect, align, masks, identity features)  -> PreparedPhoto
    coarse  (fit or R-Net; the fitted face rendered once)     -> CoarseFit
    refine  (GCN on the coarse geometry and raster)           -> Refinement
    assemble (panels and figures from what the stages kept)   -> FaceResult
    FaceResult.save                                            -> files
"""

import pathlib
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import numpy as np

from facegcn_tf import storage
from facegcn_tf.data.image_io import load_image
from facegcn_tf.errors import FaceGCNError
from facegcn_tf.export.result import FaceResult
from facegcn_tf.pipeline import assemble
from facegcn_tf.pipeline.coarse import coarse_fit
from facegcn_tf.pipeline.factory import Components, build_components
from facegcn_tf.pipeline.refine import refine
from facegcn_tf.pipeline.settings import Settings
from facegcn_tf.pipeline.stages import FaceBatch, PreparedPhoto


class Reconstructor:
  """Holds a run's models (built once) and reconstructs photos or batches of faces.

  Args:
    settings: the `Settings`.
    components: prebuilt models (default: `build_components(settings)`).

  Example:
    >>> result = Reconstructor.from_settings(refine_steps=50).reconstruct("me.jpg")
    >>> result.save("out/")
  """

  def __init__(self, settings: Settings = Settings(), components: Optional[Components] = None):
    self.settings = settings
    self.components = components if components is not None else build_components(settings)

  @classmethod
  def from_settings(cls, **settings) -> "Reconstructor":
    """A reconstructor for `Settings(**settings)`."""
    return cls(Settings(**settings))

  @property
  def model(self):
    return self.components.model

  def prepare(self, path: Union[str, pathlib.Path]) -> PreparedPhoto:
    """Loads one photo, finds its face(s), aligns them and computes their identity features.

    Raises:
      FaceGCNError, ValueError, OSError: a bad input (unreadable file, no face, ...).
    """
    path = storage.as_path(path)
    rgb = load_image(path).rgb
    preprocessor = self.components.preprocessor
    if self.settings.all_faces:
      faces = preprocessor.prepare_all_faces(rgb, str(path))
    else:
      faces = [preprocessor.prepare_image(rgb, str(path))]
    crops = np.stack([f.aligned.image for f in faces]).astype(np.float32)
    features = self.components.identity(crops).numpy()
    return PreparedPhoto(path=path, photo=rgb, faces=faces, features=features)

  def reconstruct_faces(self, photos: Sequence[PreparedPhoto], indices: Sequence[int],
                        names: Sequence[str],
                        extras: Optional[Sequence[Dict[str, Any]]] = None,
                        on_stage: Optional[Callable[[str], None]] = None) -> List[FaceResult]:
    """Coarse fit, refinement and assembly of a batch of prepared faces.

    Args:
      photos: per face, the prepared photo it belongs to.
      indices: per face, its index in that photo's faces.
      names: per face, its output name.
      extras: per face, run facts for its report.
      on_stage: called with "fit", "refine" and "assemble" as each stage begins
        (progress reporting).
    """
    report = on_stage or (lambda stage: None)
    faces = [p.faces[k] for p, k in zip(photos, indices)]
    batch = FaceBatch.stack(faces, [p.features[k] for p, k in zip(photos, indices)])
    report("fit")
    coarse = coarse_fit(self.components, batch, self.settings.fit_config)
    report("refine")
    refinement = refine(self.components, batch, coarse, self.settings.albedo_source)
    report("assemble")
    return assemble.face_results(self.components, faces, names, [p.photo for p in photos],
                                 batch, coarse, refinement, extras or [{} for _ in faces])

  def reconstruct_photo(self, path: Union[str, pathlib.Path],
                        name: Optional[str] = None) -> List[FaceResult]:
    """Every face `settings` asks for in one photo (one, or all with `all_faces`)."""
    prepared = self.prepare(path)
    stem = name or pathlib.Path(path).stem
    count = len(prepared.faces)
    names = ([f"{stem}_face{k}" for k in range(count)] if self.settings.all_faces else [stem])
    results = []
    for start in range(0, count, self.settings.batch_size):
      ids = list(range(start, min(count, start + self.settings.batch_size)))
      results += self.reconstruct_faces([prepared] * len(ids), ids, [names[k] for k in ids],
                                        [{"faces_in_photo": count} for _ in ids])
    return results

  def reconstruct(self, path: Union[str, pathlib.Path]) -> FaceResult:
    """The most confident face of one photo (the first with `all_faces`)."""
    results = self.reconstruct_photo(path)
    if not results:
      raise FaceGCNError(f"{path}: no face reconstructed")
    return results[0]


__all__ = ["Reconstructor"]
