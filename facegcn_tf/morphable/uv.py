"""A UV layout for face meshes that ship none (BFM): cylindrical projection.

The face is unrolled around a vertical (y) axis placed behind it:
``u ~ R * atan2(x - cx, z - cz)`` (arc length on a cylinder of radius R,
increasing towards +x, the subject's left) and ``v ~ y`` (up), with one
common scale so texels are roughly square, then fitted into [0, 1] with a
small border. The axis is at the centroid's x and ``cz = max z - W / 2``
(W = the mesh's x extent), i.e. the face is treated as the front half of a
head of width W. A face mesh (a height field seen from the front) maps
without folds, and the sides get more texels than a frontal orthographic
projection would give them.
"""

import numpy as np


def cylindrical_uv(vertices: np.ndarray, border: float = 0.01) -> np.ndarray:
  """Cylindrical UVs, ``[V, 2]`` float32 in [border, 1 - border].

  Args:
    vertices: ``[V, 3]``, +y up, +z towards the viewer.
    border: empty margin on each side of the unit square.

  Returns:
    ``[V, 2]`` float32; the longer side of the layout spans
    ``[border, 1 - border]``, the other is centred.
  """
  v = np.asarray(vertices, dtype=np.float64)
  if v.ndim != 2 or v.shape[1] != 3 or len(v) < 3:
    raise ValueError(f"vertices must have shape [V >= 3, 3], got {v.shape}")
  if not 0 <= border < 0.5:
    raise ValueError(f"border must be in [0, 0.5), got {border}")
  width = float(np.ptp(v[:, 0]))
  if not width > 0:
    raise ValueError("vertices have no extent in x")
  radius = 0.5 * width
  cx, cz = float(v[:, 0].mean()), float(v[:, 2].max()) - radius
  angle = np.arctan2(v[:, 0] - cx, v[:, 2] - cz)
  flat = np.stack([radius * angle, v[:, 1]], axis=1)
  low, extent = flat.min(0), np.ptp(flat, axis=0)
  size = float(extent.max())
  out = (flat - low) / size  # longer side spans [0, 1]
  out += 0.5 * (1.0 - extent / size)  # centre the shorter side
  return (border + (1.0 - 2.0 * border) * out).astype(np.float32)
