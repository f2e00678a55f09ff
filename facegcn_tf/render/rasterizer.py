"""Batched, differentiable rasterization with Google's tf_mesh_renderer op.

The C++ kernels (`RasterizeTriangles`, `RasterizeTrianglesGrad`) are built by
``bazel build //third_party:rasterizer`` from tf_mesh_renderer's sources. The op
rasterizes ONE clip-space mesh per call and trusts its inputs (an out-of-range
triangle index reads out of bounds). This wrapper adds what a library needs:

* finding and loading the op library (flag -> ``$FACEGCN_RASTERIZER`` -> Bazel output),
  with an error that says how to build it;
* the gradient, through ``RasterizeTrianglesGrad`` (barycentrics -> vertices);
* a batch axis of dynamic size, eager and inside ``tf.function``;
* static output shapes;
* input validation before anything reaches C++.

Image convention of the outputs: row 0 is the TOP of the image (NDC y = +1), column 0
is the left (NDC x = -1); pixel centres sit at half-integers. The raw op writes row 0 at
NDC y = -1; the wrapper flips it.
"""

import collections
import os
import pathlib
import threading
from typing import Optional, Sequence, Tuple, Union

import tensorflow as tf

from facegcn_tf import assets
from facegcn_tf.errors import RasterizerNotBuiltError

ENV_VAR = "FACEGCN_RASTERIZER"
LIBRARY_NAME = "rasterize_triangles_kernel.so"
BAZEL_OUTPUT = assets.REPO_ROOT / "bazel-bin" / "third_party" / LIBRARY_NAME

RasterOutput = collections.namedtuple(
    "RasterOutput", ["barycentrics", "triangle_ids", "z_buffer", "mask"])
RasterOutput.__doc__ = """Rasterization buffers, image convention (row 0 = top).

barycentrics: [B, H, W, 3] float32, perspective-correct barycentric coordinates of the
  visible triangle's corners (in the order of its `triangles` row); zeros on background.
triangle_ids: [B, H, W] int32, index of the visible triangle; 0 on background (use `mask`).
z_buffer: [B, H, W] float32, NDC depth in [-1, 1] of the visible surface; 1 on background.
mask: [B, H, W] float32, 1 where a triangle covers the pixel centre, else 0.
"""

_LOAD_LOCK = threading.Lock()
_LOADED = {}  # resolved path -> op module; TF keeps loaded op libraries process-wide anyway.


def find_op_library(explicit: Optional[Union[str, os.PathLike]] = None) -> pathlib.Path:
  """Finds the compiled op library.

  Search order: `explicit` (a flag value) -> ``$FACEGCN_RASTERIZER`` -> the Bazel output
  ``bazel-bin/third_party/rasterize_triangles_kernel.so`` of this checkout.

  Raises:
    RasterizerNotBuiltError: none exists; the message says how to build it.
  """
  candidates = []
  if explicit:
    candidates.append(pathlib.Path(explicit).expanduser())
  if os.environ.get(ENV_VAR):
    candidates.append(pathlib.Path(os.environ[ENV_VAR]).expanduser())
  candidates.append(BAZEL_OUTPUT)
  for path in candidates:
    if path.is_file():
      return path.resolve()
  raise RasterizerNotBuiltError(
      "the tf_mesh_renderer rasterizer op is not built (looked for: "
      + ", ".join(str(p) for p in candidates)
      + "). Build it with `bazel build //third_party:rasterizer` (or `bash scripts/setup.sh`), "
      f"or point ${ENV_VAR} at a built {LIBRARY_NAME}.")


def load_op_library(path: Optional[Union[str, os.PathLike]] = None):
  """Loads the op library once per path and registers the gradient of the op."""
  resolved = find_op_library(path)
  with _LOAD_LOCK:
    module = _LOADED.get(resolved)
    if module is None:
      module = tf.load_op_library(str(resolved))
      _register_gradient(module)
      _LOADED[resolved] = module
  return module


def _register_gradient(module) -> None:
  """Registers RasterizeTriangles' gradient (TF's registry is process-wide: once)."""

  def _rasterize_triangles_grad(op, df_dbarycentrics, unused_df_dids, unused_df_dz):
    df_dvertices = module.rasterize_triangles_grad(
        op.inputs[0], op.inputs[1], op.outputs[0], op.outputs[1], df_dbarycentrics,
        image_width=op.get_attr("image_width"), image_height=op.get_attr("image_height"))
    return [df_dvertices, None]

  try:
    tf.RegisterGradient("RasterizeTriangles")(_rasterize_triangles_grad)
  except KeyError:  # already registered by an earlier load (another path, same op)
    pass


def _check_image_size(image_size: Sequence[int]) -> Tuple[int, int]:
  try:
    height, width = (int(s) for s in image_size)
  except (TypeError, ValueError):
    raise ValueError(f"image_size must be (height, width), got {image_size!r}") from None
  if height <= 0 or width <= 0:
    raise ValueError(f"image_size must be positive, got {height}x{width}")
  return height, width


