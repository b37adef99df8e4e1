"""Runs that never lie: a non-finite state is never saved or called good, a relaunch cannot rewrite the run record,
one live run per workdir, each metric step logged once after any restart. Small in-process runs of an RGB stream
that share their compiled programs (with the SIGKILL test of test_launch_e2e.py) through the compilation cache."""

import json
import os
import pathlib
import signal
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import launch
from attn_har.config.loader import load_config
from attn_har.train import checkpointing, evaluate, run_record, train, workdir_lock
from attn_har.train.finite import NonFiniteError, state_is_finite

REPO = pathlib.Path(__file__).resolve().parents[1]
# The model of the SIGKILL test in test_launch_e2e.py: both share their compiled programs through the cache.
BASE = "configs/synthetic_baseline.py:smoke,stream=rgb,train.progress=false,train.log_every=1"


@pytest.fixture(scope="module", autouse=True)
def own_cache(tmp_path_factory):
  """The generated store goes to a cache folder of this module (the compilation cache stays shared)."""
  with pytest.MonkeyPatch.context() as mp:
    mp.setenv("ATTN_HAR_CACHE", str(tmp_path_factory.mktemp("cache")))
    yield


def _config(extra=""):
  return load_config(BASE + ("," + extra if extra else ""))


def _rows(workdir):
  return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines() if line.strip()]


def _nan_update_at(count: int):
  """An optax transformation whose update number `count` (1-based) is NaN, chained after the real optimiser."""

  def init(params):
    return {"n": jnp.zeros((), jnp.int32)}

  def update(updates, state, params=None):
    n = state["n"] + 1
    updates = jax.tree.map(lambda u: jnp.where(n == count, jnp.nan, u), updates)
    return updates, {"n": n}

  return optax.GradientTransformation(init, update)


def test_a_nonfinite_update_at_a_checkpoint_step_is_never_saved_and_analysis_uses_the_finite_best(
    tmp_path, monkeypatch):
  real = train.make_optimizer
  monkeypatch.setattr(train, "make_optimizer", lambda c, s: optax.chain(real(c, s), _nan_update_at(4)))
  workdir = tmp_path / "run"
  with pytest.raises(NonFiniteError, match=r"non-finite at step 4.*Last finite checkpoint: step 2"):
    train.train_and_evaluate(_config("steps=6,train.checkpoint_every=2"), workdir)
  steps = checkpointing.checkpoint_steps(workdir)
  assert steps["all"] == [2] and steps["latest"] == 2 and steps["best"] == 2
  for which in ("best", "latest"):
    assert state_is_finite(checkpointing.restore_state(workdir, which))
  assert all(np.isfinite(r["loss"]) for r in _rows(workdir) if r.get("loss") is not None)
  monkeypatch.undo()
  out = tmp_path / "analysis"
  from attn_har import analyze
  assert analyze.main(["--workdir", str(workdir), "--out", str(out), "--frames", "2"]) == 0
  assert (out / "stage_grid.png").is_file()


def test_resume_refuses_a_nonfinite_checkpoint_and_names_the_last_finite_step(tmp_path):
  state = {"params": {"w": np.ones(3, np.float32)}, "step": np.asarray(1, np.int32)}
  with checkpointing.make_manager(tmp_path, with_data=False, track_best=False) as manager:
    checkpointing.save(manager, 1, state, None)
    checkpointing.save(manager, 2, {"params": {"w": np.array([1, np.nan, 1], np.float32)},
                                    "step": np.asarray(2, np.int32)},
                       None)
    with pytest.raises(NonFiniteError, match=r"step 2 holds non-finite.*last finite checkpoint is step 1"):
      checkpointing.resume(manager, state, None)


def test_nonfinite_scores_raise_instead_of_counting_as_correct():
  logits = np.array([[np.nan, np.nan], [1.0, 0.0]])
  with pytest.raises(evaluate.NonFiniteScoresError, match="1 of 2 clip scores"):
    evaluate.score_metrics(logits, np.array([0, 0]), np.array([0, 1]), 2)


