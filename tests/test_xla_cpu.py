"""`attn_har.xla_cpu.configure` with ATTN_HAR_MALLOC=single_arena keeps a freed large block in the heap (allocating it
again faults no pages); by default it changes nothing."""

import pathlib
import subprocess
import sys

import pytest

SCRIPT = """
import ctypes, resource, sys
from attn_har import xla_cpu
applied = xla_cpu.configure()
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, (ctypes.c_size_t,)
libc.free.argtypes = (ctypes.c_void_p,)
size = 256 << 20
def touch():
  p = libc.malloc(size)
  ctypes.memset(p, 1, size)
  libc.free(p)
touch()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
touch()
print(sorted(applied), resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
@pytest.mark.parametrize("env,settings,max_faults", [
    ("single_arena", "['M_ARENA_MAX', 'M_MMAP_MAX', 'M_TRIM_THRESHOLD']", 1000),
    ("on", "['M_ARENA_MAX', 'M_MMAP_MAX', 'M_TRIM_THRESHOLD']", 1000),
    ("", "[]", None),
    ("off", "[]", None)])
def test_second_allocation_faults_no_pages(env, settings, max_faults):
  out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True,
                       env={"ATTN_HAR_MALLOC": env, "PATH": ""}, cwd=pathlib.Path(__file__).parents[1])
  got, faults = out.stdout.rsplit(" ", 1)
  assert got == settings
  if max_faults is None:
    assert int(faults) > (256 << 20) // 4096 // 2  # glibc's default: mmap and munmap each time, every page faults
  else:
    assert int(faults) < max_faults


def test_unknown_mode_fails_naming_the_choices(monkeypatch):
  from attn_har import xla_cpu
  monkeypatch.setenv("ATTN_HAR_MALLOC", "single-arena")
  with pytest.raises(ValueError, match="single_arena"):
    xla_cpu.mode()
