"""Process settings that make XLA:CPU train steps fast: keep the step's temporary buffer mapped between steps.

XLA:CPU allocates each execution's temporaries as one block (MobileNetV2 alpha 1.0, 112 px, batch 16: 590 MiB)
and frees it when the step ends. glibc's malloc serves a block that large with a fresh `mmap` (a thread arena
cannot grow that far and falls back to mmap whatever M_MMAP_MAX says) and returns it with `munmap`, so every step
page-faults its whole working set in again: about 150,000 faults and 0.27 s of kernel time per step on a 2-core
CPU, a third of the step (docs/speed.md). `configure()` sets, through `mallopt`:

  M_ARENA_MAX 1        every thread allocates from the main arena, which grows with brk instead of mmap
  M_MMAP_MAX 0         no mmap for large blocks
  M_TRIM_THRESHOLD     never give the top of the heap back to the OS

so the block freed by one step is reused by the next: 0 page faults, and the step 1.7x faster. The cost is that
the process keeps its peak heap (the peak of a step, which it needs again the next step anyway).

Call it before jax (or anything starting threads) is imported: later, threads already own their arenas and keep
them. `launch.py` calls it on its first lines; so do the benchmarks. ATTN_HAR_MALLOC=off skips it. It does
nothing off glibc (macOS, musl) and is harmless on GPU.
"""

import ctypes
import os
import sys
from typing import Dict

ENV = "ATTN_HAR_MALLOC"
# glibc's mallopt parameter numbers (malloc.h).
M_TRIM_THRESHOLD, M_MMAP_MAX, M_ARENA_MAX = -1, -4, -8
SETTINGS = {"M_ARENA_MAX": (M_ARENA_MAX, 1), "M_MMAP_MAX": (M_MMAP_MAX, 0),
            "M_TRIM_THRESHOLD": (M_TRIM_THRESHOLD, 2**31 - 1)}

_applied: Dict[str, int] = {}


def configure() -> Dict[str, int]:
  """Applies `SETTINGS` with glibc's `mallopt` once per process; returns {name: value} of those applied ({} when
  skipped: ATTN_HAR_MALLOC=off, not Linux, or no glibc)."""
  if _applied or os.environ.get(ENV, "").strip().lower() in ("off", "0", "false", "no"):
    return dict(_applied)
  if not sys.platform.startswith("linux"):
    return {}
  try:
    libc = ctypes.CDLL(None)
    libc.gnu_get_libc_version  # pylint: disable=pointless-statement  (glibc only; musl has mallopt stubs)
    mallopt = libc.mallopt
  except (OSError, AttributeError):
    return {}
  mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
  for name, (param, value) in SETTINGS.items():
    if mallopt(param, value) == 1:
      _applied[name] = value
  return dict(_applied)
