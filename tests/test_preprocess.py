"""Pre-processing (`store_build.build_store` and its CLI): parallel, resumable after SIGKILL, bad clips reported,
manifest rebuilt from files."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np

from attn_har.config.loader import load_config
from attn_har.data import clip_pool, datasets, prepare, preprocess, quantize, stacking, store, store_build
from attn_har.data import store_write
from attn_har.data import splits as split_lists

REPO = pathlib.Path(__file__).resolve().parents[1]
GOOD = ["ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi", "BaseballPitch/v_BaseballPitch_g01_c01.avi",
        "HeadMassage/v_HeadMassage_g02_c05.avi", "Shotput/v_Shotput_g05_c02.avi"]
BAD = "ApplyEyeMakeup/v_ApplyEyeMakeup_g02_c01.avi"


def _mini_ucf(realdata, root):
  """UCF101 layout in `root`: symlinks to the 4 real clips, one corrupt clip, a mini split file."""
  src = realdata / "ucf101"
  for rel in GOOD:
    (root / "UCF-101" / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / "UCF-101" / rel).symlink_to(src / "UCF-101" / rel)
  data = bytearray((src / "UCF-101" / GOOD[0]).read_bytes())
  data[5000:] = np.random.default_rng(0).integers(0, 256, len(data) - 5000, dtype=np.uint8).tobytes()
  (root / "UCF-101" / BAD).write_bytes(bytes(data))
  lists = root / "ucfTrainTestlist"
  lists.mkdir()
  (lists / "classInd.txt").symlink_to(src / "ucfTrainTestlist" / "classInd.txt")
  for s in (1, 2, 3):   # the same mini split three times, CRLF like the official copies
    (lists / f"trainlist0{s}.txt").write_text(f"{GOOD[0]} 1\r\n{BAD} 1\r\n{GOOD[1]} 7\r\n")
    (lists / f"testlist0{s}.txt").write_text(f"{GOOD[2]}\r\n{GOOD[3]}\r\n")


def test_cli_survives_sigkill_and_reports_corrupt_clip(realdata, tmp_path):
  root, out = tmp_path / "ucf", tmp_path / "store"
  root.mkdir()
  _mini_ucf(realdata, root)
  cmd = [sys.executable, "-m", "attn_har.data.preprocess", "--dataset", "ucf101", "--root", str(root),
         "--out", str(out), "--flow", "dis", "--frames", "6", "--length", "3", "--workers", "1"]
  env = {**os.environ, "PYTHONPATH": str(REPO)}
  def start_and_wait_for_new_clip():
    before = set((out / store.CLIP_DIR).glob("*.json")) if (out / store.CLIP_DIR).is_dir() else set()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
      if (out / store.CLIP_DIR).is_dir() and set((out / store.CLIP_DIR).glob("*.json")) - before:
        break
      time.sleep(0.01)
    return proc

  first = start_and_wait_for_new_clip()
  os.killpg(first.pid, signal.SIGINT)    # Ctrl-C reaches the whole process group
  _, err = first.communicate(timeout=60)
  assert first.returncode == 130 and b"interrupted" in err
  second = start_and_wait_for_new_clip()
  os.killpg(second.pid, signal.SIGKILL)  # the CLI and its worker
  second.communicate()
  assert second.returncode == -signal.SIGKILL
  assert not (out / store.MANIFEST).exists()
  done_before = {p.name for p in (out / store.CLIP_DIR).glob("*.json")}
  assert 2 <= len(done_before) < len(GOOD)

  third = subprocess.run(cmd + ["--no-progress"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
  assert third.returncode == 1, third.stderr
  assert BAD in third.stderr and "VideoDecodeError" in third.stderr
  assert f"{len(done_before)} already done" in third.stdout
  manifest = json.loads((out / store.MANIFEST).read_text())
  ids = [e["id"] for e in manifest["clips"]]
  assert sorted(ids) == sorted(GOOD)                        # every good clip exactly once
  assert [f["id"] for f in manifest["failures"]] == [BAD]
  assert manifest["splits"]["1"] == {"train": GOOD[:2], "test": GOOD[2:]}
  assert not [p for p in (out / store.CLIP_DIR).iterdir() if p.name.startswith(".")]
  clips = store.ClipStore(out)
  frame_counts = {GOOD[0]: 164, GOOD[1]: 107, GOOD[2]: 307, GOOD[3]: 130}
  for entry in manifest["clips"]:
    assert clips.verify(entry["id"])
    assert entry["num_frames"] == frame_counts[entry["id"]]
    # Pairing 'video_frames' (default): frame k is video frame ⌊k·(N - L)/T⌋ and its L = 3 pairs join consecutive
    # video frames, each pair stored once (N = 107..307 frames: 6 stacks never overlap, 18 pairs).
    starts = [k * (entry["num_frames"] - 3) // 6 for k in range(6)]
    assert entry["frame_indices"] == starts
    clip = clips.read(entry["id"])
    np.testing.assert_array_equal(clip["frame_indices"], starts)
    np.testing.assert_array_equal(clip["pairs"], [(n + l - 1, n + l) for n in starts for l in (1, 2, 3)])
    assert clip["rgb"].shape == (6, 240, 320, 3) and clip["flow"].shape == (18, 240, 320, 2)
    assert clip["label"] == {"ApplyEyeMakeup": 0, "BaseballPitch": 6, "HeadMassage": 38, "Shotput": 78}[
        entry["id"].split("/")[0]]


def _synthetic_args(out, *extra):
  return ["--dataset", "synthetic", "--out", str(out), "--flow", "farneback", "--synthetic-classes", "3",
          "--synthetic-clips-per-class", "5", "--synthetic-size", "32", "--synthetic-frames", "8", "--length", "2",
          "--workers", "0", "--no-progress", *extra]


def test_synthetic_store_resume_and_settings_guard(tmp_path, capsys):
  out = tmp_path / "syn"
  assert preprocess.main(_synthetic_args(out, "--stacking", "anchored", "--limit", "4")) == 0
  assert len(json.loads((out / store.MANIFEST).read_text())["clips"]) == 4
  assert preprocess.main(_synthetic_args(out, "--stacking", "anchored")) == 0
  assert "11 new, 4 already done" in capsys.readouterr().out
  manifest = json.loads((out / store.MANIFEST).read_text())
  assert manifest["flow"] == {"method": "farneback", "clip_px": 20.0, "pairing": "video_frames", "pairs": "anchored",
                              "length": 2, "bidirectional": False}
  assert manifest["frames"] == 8 and manifest["size"] == [32, 32] and manifest["failures"] == []
  subsets = manifest["splits"]["1"]
  assert sorted(subsets) == ["test", "train", "val"]
  assert len(manifest["clips"]) == 15
  assert sorted(sum(subsets.values(), [])) == sorted(e["id"] for e in manifest["clips"])
  clip = store.ClipStore(out).read("move_left/clip_000")
  assert clip["mask"].shape == (8, 32, 32) and set(np.unique(clip["mask"])) <= {0, 1}
  # The generated clip is the video: every frame is stored, stacks start at frames 0..N-L-1.
  np.testing.assert_array_equal(clip["frame_indices"], np.arange(8))
  np.testing.assert_array_equal(clip["pairs"], stacking.required_pairs(8, 2, "anchored"))
  # move_left: the actor's flow inside its mask points left.
  u = quantize.dequantize(clip["flow"][..., 0])
  consecutive = (clip["pairs"][:, 1] - clip["pairs"][:, 0]) == 1
  inside = clip["mask"][clip["pairs"][consecutive, 0]].astype(bool)
  assert u[consecutive][inside].mean() < -0.3
  # Other settings on the same store are refused.
  assert preprocess.main(_synthetic_args(out, "--stacking", "consecutive")) == 2
  assert "other settings" in capsys.readouterr().err


def test_missing_dataset_names_layout(tmp_path, capsys):
  assert preprocess.main(["--dataset", "hmdb51", "--root", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
  err = capsys.readouterr().err
  assert "testTrainMulti_7030_splits" in err and "nothing is downloaded" in err
  assert preprocess.main(["--dataset", "ucf101", "--root", str(tmp_path / "x"), "--out", str(tmp_path / "o")]) == 2
  assert "UCF-101" in capsys.readouterr().err


def test_hmdb_layout_and_folder_split(realdata, tmp_path):
  hmdb = datasets.HMDB51(str(realdata / "hmdb51"))
  assert len(hmdb.classes) == 51 and len(hmdb.clips) == 2
  listed = {p for s in (1, 2, 3) for p, _ in sum(split_lists.hmdb51(
      str(realdata / "hmdb51" / "testTrainMulti_7030_splits"), s), [])}
  assert len(hmdb.clips) + len(hmdb.missing) == len(listed) and 5100 < len(listed) < 6766
  for c in hmdb.clips:
    assert os.path.isfile(c.path) and hmdb.classes[c.label] == c.id.split("/")[0]
  splits = hmdb.splits([c.id for c in hmdb.clips])
  assert sorted(splits) == ["1", "2", "3"]
  for cls, n in (("a", 10), ("b", 3), ("c", 1)):
    (tmp_path / cls).mkdir()
    for k in range(n):
      (tmp_path / cls / f"clip{k}.mp4").write_bytes(b"")
  (tmp_path / "a" / "notes.txt").write_text("ignored")
  folder = datasets.Folder(str(tmp_path), test_fraction=0.3)
  test = folder.splits([c.id for c in folder.clips])["1"]["test"]
  assert len(folder.clips) == 14 and folder.classes == ["a", "b", "c"]
  assert [sum(t.startswith(f"{c}/") for t in test) for c in "abc"] == [3, 1, 0]
  assert datasets.Folder(str(tmp_path), test_fraction=0.3).splits([c.id for c in folder.clips])["1"]["test"] == test


class _CrashingSource:
  """Synthetic source whose clip 'crash' kills its worker process (like a segfault in a decoder)."""

  def load(self, spec, select, size, max_decode_bytes):
    if spec.id == "crash":
      os._exit(3)
    idx = select(3)
    rgb = np.random.default_rng(spec.index).integers(0, 256, (len(idx), 16, 16, 3), dtype=np.uint8)
    return rgb, None, 3, idx


def test_worker_crash_fails_only_clips_in_flight(tmp_path):
  specs = [datasets.ClipSpec("a", 0, index=0), datasets.ClipSpec("crash", 0, index=1),
           datasets.ClipSpec("c", 1, index=2), datasets.ClipSpec("d", 1, index=3)]
  settings = {"flow": "farneback", "clip_px": 20.0, "pairing": "video_frames", "stacking": "consecutive",
              "length": 1, "bidirectional": False, "frames": 3, "size": [16, 16]}
  results = []
  clip_pool.run_pool(specs, 1, (_CrashingSource(), settings, str(tmp_path), 1, 1 << 20), results.append)
  status = {r[1]["id"] if r[0] == "ok" else r[1]: r[0] for r in results}
  assert status == {"a": "ok", "crash": "error", "c": "ok", "d": "ok"}
  assert all(store_write.clip_done(tmp_path, c) for c in "acd") and not store_write.clip_done(tmp_path, "crash")


def test_build_store_function_equals_the_cli(tmp_path, monkeypatch):
  """`store_build.build_store` (a function of a source and settings) writes the bytes `python -m ...preprocess` does."""
  source = datasets.Synthetic(num_classes=2, clips_per_class=3, size=16, num_frames=5, seed=1)
  settings = store_build.store_settings(source, flow_method="farneback", stacking_mode="anchored", length=2)
  result = store_build.build_store(source, settings, tmp_path / "fn", workers=0, progress=False)
  assert (result.clips, result.new, result.failures, result.status()) == (6, 6, [], 0)
  cmd = [sys.executable, "-m", "attn_har.data.preprocess", "--dataset", "synthetic", "--out", str(tmp_path / "cli"),
         "--flow", "farneback", "--stacking", "anchored", "--length", "2", "--synthetic-classes", "2",
         "--synthetic-clips-per-class", "3", "--synthetic-size", "16", "--synthetic-frames", "5", "--seed", "1",
         "--workers", "0", "--no-progress"]
  r = subprocess.run(cmd, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
                     timeout=120)
  assert r.returncode == 0, r.stderr
  files = lambda d: {p.relative_to(d): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}
  assert files(tmp_path / "fn") == files(tmp_path / "cli") and len(files(tmp_path / "cli")) == 13
  # A run's default store of the synthetic config is named by its source class.
  monkeypatch.setenv("ATTN_HAR_CACHE", str(tmp_path / "cache"))
  c = load_config(f"{REPO}/configs/synthetic_cbam.py:smoke").data
  assert prepare.default_store(c) == tmp_path / "cache" / "stores" / (
      "synthetic-v2-k3-n5-s32-t6-seed0-farneback_small-video_frames-consecutive-L2")
