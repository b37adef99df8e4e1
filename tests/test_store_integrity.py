"""Stored checksums are checked: a pre-processing re-run redoes a clip damaged in place (same size), and reading a
damaged clip in the Grain pipeline names the clip, its file and the repair command instead of a bare BadZipFile."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from attn_har.data import datasets, pipeline, prepare, preprocess, store, store_build
from attn_har.data import store_write
from attn_har.data.clip_options import ClipOptions

REPO = pathlib.Path(__file__).resolve().parents[1]


def _args(out, *extra):
  return ["--dataset", "synthetic", "--out", str(out), "--flow", "farneback", "--synthetic-classes", "2",
          "--synthetic-clips-per-class", "3", "--synthetic-size", "16", "--synthetic-frames", "5", "--length", "2",
          "--workers", "0", "--no-progress", *extra]


def _damage(path: pathlib.Path) -> None:
  """Flips bytes in the middle of the file: same size, same name (bit rot, a bad copy)."""
  data = bytearray(path.read_bytes())
  for k in range(len(data) // 2, len(data) // 2 + 64):
    data[k] ^= 0x5A
  path.write_bytes(bytes(data))


@pytest.fixture(name="built")
def _built(tmp_path):
  out = tmp_path / "syn"
  assert preprocess.main(_args(out)) == 0
  manifest = json.loads((out / store.MANIFEST).read_text())
  return out, manifest


def test_rerun_redoes_a_clip_damaged_in_place(built, capsys):
  out, manifest = built
  capsys.readouterr()
  entry = manifest["clips"][2]
  path = out / entry["file"]
  size, good = path.stat().st_size, path.read_bytes()
  _damage(path)
  assert path.stat().st_size == size and store_write.clip_done(out, entry["id"])  # the size check alone misses it
  assert preprocess.main(_args(out)) == 0
  captured = capsys.readouterr()
  assert "1 new, 5 already done, 1 damaged clips redone" in captured.out
  assert f"DAMAGED {entry['id']}: sha256" in captured.err
  assert path.read_bytes() == good                 # redone (generation and flow are deterministic)
  assert store.ClipStore(out).verify(entry["id"])
  assert json.loads((out / store.MANIFEST).read_text()) == manifest
  # --no-verify trusts the size: the damage survives.
  _damage(path)
  assert preprocess.main(_args(out, "--no-verify")) == 0
  assert "0 new, 6 already done)" in capsys.readouterr().out
  with pytest.raises(store.DamagedClipError):
    store.ClipStore(out).verify(entry["id"])


def test_reading_a_damaged_clip_names_clip_file_and_repair_command(built):
  out, manifest = built
  entry = manifest["clips"][0]
  _damage(out / entry["file"])
  s = store.ClipStore(out)
  repair = s.repair_command()
  assert repair.startswith("python -m attn_har.data.preprocess --dataset synthetic --synthetic-classes 2 ")
  assert repair.endswith(f"--out {out}")
  with pytest.raises(store.DamagedClipError) as err:
    s.read(entry["id"])
  for part in (repr(entry["id"]), str(out / entry["file"]), "sha256", repair):
    assert part in str(err.value)
  # The Grain pipeline (training and evaluation) raises the same error.
  subset = next(sub for sub, ids in manifest["splits"]["1"].items() if entry["id"] in ids)
  it = pipeline.make_eval_loader(out, ClipOptions(num_frames=2, image_size=12), subset=subset, batch_size=1,
                                 prefetch=0, to_device=False)
  with pytest.raises(store.DamagedClipError) as err:
    list(it)
  assert repr(entry["id"]) in str(err.value) and repair in str(err.value)
  # Following the advice repairs the store.
  r = subprocess.run([sys.executable] + repair.split()[1:], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                     capture_output=True, text=True, timeout=120)
  assert r.returncode == 0 and "1 damaged clips redone" in r.stdout, r.stderr
  assert store.ClipStore(out).read(entry["id"])["rgb"].shape == (5, 16, 16, 3)


def test_missing_clip_file_and_split_view_name_the_original_store(built, tmp_path):
  out, manifest = built
  train = manifest["splits"]["1"]["train"]
  view = prepare.split_store(out, "1", 0.5, tmp_path / "run")   # synthetic has 'val': the store itself
  assert view == out
  m = dict(manifest, splits={"1": {"train": train, "test": manifest["splits"]["1"]["test"]}})
  other = tmp_path / "no_val"
  store_write.write_manifest(other, dict(m, clips=[dict(e, file=str((out / e["file"]).absolute())) for e in m["clips"]],
                                   split_view_of=str(out.absolute())))
  view = prepare.split_store(other, "1", 0.5, tmp_path / "run2")
  os.remove(out / manifest["clips"][0]["file"])
  s = store.ClipStore(view)
  with pytest.raises(store.DamagedClipError, match="cannot read") as err:
    s.read(manifest["clips"][0]["id"])
  assert f"--out {out.absolute()}" in str(err.value)


def test_stores_written_before_preprocess_args_get_a_repair_template(tmp_path):
  e = store_write.write_clip(tmp_path, "A/x.avi", {"rgb": np.zeros((3, 8, 8, 3), np.uint8),
                                             "flow": np.zeros((2, 8, 8, 2), np.uint8),
                                             "pairs": np.array([[0, 1], [1, 2]])}, {"label": 0, "num_frames": 3})
  store_write.write_manifest(tmp_path, {
      "version": 1, "dataset": "ucf101", "classes": ["A"], "frames": 3, "size": [8, 8],
      "flow": {"method": "dis", "clip_px": 20.0, "pairs": "consecutive", "length": 2, "bidirectional": False},
      "clips": [e], "splits": {"1": {"train": ["A/x.avi"]}}, "failures": []})
  assert store.ClipStore(tmp_path).repair_command() == (
      "python -m attn_har.data.preprocess --dataset ucf101 --root <ucf101 root> --flow dis --clip-px 20.0 "
      f"--pairing stored_frames --stacking consecutive --length 2 --frames 3 --size 8 8 --out {tmp_path}")


def test_recorded_arguments_name_each_source(tmp_path):
  for cls in ("a", "b"):
    (tmp_path / "v" / cls).mkdir(parents=True)
    (tmp_path / "v" / cls / "x.avi").write_bytes(b"")
  folder = datasets.Folder(str(tmp_path / "v"), test_fraction=0.25)
  settings = {"flow": "dis", "clip_px": 20.0, "pairing": "stored_frames", "stacking": "anchored", "length": 3,
              "bidirectional": True, "frames": 9, "size": [60, 80]}
  args = store_build.preprocess_args(folder, settings)
  parsed = preprocess.build_parser().parse_args(args + ["--out", "x"])
  assert (parsed.dataset, parsed.root, parsed.test_fraction) == ("folder", str(tmp_path / "v"), 0.25)
  assert preprocess.make_settings(parsed, preprocess.make_dataset(parsed)) == settings
