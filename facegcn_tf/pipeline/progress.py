"""A batch run's progress: which face is in which stage, how many are settled, the ETA.

On a terminal it is a `tqdm` bar over the photos whose description names the faces in
flight and their stage (prepare -> fit -> refine -> assemble -> export); elsewhere (a log
file, a pipe) it is one plain line on stderr per stage change:

    progress: 2/3 photos settled | c_astronaut: fit | 1 done, 1 failed | 0:21 elapsed, ETA 0:11

The ETA is the mean wall time per settled photo so far times the photos left, less the
time already spent since the last photo settled (so it counts down between two photos;
unknown until a photo has settled).
"""

import sys
import time
from typing import Optional, Sequence, TextIO

STAGES = ("prepare", "fit", "refine", "assemble", "export")


def _clock(seconds: float) -> str:
  seconds = int(round(seconds))
  hours, rest = divmod(seconds, 3600)
  return (f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours
          else f"{rest // 60}:{rest % 60:02d}")


class Progress:
  """Reports a batch run's progress (see the module docstring).

  Args:
    total: photos in the run.
    enabled: False: report nothing.
    stream: where to write (default: stderr).
    terminal: draw a tqdm bar (default: whether `stream` is a terminal).
  """

  def __init__(self, total: int, enabled: bool = True, stream: Optional[TextIO] = None,
               terminal: Optional[bool] = None):
    self.total = int(total)
    self.enabled = bool(enabled)
    self.stream = stream if stream is not None else sys.stderr
    self.terminal = (bool(terminal) if terminal is not None
                     else bool(getattr(self.stream, "isatty", lambda: False)()))
    self.settled = 0
    self.done = 0
    self.failed = 0
    self.start = time.perf_counter()
    self._last_settled = self.start
    self._bar = None
    if self.enabled and self.terminal:
      from tqdm import tqdm  # pylint: disable=import-outside-toplevel
      self._bar = tqdm(total=self.total, unit="photo", file=self.stream, dynamic_ncols=True)

  def eta(self) -> Optional[float]:
    """Seconds left, from the mean time per settled photo (None before the first)."""
    if self.settled == 0:
      return None
    mean = (self._last_settled - self.start) / self.settled
    since = time.perf_counter() - self._last_settled
    return max(0.0, mean * max(0, self.total - self.settled) - since)

  def line(self, names: Sequence[str], stage: str) -> str:
    """The plain progress line for faces `names` entering `stage`."""
    elapsed = time.perf_counter() - self.start
    eta = self.eta()
    return (f"progress: {self.settled}/{self.total} photos settled | {', '.join(names)}: "
            f"{stage} | {self.done} done, {self.failed} failed | {_clock(elapsed)} elapsed, "
            f"ETA {'?' if eta is None else _clock(eta)}")

  def stage(self, names: Sequence[str], stage: str) -> None:
    """Faces `names` enter `stage` (one of `STAGES`)."""
    if not self.enabled:
      return
    if self._bar is not None:
      self._bar.set_description_str(f"{', '.join(names)}: {stage}", refresh=False)
      self._bar.set_postfix_str(f"{self.done} done, {self.failed} failed")
      return
    print(self.line(names, stage), file=self.stream, flush=True)

  def face(self, ok: bool) -> None:
    """One face was written (`ok`) or failed."""
    if ok:
      self.done += 1
    else:
      self.failed += 1

  def photo_settled(self) -> None:
    """One photo is settled: all its faces written or failed, or it was skipped or failed."""
    self.settled += 1
    self._last_settled = time.perf_counter()
    if self._bar is not None:
      self._bar.set_postfix_str(f"{self.done} done, {self.failed} failed", refresh=False)
      self._bar.update(1)

  def close(self) -> None:
    if self._bar is not None:
      self._bar.close()


__all__ = ["Progress", "STAGES"]
