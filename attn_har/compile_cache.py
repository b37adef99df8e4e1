"""The persistent XLA compilation cache, the program cache, and a count of the time spent compiling.

`launch.py`, `python -m attn_har.analyze`, the notebook and the tests call `enable()` before their first
compilation. Compiled programs are then stored under `<cache>/xla` (`attn_har.config.paths.cache_root`), and a
later process that compiles the same program (same model, shapes, flags, jax version and CPU) loads it instead:
a second `python launch.py` or analysis run skips XLA's compile.

  ATTN_HAR_COMPILE_CACHE=DIR   use DIR instead of <cache>/xla
  ATTN_HAR_COMPILE_CACHE=off   no persistent cache, no program cache (also '0', 'false', 'no')

Every program is stored, the small eager ones too (`MIN_COMPILE_SECONDS` = 0: on a smoke run they add about 2 s
of 20-ms compiles); the cache keeps at most `MAX_BYTES`, evicting the least recently used entries.

XLA's cache still leaves every process tracing its functions to jaxprs and lowering them to StableHLO (the key
is computed from the lowered module). `enable()` therefore also turns on the program cache in `<DIR>/programs`
(`attn_har.train.program_cache`): train.py's init, train and eval steps are exported once with `jax.export`
and later processes load the StableHLO instead of tracing. What is left of a warm launch's compile phase is
mostly XLA:CPU deserialising the stored executables: for the default `python launch.py` about 17 s of 24 s for
the train step and 3 s for the init (a cost that grows with the number of YNNPACK fusions and thunks of a
program, not with its compile time), then about 2 s of the BatchNorm recalibration's small eager ops and 1 s
lowering the exported modules. Deleting the folder is always safe.

`CompileClock` counts, as "compiling", jax's trace, lower-to-MLIR and backend-compile (or cache-load) events
and the program cache's own load or export work (`counted_as_compiling`).
"""

import contextlib
import os
import pathlib
import threading
import time
from typing import Dict, Iterator, Optional

ENV = "ATTN_HAR_COMPILE_CACHE"
OFF = ("off", "0", "false", "no")
MIN_COMPILE_SECONDS = 0.0
MAX_BYTES = 4 << 30

# jax.monitoring events that together make up "compiling": tracing to a jaxpr, lowering to MLIR, and the backend
# compile (or, on a persistent-cache hit, loading the stored executable instead).
COMPILE_EVENTS = ("/jax/core/compile/jaxpr_trace_duration", "/jax/core/compile/jaxpr_to_mlir_module_duration",
                  "/jax/core/compile/backend_compile_duration")
CACHE_HIT_EVENT = "/jax/compilation_cache/cache_hits"
# The program cache's load / export work (jax's events inside it are not counted again).
PROGRAM_CACHE_EVENT = "/attn_har/program_cache/build_duration"
PROGRAM_SUBDIR = "programs"

_program_dir: Optional[pathlib.Path] = None
_inside = threading.local()


def cache_dir() -> Optional[pathlib.Path]:
  """The cache folder `enable()` uses: $ATTN_HAR_COMPILE_CACHE, else `<cache>/xla`; None when turned off."""
  value = os.environ.get(ENV, "").strip()
  if value.lower() in OFF:
    return None
  if value:
    return pathlib.Path(value).expanduser().absolute()
  from attn_har.config.paths import cache_root  # pylint: disable=import-outside-toplevel
  return cache_root().absolute() / "xla"


def enable(path: Optional[pathlib.Path] = None) -> Optional[pathlib.Path]:
  """Turns on the persistent compilation cache in this process (call before the first compilation).

  Args:
    path: the cache folder; default `cache_dir()`.

  Returns:
    The folder in use, or None when the cache is turned off by $ATTN_HAR_COMPILE_CACHE.
  """
  import jax  # pylint: disable=import-outside-toplevel
  path = path if path is not None else cache_dir()
  if path is None:
    return None
  path = pathlib.Path(path)
  path.mkdir(parents=True, exist_ok=True)
  jax.config.update("jax_compilation_cache_dir", str(path))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
  jax.config.update("jax_compilation_cache_max_size", MAX_BYTES)
  global _program_dir
  _program_dir = path / PROGRAM_SUBDIR
  return path


def program_dir() -> Optional[pathlib.Path]:
  """The program cache's folder (`<cache dir>/programs`) once `enable()` ran in this process, else None."""
  return _program_dir


@contextlib.contextmanager
def counted_as_compiling() -> Iterator[None]:
  """Counts the wall time of the block as compiling (`PROGRAM_CACHE_EVENT`), jax's compile events in it excluded."""
  depth = getattr(_inside, "depth", 0)
  _inside.depth = depth + 1
  start = time.perf_counter()
  try:
    yield
  finally:
    _inside.depth = depth
    if depth == 0:
      import jax  # pylint: disable=import-outside-toplevel
      jax.monitoring.record_event_duration_secs(PROGRAM_CACHE_EVENT, time.perf_counter() - start)


class CompileClock:
  """Wall seconds this process has spent tracing, lowering and compiling (or loading compiled programs), summed
  over threads: two programs compiled at the same time both count.

  Listens to jax.monitoring from its creation on; `snapshot()` returns
  {'seconds': total, 'backend_seconds': compile or cache load only, 'program_cache_seconds': program cache loads
  and exports (`counted_as_compiling`), 'cache_hits': programs loaded from the persistent cache}.
  """

  def __init__(self):
    import jax  # pylint: disable=import-outside-toplevel
    self._lock = threading.Lock()
    self._seconds = {e: 0.0 for e in COMPILE_EVENTS + (PROGRAM_CACHE_EVENT,)}
    self._hits = 0
    jax.monitoring.register_event_duration_secs_listener(self._on_duration)
    jax.monitoring.register_event_listener(self._on_event)

  def _on_duration(self, event: str, seconds: float, **_) -> None:
    if event in self._seconds and not (event != PROGRAM_CACHE_EVENT and getattr(_inside, "depth", 0)):
      with self._lock:
        self._seconds[event] += seconds

  def _on_event(self, event: str, **_) -> None:
    if event == CACHE_HIT_EVENT:
      with self._lock:
        self._hits += 1

  def snapshot(self) -> Dict[str, float]:
    with self._lock:
      return {"seconds": sum(self._seconds.values()), "backend_seconds": self._seconds[COMPILE_EVENTS[-1]],
              "program_cache_seconds": self._seconds[PROGRAM_CACHE_EVENT], "cache_hits": self._hits}

  def stop(self) -> None:
    """Stops counting (unregisters the listeners)."""
    import jax  # pylint: disable=import-outside-toplevel
    jax.monitoring.unregister_event_duration_listener(self._on_duration)
    jax.monitoring.unregister_event_listener(self._on_event)
