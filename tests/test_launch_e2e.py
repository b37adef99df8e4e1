"""The real entry point end to end. In make test: SIGKILL + resume replays bit-identically, the UCF101 smoke on the
shipped real clips, the error paths. In make test-e2e: an image-prototype smoke on a generated image folder and
(ATTN_HAR_ALL_SMOKE=1) every config's smoke.

Runs share a session cache (generated stores) and the suite's persistent compilation cache (conftest.py), so
repeated launches of one config compile once, and a second run of the suite hardly compiles at all.
"""

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
UCF_MINI = {"train": ["ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi", "BaseballPitch/v_BaseballPitch_g01_c01.avi"],
            "test": ["HeadMassage/v_HeadMassage_g02_c05.avi", "Shotput/v_Shotput_g05_c02.avi"]}


@pytest.fixture(scope="session")
def e2e_env(tmp_path_factory):
  root = tmp_path_factory.mktemp("e2e")
  # Smoke runs are compile-bound: XLA's backend optimisation level 0 roughly halves compile time on CPU.
  env = dict(os.environ, ATTN_HAR_CACHE=str(root / "cache"), JAX_PLATFORMS="cpu",
             XLA_FLAGS="--xla_backend_optimization_level=0", PYTHONPATH=str(REPO))
  return root, env


