"""Morphable models: ICT load times (coarse / subdivided) and their main steps, numpy shape eval.

BFM is user-supplied and not timed here.
"""

import time

import numpy as np

from benchmarks._timing import time_ms
from facegcn_tf.morphable import albedo
from facegcn_tf.morphable import ict
from facegcn_tf.morphable import regions
from facegcn_tf.morphable import symmetry

TITLE = "Morphable models: ICT load (coarse 9,409 V / subdivided ~37k V), albedo basis, skin mask"


def _seconds(fn, repeats: int) -> float:
  """Median wall-clock seconds of ``fn()`` (no warm-up: loads are one-off)."""
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def run(quick: bool):
  repeats = 1 if quick else 3
  coarse = ict.load_ict(subdivide=False)  # also warms the file cache and imports
  fine = ict.load_ict(subdivide=True)
  rows = [
      ("load_ict(subdivide=False)", _seconds(lambda: ict.load_ict(subdivide=False), repeats), "s"),
      ("load_ict(subdivide=True)", _seconds(lambda: ict.load_ict(subdivide=True), repeats), "s"),
      ("coarse mesh vertices", coarse.num_vertices, "count"),
      ("subdivided mesh vertices", fine.num_vertices, "count"),
      ("subdivided mesh triangles", fine.num_triangles, "count"),
  ]
  v, t, lm = coarse.mean_shape, coarse.triangles, coarse.landmarks68
  rows.append(("stand-in albedo basis, 80 modes (eigsh on coarse mesh)",
               _seconds(lambda: albedo.albedo_basis(v, t, 80), repeats), "s"))
  fv, ft = fine.mean_shape, fine.triangles
  rows.append(("skin mask, subdivided mesh",
               _seconds(lambda: regions.skin_mask(fv, ft, lm), repeats), "s"))
  rows.append(("symmetry pairs, subdivided mesh",
               _seconds(lambda: symmetry.mesh_mirror_pairs(fv, ft), repeats), "s"))
  rng = np.random.default_rng(0)
  alpha = rng.standard_normal(100).astype(np.float32)
  beta = rng.uniform(0, 1, 53).astype(np.float32)
  rows.append(("MorphableModel.shape (numpy), subdivided, 1 face",
               time_ms(lambda: fine.shape(alpha, beta), repeats=3 if quick else 10), "ms"))
  return rows
