"""notebooks/attention_walkthrough.ipynb executes headless (nbclient, the project venv's kernel) and draws."""

import pathlib

import imageio.v2 as imageio
import nbformat
import pytest
from nbclient import NotebookClient

REPO = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "attention_walkthrough.ipynb"
MIN_STD = 5.0


def test_notebook_is_colab_ready():
  nb = nbformat.read(NOTEBOOK, as_version=4)
  nbformat.validate(nb)
  first_code = next(c for c in nb.cells if c.cell_type == "code").source
  assert "google.colab" in first_code and "requirements.txt" in first_code
  assert "git+" not in "".join(c.source for c in nb.cells)  # clone-agnostic, no hard-wired repository URL
  assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")  # committed without outputs


def test_notebook_executes(tmp_path, monkeypatch):
  monkeypatch.setenv("JAX_PLATFORMS", "cpu")
  # The notebook is compile-bound on CPU (a smoke training, then Grad-CAM and attention maps of both streams):
  # XLA's backend optimisation level 0 compiles faster and runs these tiny programs about as fast.
  monkeypatch.setenv("XLA_FLAGS", "--xla_backend_optimization_level=0")
  monkeypatch.setenv("ATTN_HAR_CACHE", str(tmp_path / "cache"))
  monkeypatch.setenv("ATTN_HAR_NOTEBOOK_WORKDIR", str(tmp_path / "run"))
  nb = nbformat.read(NOTEBOOK, as_version=4)
  client = NotebookClient(nb, timeout=600, kernel_name="python3",
                          resources={"metadata": {"path": str(REPO / "notebooks")}})
  client.execute()  # raises CellExecutionError naming the failing cell
  text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
  assert "restored step" in text and "| center_bias |" in text
  images = sum("image/png" in o.get("data", {}) or "image/gif" in o.get("data", {})
               for c in nb.cells if c.cell_type == "code" for o in c.outputs)
  assert images >= 3
  figs = tmp_path / "run" / "figures"
  for name in ("stage_grid.png", "curves.png", "clip_overlay.gif"):
    assert imageio.imread(figs / name)[..., :3].std() > MIN_STD, name
