"""Timing helper shared by the benchmark suites."""

import time

import numpy as np


def time_ms(fn, repeats: int, warmup: int = 2) -> float:
  """Median wall-clock milliseconds of `fn()` over `repeats` runs after `warmup` runs.

  `fn` must block until its result is ready (call .numpy() on TF outputs).
  """
  for _ in range(warmup):
    fn()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append((time.perf_counter() - start) * 1e3)
  return float(np.median(times))
