"""Clip store: atomic writes, resumability, safe file names, manifest validation, reader errors."""

import json
import os

import numpy as np
import pytest

from attn_har.data import store
from attn_har.data import store_write


def _arrays(seed=0, t=5, h=6, w=7, mask=True):
  rng = np.random.default_rng(seed)
  out = {"rgb": rng.integers(0, 256, (t, h, w, 3), dtype=np.uint8),
         "flow": rng.integers(0, 256, (t - 1, h, w, 2), dtype=np.uint8),
         "pairs": np.stack([np.arange(t - 1), np.arange(1, t)], 1).astype(np.int32)}
  if mask:
    out["mask"] = rng.integers(0, 2, (t, h, w), dtype=np.uint8)
  return out


def _manifest(entries, splits=None):
  ids = [e["id"] for e in entries]
  return {"version": 1, "dataset": "t", "classes": ["a", "b"], "frames": 5, "size": [6, 7],
          "flow": {"method": "fake", "clip_px": 20.0, "pairs": "consecutive", "length": 1, "bidirectional": False},
          "clips": entries, "splits": splits or {"1": {"train": ids[:1], "test": ids[1:]}}, "failures": []}


def test_roundtrip_entry_and_reader(tmp_path):
  ids = ["Class A/v_x (1).avi", "Class-B/v_y!.avi"]
  arrays = [_arrays(0), _arrays(1, mask=False)]
  entries = [store_write.write_clip(tmp_path, i, a, {"label": k, "num_frames": 40 + k, "source": f"/v/{k}"})
             for k, (i, a) in enumerate(zip(ids, arrays))]
  assert entries[0]["label"] == 0 and entries[1]["num_frames"] == 41 and entries[0]["source"] == "/v/0"
  assert entries[0]["frames"] == 5 and entries[0]["pairs"] == 4 and entries[0]["size"] == [6, 7]
  assert entries[0]["mask"] and not entries[1]["mask"]
  for i, e in zip(ids, entries):
    assert store_write.clip_done(tmp_path, i)
    assert store_write.read_entry(tmp_path, i) == e
  store_write.write_manifest(tmp_path, _manifest(entries))
  s = store.ClipStore(tmp_path)
  assert len(s) == 2 and s.classes == ["a", "b"] and not s.has_mask
  assert s.ids("1", "train") == ids[:1] and s.ids("1", "test") == ids[1:]
  for i, a, k in zip(ids, arrays, range(2)):
    got = s.read(i)
    assert got["label"] == k and set(got) == set(a) | {"label"}
    for key in a:
      np.testing.assert_array_equal(got[key], a[key])
      assert got[key].dtype == a[key].dtype
    assert s.verify(i)
  assert set(s.read(ids[0], keys=("rgb",))) == {"rgb", "label"}


def test_file_names_are_safe_and_unique():
  ids = ["A/b c.avi", "A/b_c.avi", "A/b!c.avi", "A/b(c).avi", "../../etc/passwd", "Ünïcode/x.avi"]
  names = [store.clip_file(i) for i in ids]
  assert len(set(names)) == len(ids)
  for n in names:
    assert n.startswith("clips/") and ".." not in n and "/" not in n[len("clips/"):]
    assert all(c.isalnum() or c in "._-" for c in n[len("clips/"):])
  assert store.clip_file(ids[0]) == store.clip_file("A/b c.avi")  # deterministic


def test_clip_done_false_for_partial_or_missing(tmp_path):
  clip_id = "C/v.avi"
  assert not store_write.clip_done(tmp_path, clip_id)
  e = store_write.write_clip(tmp_path, clip_id, _arrays(), {"label": 1, "num_frames": 5})
  npz = tmp_path / e["file"]
  data = npz.read_bytes()
  npz.write_bytes(data[: len(data) // 2])      # truncated by a crash
  assert not store_write.clip_done(tmp_path, clip_id)
  with pytest.raises(FileNotFoundError, match="C/v.avi"):
    store_write.read_entry(tmp_path, clip_id)
  npz.write_bytes(data)
  assert store_write.clip_done(tmp_path, clip_id)
  os.remove(npz.with_suffix(".json"))           # the entry is written last
  assert not store_write.clip_done(tmp_path, clip_id)
  assert not [p for p in (tmp_path / "clips").iterdir() if ".tmp" in p.name]


def test_verify_detects_corruption(tmp_path):
  e = store_write.write_clip(tmp_path, "c", _arrays(), {"label": 0, "num_frames": 5})
  store_write.write_manifest(tmp_path, _manifest([e], {"1": {"train": ["c"]}}))
  path = tmp_path / e["file"]
  data = bytearray(path.read_bytes())
  data[-100] ^= 0xFF
  path.write_bytes(bytes(data))
  with pytest.raises(ValueError, match="sha256"):
    store.ClipStore(tmp_path).verify("c")


@pytest.mark.parametrize("change, match", [
    (lambda a: a.update(rgb=a["rgb"].astype(np.float32)), "rgb.*uint8"),
    (lambda a: a.update(flow=a["flow"][:, :3]), "flow must be"),
    (lambda a: a.update(pairs=a["pairs"][:2]), "pairs must be"),
    (lambda a: a["pairs"].__setitem__((0, 1), 9), "outside"),
    (lambda a: a.update(mask=a["mask"][:2]), "mask must be"),
    (lambda a: a.pop("flow"), "missing array 'flow'"),
    (lambda a: a.update(depth=a["rgb"]), "unknown array keys"),
])
def test_write_clip_rejects_bad_arrays(tmp_path, change, match):
  a = _arrays()
  change(a)
  with pytest.raises(ValueError, match=match):
    store_write.write_clip(tmp_path, "bad/clip.avi", a, {"label": 0, "num_frames": 5})
  assert not store_write.clip_done(tmp_path, "bad/clip.avi")


def test_write_clip_rejects_bad_meta(tmp_path):
  with pytest.raises(ValueError, match="label"):
    store_write.write_clip(tmp_path, "x", _arrays(), {"num_frames": 5})
  with pytest.raises(ValueError, match="JSON"):
    store_write.write_clip(tmp_path, "x", _arrays(), {"label": 0, "num_frames": 5, "bad": object()})


def test_manifest_validation_and_reader_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match="preprocess"):
    store.ClipStore(tmp_path / "nowhere")
  e = store_write.write_clip(tmp_path, "c", _arrays(), {"label": 0, "num_frames": 5})
  with pytest.raises(FileNotFoundError, match="manifest"):
    store.ClipStore(tmp_path)
  bad = _manifest([e])
  del bad["classes"]
  with pytest.raises(ValueError, match="classes"):
    store_write.write_manifest(tmp_path, bad)
  with pytest.raises(ValueError, match="'ghost'"):
    store_write.write_manifest(tmp_path, _manifest([e], {"1": {"train": ["c", "ghost"]}}))
  store_write.write_manifest(tmp_path, _manifest([e], {"1": {"train": ["c"]}}))
  assert json.loads((tmp_path / "manifest.json").read_text())["clips"][0]["id"] == "c"
  s = store.ClipStore(tmp_path)
  with pytest.raises(KeyError, match="valid splits: \\['1'\\]"):
    s.ids("2", "train")
  with pytest.raises(KeyError, match="valid subsets: \\['train'\\]"):
    s.ids("1", "val")
  with pytest.raises(KeyError, match="'nope'"):
    s.read("nope")
