"""Shared fixtures. Real clips are read in place from ../shared/realdata, never copied.

The suite uses the persistent compilation cache (`attn_har.compile_cache`, default `<cache>/xla`): this process
enables it, and subprocesses (launch.py runs, the notebook kernel) get the same folder through
$ATTN_HAR_COMPILE_CACHE even where a test points $ATTN_HAR_CACHE at a temporary folder. A second run of the suite
loads most programs instead of compiling them. ATTN_HAR_COMPILE_CACHE=off runs it without.
"""

import os
import pathlib

import pytest

# Keep tests on the CPU and single-threaded XLA pools predictable on the 2-core CI machine.
os.environ.setdefault("JAX_PLATFORMS", "cpu")

from attn_har import compile_cache  # pylint: disable=wrong-import-position

_COMPILE_CACHE = compile_cache.cache_dir()
if _COMPILE_CACHE is not None:
  os.environ[compile_cache.ENV] = str(_COMPILE_CACHE)
  compile_cache.enable(_COMPILE_CACHE)

REPO = pathlib.Path(__file__).resolve().parents[1]
REALDATA = pathlib.Path(os.environ.get("ATTN_HAR_REALDATA", REPO.parent / "shared" / "realdata"))


@pytest.fixture(scope="session")
def realdata() -> pathlib.Path:
  """Path of the shared real UCF101/HMDB51 fixtures; skips when absent, except under CI=true, where it fails."""
  if not REALDATA.is_dir():
    message = f"real-data fixtures not found at {REALDATA} (set ATTN_HAR_REALDATA to their folder)"
    if os.environ.get("CI", "").lower() in ("true", "1"):
      pytest.fail(f"{message}; under CI=true the real-data tests must run, not skip", pytrace=False)
    pytest.skip(message)
  return REALDATA
