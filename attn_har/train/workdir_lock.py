"""One run per workdir: `WorkdirLock` holds an exclusive `fcntl` lock on `<workdir>/run.lock` while a run lives.

The lock file names its holder (pid, host, start time). The operating system drops the lock when the holder's
process ends, however it ends (a SIGKILLed run included), so a stale lock file is simply taken over. A second
launch fails at once with `WorkdirLockedError` naming the holder.
"""

import fcntl
import json
import os
import pathlib
import socket
import time

LOCK_FILE = "run.lock"


class WorkdirLockedError(RuntimeError):
  """Another live process is running in this workdir."""


class WorkdirLock:
  """Context manager: `with WorkdirLock(workdir): ...` (process 0 of a run takes it)."""

  def __init__(self, workdir):
    self.path = pathlib.Path(workdir) / LOCK_FILE
    self._fd = None

  def acquire(self) -> "WorkdirLock":
    self.path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = os.read(fd, 4096).decode(errors="replace").strip()
      os.close(fd)
      try:
        h = json.loads(holder)
        who = f"pid {h['pid']} on host {h['host']}, started {h['started']}"
      except (ValueError, KeyError, TypeError):
        who = "another process"
      raise WorkdirLockedError(f"{self.path.parent} is in use by {who}; wait for that run to finish or use "
                               f"another --workdir") from None
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                             "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}).encode())
    os.fsync(fd)
    self._fd = fd
    return self

  def release(self) -> None:
    if self._fd is not None:
      fcntl.flock(self._fd, fcntl.LOCK_UN)
      os.close(self._fd)
      self._fd = None

  def __enter__(self) -> "WorkdirLock":
    return self.acquire()

  def __exit__(self, *exc) -> None:
    self.release()