def _launch(env, config, workdir, **kw):
  return subprocess.Popen([sys.executable, str(REPO / "launch.py"), f"--config={config}", f"--workdir={workdir}"],
                          cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def _run(env, config, workdir, timeout=900):
  p = _launch(env, config, workdir)
  out, _ = p.communicate(timeout=timeout)
  assert p.returncode == 0, out[-4000:]
  return out


def check_run(workdir: pathlib.Path, num_steps: int) -> dict:
  """What a finished run must hold, beyond "it exited 0"; returns results.json.

  Every train step is logged once with a finite loss; the best checkpoint exists, holds that step and finite
  parameters; the reported test accuracy is the one its confusion matrix gives.
  """
  from attn_har.train.checkpointing import checkpoint_steps, restore_state
  results = json.loads((workdir / "results.json").read_text())
  rows = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
  train = [r for r in rows if r["split"] == "train"]
  assert [r["step"] for r in train] == list(range(1, num_steps + 1))
  assert all(np.isfinite(r["loss"]) for r in train)
  steps = checkpoint_steps(workdir)
  assert results["best_step"] in steps["all"] and steps["latest"] == num_steps
  best = restore_state(workdir, "best")
  assert int(best["step"]) == results["best_step"]
  assert all(np.all(np.isfinite(x)) for x in _leaves(best["params"]))
  confusion = np.asarray(results["test_confusion"])
  assert confusion.sum() == results["test"]["videos"] > 0
  if "test_svm" not in results:
    assert results["test"]["top1"] == pytest.approx(np.trace(confusion) / confusion.sum())
  assert 0.0 <= results["test"]["top1"] <= results["test"]["top5"] <= 1.0
  assert results["timing"]["compile_seconds"] > 0
  return results


def test_sigkill_then_relaunch_replays_bit_identically(e2e_env):
  from attn_har.train.checkpointing import restore_state
  root, env = e2e_env
  steps = 8
  config = f"configs/synthetic_baseline.py:smoke,stream=rgb,steps={steps},train.checkpoint_every=2"
  _run(env, config, root / "full")
  check_run(root / "full", steps)
  work = root / "killed"
  p = _launch(env, config, work)
  ckpt = work / "checkpoints"
  deadline = time.time() + 900
  while time.time() < deadline and p.poll() is None:
    if ckpt.is_dir() and any(d.name.isdigit() and int(d.name) >= 2 for d in ckpt.iterdir()):
      break
    time.sleep(0.02)
  assert p.poll() is None, "the run ended before it could be killed: " + p.stdout.read()[-2000:]
  p.send_signal(signal.SIGKILL)
  p.wait()
  assert p.returncode == -signal.SIGKILL
  assert not (work / "results.json").exists()
  out = _run(env, config, work)
  resumed = [line for line in out.splitlines() if line.startswith("resumed")]
  assert resumed, out[-2000:]
  step = int(resumed[0].rsplit(" ", 1)[1])
  assert 2 <= step < steps
  a, b = restore_state(root / "full", "latest"), restore_state(work, "latest")
  assert int(a["step"]) == int(b["step"]) == steps
  leaves_a, leaves_b = [np.asarray(x) for x in _leaves(a["params"])], [np.asarray(x) for x in _leaves(b["params"])]
  assert len(leaves_a) == len(leaves_b) > 10
  for x, y in zip(leaves_a, leaves_b):
    assert x.tobytes() == y.tobytes()
  for x, y in zip(_leaves(a["batch_stats"]), _leaves(b["batch_stats"])):
    assert np.asarray(x).tobytes() == np.asarray(y).tobytes()
  # metrics.jsonl holds each train step once (rows after the checkpoint were dropped on resume).
  check_run(work, steps)
  assert json.loads((work / "results.json").read_text())["test"] == json.loads(
      (root / "full" / "results.json").read_text())["test"]


def _leaves(tree):
  import jax
  return jax.tree.leaves(tree)


@pytest.fixture(scope="session")
def ucf_store(realdata, e2e_env):
  """A store of the 4 shipped UCF101 clips with a mini split (2 train / 2 test), pre-processed once."""
  root, env = e2e_env
  split_dir = root / "ucf_splits"
  split_dir.mkdir()
  official = realdata / "ucf101" / "ucfTrainTestlist"
  shutil.copy(official / "classInd.txt", split_dir / "classInd.txt")
  index = {line.split()[1]: line.split()[0] for line in (official / "classInd.txt").read_text().splitlines()
           if line.strip()}
  for s in (1, 2, 3):
    (split_dir / f"trainlist0{s}.txt").write_text(
        "".join(f"{c} {index[c.split('/')[0]]}\n" for c in UCF_MINI["train"]))
    (split_dir / f"testlist0{s}.txt").write_text("".join(f"{c}\n" for c in UCF_MINI["test"]))
  store = root / "ucf_store"
  cmd = [sys.executable, "-m", "attn_har.data.preprocess", "--dataset", "ucf101", "--root",
         str(realdata / "ucf101"), "--split-dir", str(split_dir), "--out", str(store), "--flow", "dis",
         "--frames", "6", "--length", "2", "--size", "40", "40", "--workers", "0", "--no-progress"]
  r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
  assert r.returncode == 0, r.stderr[-3000:]
  return store


@pytest.fixture(scope="session")
def hmdb_store(realdata, e2e_env):
  """A store of the shipped HMDB51 avi clips; official split 1 has one as train, one as test."""
  root, env = e2e_env
  store = root / "hmdb_store"
  cmd = [sys.executable, "-m", "attn_har.data.preprocess", "--dataset", "hmdb51", "--root",
         str(realdata / "hmdb51"), "--out", str(store), "--flow", "dis", "--frames", "6", "--length", "2",
         "--size", "40", "40", "--workers", "0", "--no-progress", "--allow-missing"]
  r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
  assert r.returncode == 0, r.stderr[-3000:]
  return store


def test_ucf101_cbam_smoke_on_real_clips(ucf_store, e2e_env):
  root, env = e2e_env
  work = root / "ucf101_cbam"
  _run(env, f"configs/ucf101_cbam.py:smoke,store={ucf_store}", work)
  results = check_run(work, 3)
  assert results["test"]["videos"] == 2
  assert set(results["test_streams"]) == {"rgb", "flow", "fused"}
  assert len(results["classes"]) == 101 and np.sum(results["test_confusion"]) == 2
  config = json.loads((work / "config.json").read_text())
  assert config["model"]["num_classes"] == 101 and config["model"]["attention"] == "cbam"
  rows = [json.loads(l) for l in (work / "metrics.jsonl").read_text().splitlines()]
  assert {r["split"] for r in rows} == {"train", "test"}   # one clip per class: no validation hold-out


def test_missing_dataset_names_layout_and_command(tmp_path, e2e_env):
  _, env = e2e_env
  p = _launch(env, f"configs/hmdb51_l2pa.py:smoke,store={tmp_path / 'nope'}", tmp_path / "w")
  out, _ = p.communicate(timeout=300)
  assert p.returncode == 1
  assert "testTrainMulti_7030_splits" in out and "python -m attn_har.data.preprocess --dataset hmdb51" in out


def test_typo_fails_before_any_work(tmp_path, e2e_env):
  _, env = e2e_env
  p = _launch(env, "configs/synthetic_cbam.py:smoke,backbone=mobilenet_v3", tmp_path / "w")
  out, _ = p.communicate(timeout=120)
  assert p.returncode == 2 and "mobilenet_v2" in out
  assert not (tmp_path / "w").exists()


def _image_folder(root: pathlib.Path, classes: int, per_class: int = 2):
  """<root>/{train,test}/<class>/*.png with `classes` class folders (the dataset's K) of tiny images."""
  import cv2
  rng = np.random.default_rng(0)
  for subset in ("train", "test"):
    for c in range(classes):
      d = root / subset / f"class{c}"
      d.mkdir(parents=True)
      for i in range(per_class):
        img = rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)
        img[..., c % 3] = 255
        cv2.imwrite(str(d / f"{i}.png"), img)
  return root


ALL_CONFIGS = sorted(p.stem for p in (REPO / "configs").glob("[!_]*.py"))
ALWAYS = {"cifar100_cbam"}


@pytest.mark.e2e
@pytest.mark.parametrize("name", ALL_CONFIGS)
def test_every_config_smoke(name, tmp_path, e2e_env, request):
  if name not in ALWAYS and os.environ.get("ATTN_HAR_ALL_SMOKE") != "1":
    pytest.skip("set ATTN_HAR_ALL_SMOKE=1 to smoke-train every config (about a minute each on 2 cores)")
  root, env = e2e_env
  dataset = name.split("_")[0]
  if dataset in ("cifar100", "imagenette"):
    arg = f"smoke,root={_image_folder(tmp_path / 'images', 100 if dataset == 'cifar100' else 10)}"
  elif dataset == "ucf101":
    arg = f"smoke,store={request.getfixturevalue('ucf_store')}"
  elif dataset == "hmdb51":
    arg = f"smoke,store={request.getfixturevalue('hmdb_store')}"
  else:
    arg = "smoke"
  _run(env, f"configs/{name}.py:{arg}", tmp_path / "w")
  check_run(tmp_path / "w", 3)
  assert any((tmp_path / "w" / "tb").iterdir())
