"""Optional process setting for long XLA:CPU training runs of large models: keep the step's temporaries mapped.

XLA:CPU's worker threads allocate each execution's temporaries and free them when the step ends (MobileNetV2
alpha 1.0, 112 px, batch 16: a 590 MiB block). A thread arena of glibc's malloc cannot hold a block that large and
serves it with a fresh `mmap` whatever M_MMAP_MAX says, returning it with `munmap`, so every step page-faults its
working set in again: about 90,000 faults per step for that model on a 2-core CPU. ATTN_HAR_MALLOC=single_arena
makes `configure()` set, through `mallopt`:

  M_ARENA_MAX 1        every thread allocates from the main arena, which grows with brk instead of mmap
  M_MMAP_MAX 0         no mmap for large blocks
  M_TRIM_THRESHOLD     never give the top of the heap back to the OS

so the block freed by one step is reused by the next: 0 page faults, and the process keeps its peak heap.

It is off by default because the one arena is a lock that XLA's compiler threads queue for. Alternating processes
on a 2-core CPU (jax 0.10.2, 2026-11-30): MobileNetV2 alpha 1.0 at 112 px, batch 16, steps in 174-223 ms with it
against 235-252 ms without (6 and 3 processes), but compiles in 12.4-15.0 s against 9.2-10.0 s; the default
`python launch.py` model's train step runs equally fast either way (100-149 ms against 97-134 ms, although it
faults 32,000 pages per step without) and compiles in 31.7-39.6 s against 24.2-31.2 s (6 and 6 processes). So it
pays for long runs of models with large activations and costs start-up otherwise. Two arenas (M_ARENA_MAX 2) gave
0 faults in some processes and 32,000 per step in others (which arena a thread gets is glibc's round-robin choice
at its first allocation); with no arena limit, M_MMAP_MAX and M_TRIM_THRESHOLD alone change nothing.

Call it before jax (or anything starting threads) is imported: later, threads already own their arenas and keep
them. `launch.py`, `analyze.py`, `study.py` and the benchmarks call it on their first lines. It does nothing off
glibc (macOS, musl).
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


MODES = ("default", "single_arena")


def mode() -> str:
  """The mode ATTN_HAR_MALLOC asks for: 'single_arena' (also 'on', '1'), or 'default' (unset, empty, 'off', '0');
  anything else raises ValueError."""
  value = os.environ.get(ENV, "").strip().lower()
  if value in ("", "default", "off", "0", "false", "no"):
    return "default"
  if value in ("on", "1", "true", "yes"):
    return "single_arena"
  if value not in MODES:
    raise ValueError(f"{ENV}={value!r}; valid values: {', '.join(MODES)} (unset = default)")
  return value


def configure() -> Dict[str, int]:
  """Applies `SETTINGS` with glibc's `mallopt` once per process when ATTN_HAR_MALLOC=single_arena; returns
  {name: value} of those applied ({} by default, off Linux, or without glibc)."""
  if _applied or mode() == "default":
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
