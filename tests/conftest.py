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
KERAS_FIXTURES = pathlib.Path(os.environ.get("ATTN_HAR_KERAS_FIXTURES", REPO.parent / "shared" / "fixtures" / "keras"))


def _skip_or_fail(message: str, what: str) -> None:
  if os.environ.get("CI", "").lower() in ("true", "1"):
    pytest.fail(f"{message}; under CI=true the {what} tests must run, not skip", pytrace=False)
  pytest.skip(message)


@pytest.fixture(scope="session")
def realdata() -> pathlib.Path:
  """Path of the shared real UCF101/HMDB51 fixtures; skips when absent, except under CI=true, where it fails."""
  if not REALDATA.is_dir():
    _skip_or_fail(f"real-data fixtures not found at {REALDATA} (set ATTN_HAR_REALDATA to their folder)", "real-data")
  return REALDATA


@pytest.fixture(scope="session")
def keras_fixtures() -> pathlib.Path:
  """Path of the shared Keras weight-file fixtures (random weights in the ImageNet files' layout, their Keras
  outputs, the real files' name lists); skips when absent, except under CI=true, where it fails."""
  if not KERAS_FIXTURES.is_dir():
    _skip_or_fail(f"Keras weight-file fixtures not found at {KERAS_FIXTURES} (set ATTN_HAR_KERAS_FIXTURES to "
                  f"their folder)", "Keras import")
  return KERAS_FIXTURES
