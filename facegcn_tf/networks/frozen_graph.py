"""Frozen TF1 GraphDefs (``.pb``) as TF2 functions.

The paper's frozen networks (FaceNet's ``20170512-110547.pb``, Deep3DFace's
``FaceReconModel.pb``) are plain GraphDefs with their weights folded in as
constants. TF2 runs them by importing the GraphDef inside
``tf.compat.v1.wrap_function`` and pruning the wrapped graph to the wanted
feeds and fetches; the result is a differentiable concrete function that works
eagerly and inside ``tf.function``. The caller names the file
(:mod:`facegcn_tf.assets.loaders` finds it on the asset search path).
"""

import pathlib
from typing import Sequence, Union

import tensorflow as tf

from facegcn_tf.errors import AssetNotFoundError

PathLike = Union[str, pathlib.Path]


def read_graph_def(path: PathLike) -> tf.compat.v1.GraphDef:
  """Parses a binary GraphDef.

  Raises:
    AssetNotFoundError: the file does not exist.
    ValueError: the file is not a serialised GraphDef.
  """
  if not pathlib.Path(path).is_file():
    raise AssetNotFoundError(f"frozen graph '{path}' not found")
  graph_def = tf.compat.v1.GraphDef()
  try:
    graph_def.ParseFromString(pathlib.Path(path).read_bytes())
  except Exception as e:  # protobuf raises its own DecodeError type
    raise ValueError(f"'{path}' is not a frozen TensorFlow GraphDef ({e})") from None
  return graph_def


def load_frozen_graph(path: PathLike, inputs: Sequence[str], outputs, description: str):
  """Imports a frozen GraphDef and prunes it to a function.

  Args:
    path: the ``.pb`` file.
    inputs: names of the feed tensors, e.g. ``["input_imgs:0"]``.
    outputs: name of one fetch tensor, or a sequence/dict of names (the
      function then returns the same structure).
    description: what the graph should be, for the error message, e.g.
      ``"a Deep3DFace R-Net graph"``.

  Returns:
    A concrete function taking the feeds positionally, in ``inputs`` order.

  Raises:
    AssetNotFoundError: the file does not exist.
    ValueError: not a GraphDef, or one of the tensors is missing.
  """
  graph_def = read_graph_def(path)

  def _import():
    tf.compat.v1.import_graph_def(graph_def, name="")

  names = list(inputs) + list(tf.nest.flatten(outputs))
  try:
    wrapped = tf.compat.v1.wrap_function(_import, [])
    graph = wrapped.graph
    feeds = [graph.get_tensor_by_name(name) for name in inputs]
    fetches = tf.nest.map_structure(graph.get_tensor_by_name, outputs)
  except (KeyError, ValueError) as e:
    raise ValueError(f"'{path}' is not {description}: it needs {', '.join(names)} "
                     f"({str(e).splitlines()[0]})") from None
  return wrapped.prune(feeds=feeds, fetches=fetches)
