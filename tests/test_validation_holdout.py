"""The validation hold-out of a store without a 'val' subset (`data.prepare.split_store`): validation clips leave the
training set, every class keeps training clips, the test subset is untouched, and the view is deterministic."""

import json

import pytest

from attn_har.data import prepare, store
from attn_har.data import store_write

CLASSES = ["a", "b", "c", "d"]
# Class d has a single training clip: it must stay in training.
TRAIN = [f"{c}/v_{c}_g{g:02d}_c{k}.avi" for c in "abc" for g in range(1, 6) for k in range(1, 5)] + ["d/v_d_g01_c1.avi"]
TEST = [f"{c}/v_{c}_g{g:02d}_c1.avi" for c in "abcd" for g in range(6, 8)]


def _store(tmp_path, splits=None):
  entries = [{"id": i, "label": CLASSES.index(i.split("/")[0]), "file": store.clip_file(i), "frames": 5}
             for i in TRAIN + TEST]
  manifest = {"version": 1, "dataset": "t", "classes": CLASSES, "frames": 5, "size": [8, 8],
              "flow": {"method": "fake", "clip_px": 20.0, "pairs": "consecutive", "length": 1,
                       "bidirectional": False},
              "clips": entries, "splits": splits or {"1": {"train": TRAIN, "test": TEST}}, "failures": []}
  root = tmp_path / "store"
  store_write.write_manifest(root, manifest)
  return root


def test_holdout_moves_validation_clips_out_of_training(tmp_path):
  root = _store(tmp_path)
  view = prepare.split_store(root, "1", 0.25, tmp_path / "run")
  assert view != root
  s = store.ClipStore(view)
  train, val, test = s.ids("1", "train"), s.ids("1", "val"), s.ids("1", "test")
  assert val and not set(train) & set(val)
  assert sorted(train + val) == sorted(TRAIN) and len(train) + len(val) == len(TRAIN)
  assert test == TEST
  label = lambda i: s.entry(i)["label"]
  assert {label(i) for i in train} == {0, 1, 2, 3}           # every class keeps training clips
  assert {label(i) for i in val} == {0, 1, 2}                # the 1-clip class gives none away
  assert 0.1 < len(val) / len(TRAIN) < 0.45
  # Entries point at the original clip files, so the view holds no copies.
  assert all(s.entry(i)["file"].startswith(str(root.absolute())) for i in train + val)
  assert json.loads((view / "manifest.json").read_text())["split_view_of"] == str(root.absolute())


def test_holdout_is_deterministic_and_keeps_a_store_val_subset(tmp_path):
  root = _store(tmp_path)
  a = store.ClipStore(prepare.split_store(root, "1", 0.25, tmp_path / "r1")).ids("1", "val")
  b = store.ClipStore(prepare.split_store(root, "1", 0.25, tmp_path / "r2")).ids("1", "val")
  assert a == b
  with_val = _store(tmp_path / "v", {"1": {"train": TRAIN[:-2], "val": TRAIN[-2:], "test": TEST}})
  assert prepare.split_store(with_val, "1", 0.25, tmp_path / "r3") == with_val
  assert prepare.split_store(root, "1", 0.0, tmp_path / "r4") == root
  with pytest.raises(KeyError, match="valid splits"):
    prepare.split_store(root, "7", 0.25, tmp_path / "r5")
