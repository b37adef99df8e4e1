"""Shared fixtures. Real clips are read in place from ../shared/realdata, never copied."""

import os
import pathlib

import pytest

# Keep tests on the CPU and single-threaded XLA pools predictable on the 2-core CI machine.
os.environ.setdefault("JAX_PLATFORMS", "cpu")

REPO = pathlib.Path(__file__).resolve().parents[1]
REALDATA = pathlib.Path(os.environ.get("ATTN_HAR_REALDATA", REPO.parent / "shared" / "realdata"))


@pytest.fixture(scope="session")
def realdata() -> pathlib.Path:
  """Path of the shared real UCF101/HMDB51 fixtures; skips when absent."""
  if not REALDATA.is_dir():
    pytest.skip(f"real-data fixtures not found at {REALDATA}")
  return REALDATA
