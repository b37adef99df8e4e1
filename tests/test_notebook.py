"""notebooks/attention_walkthrough.ipynb executes headless (nbclient, the project venv's kernel) and draws."""

import json
import math
import pathlib

import imageio.v2 as imageio
import nbformat
import numpy as np
from nbclient import NotebookClient

REPO = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "attention_walkthrough.ipynb"
MIN_STD = 5.0

# Appended to the executed copy only: dumps what the notebook computed, so the test checks values, not printout.
CHECK_CELL = """
import json as _json
from attn_har.train.checkpointing import checkpoint_steps as _steps
_rows = quality_report.table_rows([r])
_metrics = ('pointing', 'energy', 'deletion', 'insertion', 'road_morf', 'road_lerf')
_check = {
    'best_step': int(results['best_step']), 'restored_step': int(run.step), 'checkpoints': _steps(workdir),
    'test_top1': results['test']['top1'], 'test_videos': results['test']['videos'],
    'confusion': results['test_confusion'],
    'image_maps': {p: [float(m.min()), float(m.max())] for p, m in maps.items()},
    'gradcam': {s: {l: [float(h.min()), float(h.max())] for l, h in e.gradcam.items()}
                for s, e in explanations.items()},
    'attention': {s: len(e.attention) for s, e in explanations.items()},
    'rows': [dict(stream=row['stream'], method=row['method'], **{k: row[k]['mean'] for k in _metrics})
             for row in _rows],
    'counts': [{k: row[k]['n'] for k in _metrics} for row in _rows],
}
(pathlib.Path(workdir) / 'notebook_check.json').write_text(_json.dumps(_check))
"""


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
  nb.cells.append(nbformat.v4.new_code_cell(CHECK_CELL))
  client = NotebookClient(nb, timeout=600, kernel_name="python3",
                          resources={"metadata": {"path": str(REPO / "notebooks")}})
  client.execute()  # raises CellExecutionError naming the failing cell
  images = sum("image/png" in o.get("data", {}) or "image/gif" in o.get("data", {})
               for c in nb.cells if c.cell_type == "code" for o in c.outputs)
  assert images >= 3
  figs = tmp_path / "run" / "figures"
  for name in ("stage_grid.png", "curves.png", "clip_overlay.gif"):
    assert imageio.imread(figs / name)[..., :3].std() > MIN_STD, name

  check = json.loads((tmp_path / "run" / "notebook_check.json").read_text())
  # The restored checkpoint is the one training picked as best, and a checkpoint of that step exists.
  best = check["checkpoints"]["best"] or check["checkpoints"]["latest"]
  assert check["restored_step"] == check["best_step"] == best and best in check["checkpoints"]["all"]
  # The reported accuracy is the confusion matrix's.
  confusion = np.asarray(check["confusion"])
  assert confusion.sum() == check["test_videos"] > 0
  assert check["test_top1"] == np.trace(confusion) / confusion.sum()
  # Section 1: CBAM's sigmoid maps, one per inverted-residual block.
  assert len(check["image_maps"]) >= 10
  assert all(0.0 <= lo <= hi <= 1.0 for lo, hi in check["image_maps"].values())
  # Section 4: both streams explained; Grad-CAM heatmaps are normalised to [0, 1].
  assert set(check["gradcam"]) == {"rgb", "flow"} and all(check["attention"][s] >= 10 for s in ("rgb", "flow"))
  assert all(len(cams) == 3 and all(0.0 <= lo <= hi <= 1.0 for lo, hi in cams.values())
             for cams in check["gradcam"].values())
  # Section 5: every quality number is a number in its range, for both streams and the reference maps.
  rows = check["rows"]
  assert {r["stream"] for r in rows} == {"rgb", "flow"}
  assert {"center_bias", "uniform", "random", "location_prior", "flow_magnitude"} <= {r["method"] for r in rows}
  for row, counts in zip(rows, check["counts"]):
    for metric in ("pointing", "energy", "deletion", "insertion"):
      assert counts[metric] > 0 and math.isfinite(row[metric]) and 0.0 <= row[metric] <= 1.0, (row, metric)