def test_a_relaunch_cannot_change_what_the_checkpoints_mean(tmp_path, capsys):
  workdir = tmp_path / "run"
  train.train_and_evaluate(_config("steps=2"), workdir)
  recorded = (workdir / "config.json").read_bytes()
  assert [r["new_run"] for r in run_record.read_launches(workdir)] == [True]
  # Changed hyper-parameters, another config file, a typo: refused before anything is written.
  with pytest.raises(run_record.ConfigMismatchError, match=r"optim\.lr: 0\.01 -> 0\.5"):
    train.train_and_evaluate(_config("steps=2,lr=0.5"), workdir)
  for spec in ("configs/synthetic_cbam.py:smoke,stream=rgb,steps=2",
               BASE + ",steps=2,model.variant=thesys"):
    assert launch.main([f"--config={spec}", f"--workdir={workdir}"]) == 2
  err = capsys.readouterr().err
  assert "model.attention: 'none' -> 'cbam'" in err and "thesys" in err
  assert (workdir / "config.json").read_bytes() == recorded
  assert len(run_record.read_launches(workdir)) == 1
  # More steps: allowed, recorded, resumed from the last checkpoint; each metric step once.
  train.train_and_evaluate(_config("steps=3"), workdir)
  launches = run_record.read_launches(workdir)
  assert len(launches) == 2 and launches[1]["diff"] == {"train.num_steps": [2, 3]} and launches[1]["start_step"] == 2
  assert json.loads((workdir / "config.json").read_text())["train"]["num_steps"] == 3
  keys = [(r["step"], r["split"]) for r in _rows(workdir)]
  assert len(keys) == len(set(keys)) and {s for s, split in keys if split == "train"} == {1, 2, 3}


def test_a_second_launch_into_a_live_workdir_names_the_holder(tmp_path):
  workdir = tmp_path / "run"
  with workdir_lock.WorkdirLock(workdir):
    with pytest.raises(workdir_lock.WorkdirLockedError, match=rf"in use by pid {os.getpid()} on host"):
      train.train_and_evaluate(_config("steps=2"), workdir)
  assert not (workdir / "config.json").exists()


def test_a_stale_lock_of_a_killed_run_is_taken_over(tmp_path):
  code = (f"import os, signal, sys; sys.path.insert(0, {str(REPO)!r})\n"
          f"from attn_har.train.workdir_lock import WorkdirLock\n"
          f"WorkdirLock({str(tmp_path)!r}).acquire(); print(os.getpid(), flush=True)\n"
          f"os.kill(os.getpid(), signal.SIGKILL)\n")
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
  assert proc.returncode == -signal.SIGKILL
  dead_pid = int(proc.stdout.split()[0])
  assert json.loads((tmp_path / workdir_lock.LOCK_FILE).read_text())["pid"] == dead_pid
  with workdir_lock.WorkdirLock(tmp_path):
    assert json.loads((tmp_path / workdir_lock.LOCK_FILE).read_text())["pid"] == os.getpid()


def test_a_run_killed_before_its_first_checkpoint_logs_each_step_once_after_the_relaunch(tmp_path, monkeypatch):
  workdir = tmp_path / "run"

  def killed(*args, **kwargs):
    raise KeyboardInterrupt("killed before the first checkpoint")

  monkeypatch.setattr(checkpointing, "save", killed)
  with pytest.raises(KeyboardInterrupt):
    train.train_and_evaluate(_config("steps=3,train.checkpoint_every=2"), workdir)
  assert [r["step"] for r in _rows(workdir) if r["split"] == "train"] == [1, 2]
  assert checkpointing.checkpoint_steps(workdir)["all"] == []
  monkeypatch.undo()
  train.train_and_evaluate(_config("steps=3,train.checkpoint_every=2"), workdir)
  keys = [(r["step"], r["split"]) for r in _rows(workdir)]
  assert len(keys) == len(set(keys)) and [s for s, split in keys if split == "train"] == [1, 2, 3]
  assert len(list((workdir / "tb").iterdir())) == 1   # TensorBoard rebuilt from the kept rows, one event file


@pytest.mark.parametrize("arg,message", [
    ("lr=-1", "optim.lr must be a finite number > 0"),
    ("lr=inf", "optim.lr must be a finite number > 0"),
    ("split=7", "data.split of synthetic '7'; valid choices: '1'"),
    ("train.label_smoothing=1.5", "train.label_smoothing must lie in [0, 1)"),
    ("model.backbone_kwargs.depth=3", "not accepted by backbone 'mobilenet_v2'"),
])
def test_values_out_of_range_fail_before_any_file_is_written(arg, message, tmp_path, capsys):
  assert launch.main([f"--config={BASE},{arg}", f"--workdir={tmp_path / 'run'}"]) == 2
  assert message in capsys.readouterr().err
  assert not (tmp_path / "run").exists()


def test_an_unwritable_workdir_is_one_clear_error(tmp_path, capsys):
  (tmp_path / "file").write_text("not a folder")
  assert launch.main([f"--config={BASE},steps=2", f"--workdir={tmp_path / 'file' / 'run'}"]) == 1
  err = capsys.readouterr().err
  assert err.startswith("error: ") and str(tmp_path / "file") in err and "Traceback" not in err


def test_a_damaged_run_record_is_one_clear_error(tmp_path, capsys):
  (tmp_path / "run").mkdir()
  (tmp_path / "run" / "config.json").write_text('{"model": ')
  assert launch.main([f"--config={BASE},steps=2", f"--workdir={tmp_path / 'run'}"]) == 2
  assert "config.json: the recorded config is not valid JSON" in capsys.readouterr().err
