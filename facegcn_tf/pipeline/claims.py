"""Claims on output names, so two runs writing one folder share the work instead of redoing it.

A run claims a photo's output name before it prepares the photo by creating
``.NAME.claim`` in the output folder with ``O_CREAT | O_EXCL`` (atomic on local file
systems and NFSv3+). The file records the claiming process (host, pid, start time). Another
run that finds a claim:

* skips the photo while the claimant is alive (same host and the pid exists);
* takes the claim over when the claimant is gone (a run killed with ``kill -9`` leaves its
  claims behind), or, for a claim from another host, once it is older than `STALE_SECONDS`.

Claims are released (deleted) when the photo's faces are written, fail, or are interrupted.
"""

import dataclasses
import json
import os
import pathlib
import socket
import time
from typing import Optional, Tuple

STALE_SECONDS = 6 * 3600.0


@dataclasses.dataclass(frozen=True)
class Claim:
  """A held claim: its file and the token written into it."""
  path: pathlib.Path
  token: str

  def release(self) -> None:
    """Deletes the claim file if it is still ours (never raises)."""
    try:
      if json.loads(self.path.read_text()).get("token") == self.token:
        self.path.unlink()
    except (OSError, ValueError):
      pass


def claim_path(output_dir: pathlib.Path, name: str) -> pathlib.Path:
  return pathlib.Path(output_dir) / f".{name}.claim"


def _record() -> dict:
  return {"host": socket.gethostname(), "pid": os.getpid(), "time": time.time(),
          "token": f"{socket.gethostname()}:{os.getpid()}:{time.time_ns()}"}


def _pid_alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # exists, owned by someone else
    return True
  except OSError:
    return False
  return True


def holder(path: pathlib.Path) -> Optional[str]:
  """Who holds the claim at `path`, as text, if its holder is alive; None if it is stale."""
  try:
    record = json.loads(path.read_text())
    host, pid, started = str(record["host"]), int(record["pid"]), float(record["time"])
  except (OSError, ValueError, KeyError, TypeError):
    return None  # unreadable (half-written by a killed run): stale
  if host == socket.gethostname():
    if pid != os.getpid() and _pid_alive(pid):
      return f"pid {pid}"
    return None
  if time.time() - started < STALE_SECONDS:
    return f"pid {pid} on {host}"
  return None


def try_claim(output_dir: pathlib.Path, name: str) -> Tuple[Optional[Claim], str]:
  """Claims `name` in `output_dir`.

  Returns:
    (the claim, "") or (None, a one-line reason naming the live claimant and its file).

  Raises:
    OSError: the folder cannot be written.
  """
  path = claim_path(output_dir, name)
  record = _record()
  data = json.dumps(record).encode()
  for _ in range(3):
    try:
      fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
      live = holder(path)
      if live is not None:
        return None, f"being reconstructed by another run ({live}; claim file {path.name})"
      # Stale: take it over (replace atomically, then check that we won any race).
      temp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
      temp.write_bytes(data)
      os.replace(temp, path)
      try:
        if json.loads(path.read_text()).get("token") == record["token"]:
          return Claim(path, record["token"]), ""
      except (OSError, ValueError):
        pass
      continue
    with os.fdopen(fd, "wb") as f:
      f.write(data)
    return Claim(path, record["token"]), ""
  return None, f"claimed by another run at the same moment (claim file {path.name})"


__all__ = ["Claim", "STALE_SECONDS", "claim_path", "holder", "try_claim"]
