"""Typed errors shared by every stage.

Each error carries a one-line, user-facing message: batch front ends print
``str(err)`` and go on with the next input.
"""


class FaceGCNError(Exception):
  """Base class of every error this package raises on purpose."""


class AssetNotFoundError(FaceGCNError, FileNotFoundError):
  """A model file or other asset is missing; the message says how to get it."""


class ImageLoadError(FaceGCNError, ValueError):
  """An input file could not be read as an image (corrupt, truncated, unsupported)."""


class NoFaceError(FaceGCNError, ValueError):
  """No face was found in an image (or none above the confidence threshold)."""


class RasterizerNotBuiltError(AssetNotFoundError):
  """The tf_mesh_renderer custom op library was not found."""
