"""Bad inputs give one clear error naming the file (and line) and what to do, and leave nothing half-written: a
damaged manifest, undecodable or malformed split files, a full disk, a 1-frame clip, an empty test subset, paths
with '..', and pool workers of a SIGKILLed pre-processing command."""

import errno
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from attn_har.config.loader import load_config
from attn_har.data import datasets, pipeline, prepare, preprocess, splits, store, store_build
from attn_har.data import store_write
from attn_har.data.clip_options import ClipOptions

REPO = pathlib.Path(__file__).resolve().parents[1]


def _syn_args(out, *extra):
  return ["--dataset", "synthetic", "--out", str(out), "--flow", "farneback", "--synthetic-classes", "2",
          "--synthetic-clips-per-class", "3", "--synthetic-size", "16", "--synthetic-frames", "5", "--length", "2",
          "--workers", "0", "--no-progress", *extra]


def _arrays():
  return {"rgb": np.zeros((3, 8, 8, 3), np.uint8), "flow": np.zeros((2, 8, 8, 2), np.uint8),
          "pairs": np.array([[0, 1], [1, 2]], np.int16)}


def _leftovers(root: pathlib.Path) -> list:
  return [p for p in root.rglob("*") if ".tmp" in p.name]


def test_damaged_manifest_names_its_path_and_a_rerun_rebuilds_it(tmp_path):
  out = tmp_path / "syn"
  assert preprocess.main(_syn_args(out)) == 0
  good = (out / store.MANIFEST).read_text()
  (out / store.MANIFEST).write_text(good[: len(good) // 2])       # truncated
  with pytest.raises(ValueError) as err:
    store.ClipStore(out)
  message = str(err.value)
  assert "\n" not in message and f"{out / store.MANIFEST}: damaged manifest, not valid JSON (line " in message
  assert "re-running the preprocess command" in message and f"--out {out}" in message
  assert preprocess.main(_syn_args(out)) == 0                     # the manifest is rebuilt from the clip files
  assert json.loads((out / store.MANIFEST).read_text()) == json.loads(good)


def _ucf_lists(folder: pathlib.Path, train: bytes, test: bytes = b"A/v_A_g01_c02.avi\n",
               classes: bytes = b"1 A\r\n2 B\r\n") -> pathlib.Path:
  folder.mkdir(parents=True, exist_ok=True)
  (folder / "classInd.txt").write_bytes(classes)
  for s in (1, 2, 3):
    (folder / f"trainlist0{s}.txt").write_bytes(train)
    (folder / f"testlist0{s}.txt").write_bytes(test)
  return folder


@pytest.mark.parametrize("train, classes, where, match", [
    (b"A/v_A_g01_c01.avi 1\n\nB/v_B_g01_\xe9t\xe9.avi 2\n", None, "trainlist01.txt:3", "not UTF-8 text"),
    (b"A/v_A_g01_c01.avi one\n", None, "trainlist01.txt:1", "expected '<Class>/<file>.avi"),
    (b"A/.. 1\n", None, "trainlist01.txt:1", "clip name '..' is not a plain file name"),
    (b"A/v_A_g01_c01.avi 1\n", b"1 A\n\n1 B\n", "classInd.txt:3", "class index 1 appears twice"),
    (b"A/v_A_g01_c01.avi 1\n", b"\xff\xfe1\x00 A\n", "classInd.txt:1", "not UTF-8 text"),
])
def test_bad_ucf101_split_files_name_file_and_line(tmp_path, capsys, train, classes, where, match):
  root = tmp_path / "ucf"
  (root / "UCF-101").mkdir(parents=True)
  lists = _ucf_lists(root / "ucfTrainTestlist", train, classes=classes or b"1 A\r\n2 B\r\n")
  with pytest.raises(ValueError, match=match) as err:
    splits.ucf101(str(lists), 1)
  assert str(err.value).startswith(f"{lists / where}: ")
  out = tmp_path / "store"
  assert preprocess.main(["--dataset", "ucf101", "--root", str(root), "--out", str(out), "--no-progress"]) == 2
  err_lines = capsys.readouterr().err.strip().splitlines()
  assert len(err_lines) == 1 and err_lines[0].startswith(f"error: {lists / where}: ")
  assert not out.exists()                                          # nothing written


def test_a_bom_and_crlf_still_parse(tmp_path):
  lists = _ucf_lists(tmp_path, b"\xef\xbb\xbfA/v_A_g01_c01.avi 1\r\n", classes=b"\xef\xbb\xbf1 A\r\n2 B\r\n")
  assert splits.ucf101(str(lists), 1) == ([("A/v_A_g01_c01.avi", 0)], [("A/v_A_g01_c02.avi", 0)])


@pytest.mark.parametrize("line, match", [
    (b"../../etc/passwd 1", "clip name '../../etc/passwd' is not a plain file name"),
    (b"/etc/passwd 2", "clip name '/etc/passwd' is not a plain file name"),
    (b"v_x.avi 3", "expected '<file>.avi <0|1|2>'"),
    (b"v_\xe9.avi 1", "not UTF-8 text"),
])
def test_bad_hmdb51_split_files_name_file_and_line(tmp_path, line, match):
  for s in (1, 2, 3):
    (tmp_path / f"run_test_split{s}.txt").write_bytes(b"v_ok.avi 1\n" + line + b"\n")
  with pytest.raises(ValueError, match=match) as err:
    splits.hmdb51(str(tmp_path), 1)
  assert str(err.value).startswith(f"{tmp_path / 'run_test_split1.txt'}:2: ")


def test_manifest_paths_outside_the_store_are_refused(tmp_path):
  (tmp_path / "secret.npz").write_bytes(b"x")
  e = store_write.write_clip(tmp_path / "s", "A/x.avi", _arrays(), {"label": 0, "num_frames": 3})
  for file in ("../secret.npz", str(tmp_path / "secret.npz"), "clips/../../secret.npz"):
    manifest = {"version": 1, "dataset": "t", "classes": ["A"], "frames": 3, "size": [8, 8], "flow": {},
                "clips": [dict(e, file=file)], "splits": {"1": {"train": ["A/x.avi"]}}, "failures": []}
    store_write.write_manifest(tmp_path / "s", manifest)
    with pytest.raises(ValueError) as err:
      store.ClipStore(tmp_path / "s")
    assert f"entry of clip 'A/x.avi' names file {file!r}, which is not a path inside {tmp_path / 's'}" in str(
        err.value)


def test_a_full_disk_leaves_no_temporary_and_names_the_clip(tmp_path, monkeypatch):
  def savez_on_full_disk(f, **arrays):
    f.write(b"PK" * 1000)
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

  monkeypatch.setattr(store.np, "savez", savez_on_full_disk)
  with pytest.raises(OSError, match="clip 'A/x.avi': cannot write .*No space left on device") as err:
    store_write.write_clip(tmp_path, "A/x.avi", _arrays(), {"label": 0, "num_frames": 3})
  assert err.value.errno == errno.ENOSPC
  assert not _leftovers(tmp_path) and not list(tmp_path.rglob("*.npz"))
  # Through build_store: every clip fails with its name, nothing half-written remains, the status is 1.
  source = datasets.Synthetic(num_classes=2, clips_per_class=1, size=16, num_frames=5)
  settings = store_build.store_settings(source, flow_method="farneback", length=2)
  result = store_build.build_store(source, settings, tmp_path / "b", workers=0, progress=False)
  assert result.status() == 1 and len(result.failures) == 2
  assert all(f"clip {f['id']!r}: cannot write" in f["error"] and "No space left" in f["error"]
             for f in result.failures)
  assert not _leftovers(tmp_path / "b") and not list((tmp_path / "b").rglob("*.npz"))


def test_a_full_disk_while_writing_the_entry_removes_the_clip_file(tmp_path, monkeypatch):
  real = store_write._atomic_write_bytes  # pylint: disable=protected-access

  def full(path, data, what=""):
    if path.suffix == ".json":
      raise OSError(errno.ENOSPC, f"{what}: cannot write {path}: No space left on device")
    real(path, data, what)

  monkeypatch.setattr(store_write, "_atomic_write_bytes", full)
  with pytest.raises(OSError, match="clip 'A/x.avi'"):
    store_write.write_clip(tmp_path, "A/x.avi", _arrays(), {"label": 0, "num_frames": 3})
  assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def _write_avi(path: pathlib.Path, frames: int) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (32, 24))
  for t in range(frames):
    writer.write(np.full((24, 32, 3), 40 * t, np.uint8))
  writer.release()


def test_a_one_frame_clip_fails_naming_the_file(tmp_path):
  root = tmp_path / "videos"
  _write_avi(root / "a" / "one.avi", 1)
  _write_avi(root / "a" / "many.avi", 6)
  _write_avi(root / "b" / "many.avi", 6)
  source = datasets.Folder(str(root), test_fraction=0.0)
  settings = store_build.store_settings(source, flow_method="farneback", length=2, frames=4, size=(24, 32))
  result = store_build.build_store(source, settings, tmp_path / "s", workers=0, progress=False)
  assert result.status() == 1
  assert result.failures == [{"id": "a/one.avi", "path": str(root / "a" / "one.avi"),
                              "error": f"ValueError: {root / 'a' / 'one.avi'}: only 1 decodable frame; optical flow "
                                       "needs at least 2 (replace the file or drop it from the split)"}]
  assert sorted(store.ClipStore(tmp_path / "s").manifest["splits"]["1"]["train"]) == ["a/many.avi", "b/many.avi"]


def test_an_empty_test_subset_is_an_error_before_training(tmp_path):
  out = tmp_path / "syn"
  assert preprocess.main(_syn_args(out)) == 0
  manifest = json.loads((out / store.MANIFEST).read_text())
  manifest["splits"]["1"]["test"] = []
  store_write.write_manifest(out, manifest)
  expected = f"store {out}: split '1' has no 'test' clips (train: "
  with pytest.raises(ValueError, match="re-run: python -m attn_har.data.preprocess") as err:
    pipeline.make_eval_loader(out, ClipOptions(num_frames=2, image_size=12), subset="test", batch_size=1,
                              prefetch=0, to_device=False)
  assert str(err.value).startswith(expected)
  config = load_config(f"{REPO}/configs/synthetic_cbam.py:smoke,store={out}")
  with pytest.raises(ValueError) as err:
    prepare.RunData(config, tmp_path / "run", log=lambda *_: None)
  assert str(err.value).startswith(expected)


def _children(pid: int) -> set:
  kids = set()
  for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
    try:
      fields = stat.read_text().rsplit(")", 1)[1].split()
    except OSError:
      continue
    if int(fields[1]) == pid:
      kids.add(int(stat.parent.name))
  return kids


def _alive(pid: int) -> bool:
  try:
    state = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
  except OSError:
    return False
  return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and PR_SET_PDEATHSIG are Linux's")
def test_workers_die_with_a_sigkilled_preprocess_parent(tmp_path):
  out = tmp_path / "syn"
  cmd = [sys.executable, "-m", "attn_har.data.preprocess", *_syn_args(out)[:-3], "--workers", "2", "--no-progress",
         "--synthetic-clips-per-class", "200", "--synthetic-size", "64", "--synthetic-frames", "16"]
  kids: set = set()
  proc = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, start_new_session=True)
  try:
    deadline = time.time() + 90
    while time.time() < deadline and proc.poll() is None:
      kids = _children(proc.pid)
      if len(kids) >= 2 and (out / store.CLIP_DIR).is_dir() and len(list((out / store.CLIP_DIR).glob("*.json"))) > 2:
        break
      time.sleep(0.05)
    assert proc.poll() is None and len(kids) >= 2, "the workers never started"
    proc.send_signal(signal.SIGKILL)   # the parent only, as the OOM killer would
    proc.wait()
    deadline = time.time() + 10
    while time.time() < deadline and any(_alive(k) for k in kids):
      time.sleep(0.05)
    survivors = [k for k in kids if _alive(k)]
    assert not survivors, f"worker processes {survivors} outlived their SIGKILLed parent"
  finally:
    if proc.poll() is None:
      os.killpg(proc.pid, signal.SIGKILL)
    for k in kids:
      if _alive(k):
        os.kill(k, signal.SIGKILL)
