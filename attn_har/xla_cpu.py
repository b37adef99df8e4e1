"""Process settings for XLA:CPU training: keep each step's temporaries mapped instead of faulting them in again.

XLA:CPU allocates each execution's temporaries as one block and frees it when the step ends (MobileNetV2 alpha
1.0, 112 px, batch 16: a 590 MiB block). With jax's asynchronous CPU dispatch the block is allocated by an XLA
worker thread; a thread arena of glibc's malloc cannot hold a block that large and serves it with a fresh `mmap`
whatever M_MMAP_MAX says, returning it with `munmap`, so every step page-faults its working set in again: about
90,000 faults per step for that model on a 2-core CPU, 32,000 for the default `python launch.py` model.
`configure()` (ATTN_HAR_MALLOC selects the mode):

  'default'       glibc's M_MMAP_MAX 0 (no mmap for large blocks) and M_TRIM_THRESHOLD 2^31-1 (never give the
                  top of the heap back), and jax's `jax_cpu_enable_async_dispatch` False: a computation then runs
                  inline from the calling thread, which allocates the block from glibc's main arena (grown with
                  brk); the block one step frees is reused by the next. 0 faults per step, and XLA's compiler
                  threads keep their own arenas.
  'single_arena'  the same two glibc settings and M_ARENA_MAX 1 (every thread on the main arena), with jax's
                  asynchronous dispatch: also 0 faults, but XLA's compiler threads queue for the one arena's lock.
  'off'           nothing: glibc's and jax's defaults.

Alternating processes on a 2-core CPU (jax 0.10.2, 2026-11-30), compile and step time, page faults per step:

  model                                  'default'                  'single_arena'           'off'
  MobileNetV2 alpha 1.0, 112 px, batch 16  9.4-9.6 s, 141-195 ms, 0  14.1-14.7 s, 169-201 ms  9.0-9.6 s, 235 ms, 86,000
  ResNet50V2, 112 px, batch 8              6.0-6.5 s, 343-352 ms, 0  8.0 s, 410 ms, 0         6.1 s, 411 ms, 60,000
  default `python launch.py` train step  25.8-27.1 s, 74-76 ms, 0  31.7-39.6 s, 100-149 ms  26.2-27.5 s, 101-131 ms

The values computed are the same in every mode (the same programs run; only where their memory comes from and
which thread starts them change). Synchronous dispatch means the Python thread waits for each step; the data
loaders prefetch in their own threads, so a training loop loses nothing. It applies to computations on one CPU
device; it does not touch GPU backends.

Call it before jax (or anything starting threads) creates its CPU backend: later, threads already own their
arenas and the backend has read its dispatch setting. `launch.py`, `analyze.py`, `study.py` and the benchmarks
call it on their first lines. Its glibc part does nothing off glibc (macOS, musl).
"""

import ctypes
import os
import sys
from typing import Dict

ENV = "ATTN_HAR_MALLOC"
# glibc's mallopt parameter numbers (malloc.h).
M_TRIM_THRESHOLD, M_MMAP_MAX, M_ARENA_MAX = -1, -4, -8
REUSE = {"M_MMAP_MAX": (M_MMAP_MAX, 0), "M_TRIM_THRESHOLD": (M_TRIM_THRESHOLD, 2**31 - 1)}
SETTINGS = {"default": REUSE, "single_arena": {"M_ARENA_MAX": (M_ARENA_MAX, 1), **REUSE}, "off": {}}
MODES = tuple(SETTINGS)
SYNC_FLAG = "jax_cpu_enable_async_dispatch"

_applied: Dict[str, int] = {}


def mode() -> str:
  """The mode ATTN_HAR_MALLOC asks for: 'default' (also unset or empty), 'single_arena' (also 'on', '1') or 'off'
  (also '0'); anything else raises ValueError."""
  value = os.environ.get(ENV, "").strip().lower()
  value = {"": "default", "on": "single_arena", "1": "single_arena", "true": "single_arena", "yes": "single_arena",
           "0": "off", "false": "off", "no": "off"}.get(value, value)
  if value not in MODES:
    raise ValueError(f"{ENV}={value!r}; valid values: {', '.join(MODES)} (unset = default)")
  return value


def _mallopt(settings: Dict[str, tuple]) -> Dict[str, int]:
  """Applies glibc `mallopt` settings; returns those applied ({} off Linux or without glibc)."""
  if not settings or not sys.platform.startswith("linux"):
    return {}
  try:
    libc = ctypes.CDLL(None)
    libc.gnu_get_libc_version  # pylint: disable=pointless-statement  (glibc only; musl has mallopt stubs)
    mallopt = libc.mallopt
  except (OSError, AttributeError):
    return {}
  mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
  return {name: value for name, (param, value) in settings.items() if mallopt(param, value) == 1}


def configure() -> Dict[str, int]:
  """Applies the ATTN_HAR_MALLOC mode's settings once per process; returns {name: value} of those applied (the
  glibc parameters, and SYNC_FLAG: 0 when jax's CPU dispatch was made synchronous)."""
  if _applied:
    return dict(_applied)
  m = mode()
  _applied.update(_mallopt(SETTINGS[m]))
  if m == "default":
    import jax  # pylint: disable=import-outside-toplevel
    jax.config.update(SYNC_FLAG, False)
    _applied[SYNC_FLAG] = 0
  return dict(_applied)