def _check_inputs(clip_vertices, triangles):
  """Converts and validates (static checks in Python, value checks as TF asserts)."""
  clip_vertices = tf.convert_to_tensor(clip_vertices)
  if not clip_vertices.dtype.is_floating:
    raise ValueError(f"clip_vertices must be floating point, got {clip_vertices.dtype.name}")
  clip_vertices = tf.cast(clip_vertices, tf.float32)
  if clip_vertices.shape.rank != 3 or clip_vertices.shape[-1] != 4:
    raise ValueError(
        f"clip_vertices must have shape [B, V, 4] (clip-space xyzw), got {clip_vertices.shape}")
  triangles = tf.convert_to_tensor(triangles)
  if not triangles.dtype.is_integer:
    raise ValueError(f"triangles must be integer, got {triangles.dtype.name}")
  triangles = tf.cast(triangles, tf.int32)
  if triangles.shape.rank not in (2, 3) or triangles.shape[-1] != 3:
    raise ValueError(f"triangles must have shape [F, 3] or [B, F, 3], got {triangles.shape}")

  num_vertices = tf.shape(clip_vertices)[1]
  checks = [
      tf.debugging.assert_all_finite(clip_vertices, "clip_vertices contain NaN or Inf"),
      tf.debugging.assert_non_negative(triangles, message="triangle indices must be >= 0"),
      tf.debugging.assert_less(
          triangles, num_vertices,
          message="triangle indices must be < the number of vertices V"),
  ]
  if triangles.shape.rank == 3:
    checks.append(tf.debugging.assert_equal(
        tf.shape(triangles)[0], tf.shape(clip_vertices)[0],
        message="per-example triangles need the same batch size as clip_vertices"))
  with tf.control_dependencies(checks):
    return tf.identity(clip_vertices), tf.identity(triangles)


def rasterize(clip_vertices: tf.Tensor,
              triangles: tf.Tensor,
              image_size: Sequence[int],
              op_library: Optional[Union[str, os.PathLike]] = None) -> RasterOutput:
  """Rasterizes a batch of clip-space meshes.

  Args:
    clip_vertices: [B, V, 4] float, clip-space (x, y, z, w) per vertex. B may be dynamic.
    triangles: [F, 3] int (shared by the batch) or [B, F, 3] int (one mesh per example;
      pad meshes with fewer triangles with degenerate rows such as [0, 0, 0], which never
      cover a pixel). Both windings are drawn (no back-face culling).
    image_size: (height, width) in pixels, positive.
    op_library: optional path of the compiled op (see `find_op_library`).

  Returns:
    A `RasterOutput` with [B, H, W, ...] buffers, row 0 at the top of the image.
    Gradients flow from `barycentrics` to `clip_vertices`.

  Raises:
    ValueError: wrong rank, dtype or image size (at call time).
    tf.errors.InvalidArgumentError: NaN/Inf vertices or out-of-range indices (when run).
    RasterizerNotBuiltError: the op library is missing.
  """
  height, width = _check_image_size(image_size)
  module = load_op_library(op_library)
  clip_vertices, triangles = _check_inputs(clip_vertices, triangles)
  per_example_triangles = triangles.shape.rank == 3

  def _one(args):
    vertices = args[0]
    tris = args[1] if per_example_triangles else triangles
    bary, ids, z = module.rasterize_triangles(vertices, tris, image_width=width,
                                              image_height=height)
    return bary, ids, z

  if tf.executing_eagerly():
    # A plain loop: map_fn's TensorArray machinery costs ~1 ms per image in eager mode.
    parts = [_one((clip_vertices[i], triangles[i] if per_example_triangles else None))
             for i in range(int(clip_vertices.shape[0]))]
    bary, ids, z = (tf.stack(p) for p in zip(*parts)) if parts else (
        tf.zeros([0, height, width, 3]), tf.zeros([0, height, width], tf.int32),
        tf.zeros([0, height, width]))
  else:
    # Inside tf.function: dynamic batch, images rasterized in parallel on the CPU cores.
    elems = (clip_vertices, triangles) if per_example_triangles else (clip_vertices,)
    bary, ids, z = tf.map_fn(
        _one, elems,
        fn_output_signature=(tf.TensorSpec([height, width, 3], tf.float32),
                             tf.TensorSpec([height, width], tf.int32),
                             tf.TensorSpec([height, width], tf.float32)),
        parallel_iterations=8)
  # The op's row 0 is NDC y = -1 (bottom); flip to image convention.
  bary = tf.reverse(bary, axis=[1])
  ids = tf.reverse(ids, axis=[1])
  z = tf.reverse(z, axis=[1])
  mask = tf.cast(tf.reduce_sum(bary, axis=-1) > 0.5, tf.float32)
  batch = clip_vertices.shape[0]
  bary.set_shape([batch, height, width, 3])
  ids.set_shape([batch, height, width])
  z.set_shape([batch, height, width])
  mask.set_shape([batch, height, width])
  return RasterOutput(bary, ids, z, mask)
