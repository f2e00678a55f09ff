"""Named speed/quality schedules: ``--preset fast|default|best``.

Every preset runs the same stages (fit with occlusion segmentation, albedo solved from the
photo, mirror fill); they differ in how long the coarse fit runs, whether it uses the
identity loss, and whether the per-image GCN fills the parts the photo does not show.
Measured costs are in README.md and docs/benchmarks.md
(``python scripts/benchmark.py --suites=infer``).
"""

import dataclasses
from typing import Dict

from facegcn_tf.fitting.fitter import FitConfig


@dataclasses.dataclass(frozen=True)
class Preset:
  """A schedule.

  Attributes:
    fit_scale: `FitConfig.scaled` factor of the coarse fitting schedule.
    fit_identity: use the identity loss while fitting (an identity-network pass per step).
    refine_steps: per-image GCN steps (0: no GCN; the photo's albedo and the mirror fill,
      with the coarse 3DMM albedo where neither sees the face).
  """
  fit_scale: float
  fit_identity: bool
  refine_steps: int

  def fit_config(self) -> FitConfig:
    return FitConfig().scaled(self.fit_scale)


PRESETS: Dict[str, Preset] = {
    "fast": Preset(fit_scale=0.12, fit_identity=False, refine_steps=0),
    "default": Preset(fit_scale=0.3, fit_identity=False, refine_steps=0),
    "best": Preset(fit_scale=1.0, fit_identity=True, refine_steps=150),
}
DEFAULT_PRESET = "default"


def get_preset(name: str) -> Preset:
  """The preset called `name`; ValueError naming the choices otherwise."""
  try:
    return PRESETS[name]
  except KeyError:
    raise ValueError(f"unknown preset '{name}'; choose one of {', '.join(PRESETS)}") from None


__all__ = ["DEFAULT_PRESET", "PRESETS", "Preset", "get_preset"]
