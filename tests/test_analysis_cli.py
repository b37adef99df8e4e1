"""End to end on a smoke run: restore round trip, `python -m attn_har.analyze` figures and quality table.

One smoke training (configs/synthetic_cbam.py:smoke, its own store under tmp) is shared by the tests here.
"""

import json
import os
import pathlib
import subprocess
import sys

import imageio.v2 as imageio
import jax
import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
MIN_STD = 5.0  # pixel std (0-255) below which an image counts as blank

pytestmark = pytest.mark.e2e


# Trains in a subprocess (as `python launch.py` would) and records the end-of-training logits: the last
# evaluation of `train_and_evaluate` is the test pass with the best checkpoint; its first batch and logits are saved.
TRAIN_SCRIPT = """
import sys, jax, numpy as np
from attn_har import compile_cache
compile_cache.enable()
from attn_har.config.loader import load_config
from attn_har.train import evaluate, train
config = load_config(sys.argv[1])
seen, real = [], evaluate.collect
def spy(eval_fn, variables, batches):
  batches = list(batches)
  seen.append((jax.device_get(batches[0]), np.asarray(eval_fn(variables, batches[0])['logits'])))
  return real(eval_fn, variables, batches)
evaluate.collect = spy
train.train_and_evaluate(config, sys.argv[2])
batch, logits = seen[-1]
np.savez(sys.argv[3], logits=logits, **{k: np.asarray(v) for k, v in batch.items()})
"""


def subprocess_env() -> dict:
  """The environment of this file's subprocesses: CPU, the repository importable, and (inherited from conftest.py)
  the suite's persistent compilation cache in $ATTN_HAR_COMPILE_CACHE."""
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
  return env


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
  """Trains the smoke config; returns (workdir, env, the final test pass's first batch, its logits)."""
  root = tmp_path_factory.mktemp("smoke")
  env = subprocess_env()
  spec = f"{REPO / 'configs' / 'synthetic_cbam.py'}:smoke,store={root / 'store'}"
  proc = subprocess.run([sys.executable, "-c", TRAIN_SCRIPT, spec, str(root / "run"), str(root / "end.npz")],
                        cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
  assert proc.returncode == 0, proc.stderr[-3000:]
  with np.load(root / "end.npz") as z:
    end = {k: z[k] for k in z.files}
  logits = end.pop("logits")
  return root / "run", env, end, logits


def test_restore_round_trip(smoke_run):
  from attn_har.analysis import restore
  workdir, _, batch, logits = smoke_run
  run = restore(workdir)
  assert run.step == json.loads((workdir / "results.json").read_text())["best_step"]
  out = jax.jit(lambda v, b: run.model.apply(v, b, False))(run.variables, batch)
  np.testing.assert_allclose(np.asarray(out["logits"]), logits, rtol=1e-5, atol=1e-5)
  latest = restore(workdir, "latest")
  assert latest.step == run.config.train.num_steps
  with pytest.raises(ValueError, match="which"):
    restore(workdir, "first")
  with pytest.raises(FileNotFoundError, match="config.json"):
    restore(workdir / "nowhere")


def test_analyze_cli_writes_figures(smoke_run, tmp_path):
  workdir, env = smoke_run[:2]
  out = tmp_path / "figs"
  proc = subprocess.run([sys.executable, "-m", "attn_har.analyze", "--workdir", str(workdir), "--out", str(out)],
                        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  grid = imageio.imread(out / "stage_grid.png")
  assert grid[..., :3].std() > MIN_STD
  curves = imageio.imread(out / "curves.png")
  assert curves[..., :3].std() > MIN_STD
  frames = imageio.mimread(out / "clip_overlay.gif")
  assert len(frames) >= 2
  assert all(np.asarray(f)[..., :3].std() > MIN_STD for f in frames)


def test_quality_table_on_smoke_run(smoke_run, tmp_path):
  workdir, env = smoke_run[:2]
  out = tmp_path / "quality"
  # 8 frames, as the figures above: the explainers' compiled programs come from the shared cache.
  proc = subprocess.run([sys.executable, "-m", "attn_har.analyze", "--quality", "--workdir", str(workdir), "--out",
                         str(out), "--clips", "1", "--frames", "8", "--steps", "2", "--prior_clips", "4",
                         "--sanity"],
                        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  sanity = json.loads((out / "sanity.json").read_text())[0]["streams"]
  for stream in ("rgb", "flow"):
    methods = sanity[stream]["methods"]
    assert {"attention/combined", "gradcam/combined", "guided_gradcam/combined"} <= set(methods)
    assert all(len(m["spearman_abs"]) == len(sanity[stream]["steps"]) > 10 for m in methods.values())
    assert (out / f"sanity_synthetic_cbam_{stream}.png").is_file()
  assert sanity["flow"]["methods"]["flow_magnitude"]["flagged"]       # ignores the weights by construction
  table = json.loads((out / "quality.json").read_text())
  rows = {(r["stream"], r["method"]): r for r in table["rows"]}
  for stream in ("rgb", "flow"):
    for method in ("attention/combined", "gradcam/combined", "guided_gradcam/combined", "location_prior",
                   "center_bias", "uniform", "random"):
      assert (stream, method) in rows
  assert ("flow", "flow_magnitude") in rows and ("rgb", "frame_difference") in rows
  area = table["meta"]["runs"][0]["mean_mask_area"]
  assert rows[("rgb", "uniform")]["energy"]["mean"] == pytest.approx(area, abs=1e-3)  # a uniform map scores the area
  for r in table["rows"]:
    assert r["pointing"]["n"] == 8 and r["deletion"]["n"] == 1 and r["road_morf"]["n"] == 1
    for k in ("pointing", "energy", "deletion", "insertion"):
      assert 0.0 <= r[k]["mean"] <= 1.0
      assert r[k]["lo"] - 1e-9 <= r[k]["mean"] <= r[k]["hi"] + 1e-9
  assert "| synthetic_cbam | rgb | all | center_bias |" in (out / "quality.md").read_text()
