"""`attn_har.xla_cpu.configure`: by default (and with ATTN_HAR_MALLOC=single_arena) a freed large block stays in the
heap, so an XLA:CPU step's temporaries fault no pages the second time; ATTN_HAR_MALLOC=off changes nothing."""

import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).parents[1]

MALLOC = """
import ctypes, resource
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

# A jitted step whose temporaries are one 256 MiB block (the [32768, 2048] float32 tanh(x @ w) it does not return).
XLA_STEP = """
import resource
from attn_har import xla_cpu
xla_cpu.configure()
import jax, jax.numpy as jnp
f = jax.jit(lambda x, w: (jnp.tanh(x @ w) @ w.T).sum(0))
x, w = jnp.ones((32768, 16), jnp.float32), jnp.ones((16, 2048), jnp.float32) / 16
for _ in range(2):
  f(x, w).block_until_ready()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):
  f(x, w).block_until_ready()
print(jax.config.read("jax_cpu_enable_async_dispatch"), (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) // 3)
"""


def _run(script: str, env: str) -> str:
  return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                        env={"ATTN_HAR_MALLOC": env, "PATH": "", "JAX_PLATFORMS": "cpu"}, cwd=REPO).stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
@pytest.mark.parametrize("env,settings,reused", [
    ("", "['M_MMAP_MAX', 'M_TRIM_THRESHOLD', 'jax_cpu_enable_async_dispatch']", True),
    ("default", "['M_MMAP_MAX', 'M_TRIM_THRESHOLD', 'jax_cpu_enable_async_dispatch']", True),
    ("single_arena", "['M_ARENA_MAX', 'M_MMAP_MAX', 'M_TRIM_THRESHOLD']", True),
    ("on", "['M_ARENA_MAX', 'M_MMAP_MAX', 'M_TRIM_THRESHOLD']", True),
    ("off", "[]", False)])
def test_second_allocation_faults_no_pages(env, settings, reused):
  got, faults = _run(MALLOC, env).rsplit(" ", 1)
  assert got == settings
  pages = (256 << 20) // 4096
  if reused:
    assert int(faults) < 1000
  else:
    assert int(faults) > pages // 2  # glibc's default: mmap and munmap each time, every page faults


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
@pytest.mark.parametrize("env,dispatch_async,reused", [
    ("default", "False", True), ("single_arena", "True", True), ("off", "True", False)])
def test_an_xla_step_faults_its_temporaries_in_only_without_the_settings(env, dispatch_async, reused):
  flag, faults = _run(XLA_STEP, env).split()
  assert flag == dispatch_async
  block_pages = 32768 * 2048 * 4 // 4096
  if reused:
    assert int(faults) < block_pages // 20
  else:
    assert int(faults) > block_pages // 2


def test_unknown_mode_fails_naming_the_choices(monkeypatch):
  from attn_har import xla_cpu
  monkeypatch.setenv("ATTN_HAR_MALLOC", "single-arena")
  with pytest.raises(ValueError, match="single_arena, off"):
    xla_cpu.mode()
