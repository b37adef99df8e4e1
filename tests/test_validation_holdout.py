"""The validation hold-out of a store without a 'val' subset (`data.prepare.split_store`): validation clips leave the
training set in whole groups (UCF101 groups, HMDB51 source videos; checked on the real split lists), every class
keeps training clips, the test subset is untouched, and the view is deterministic."""

import json
import re

import numpy as np
import pytest

from attn_har.data import datasets, prepare, splits, store
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


def test_holdout_keeps_whole_groups_of_the_store_dataset(tmp_path):
  """A store of dataset 'ucf101' is held out by group: a validation group has no clip left in training."""
  root = _store(tmp_path)
  manifest = json.loads((root / "manifest.json").read_text())
  manifest["dataset"] = "ucf101"
  store_write.write_manifest(root, manifest)
  s = store.ClipStore(prepare.split_store(root, "1", 0.25, tmp_path / "run"))
  train, val = s.ids("1", "train"), s.ids("1", "val")
  group = datasets.UCF101.group_of
  assert val and not {group(i) for i in train} & {group(i) for i in val}
  assert {s.entry(i)["label"] for i in train} == {0, 1, 2, 3}


def _check_holdout(items, group_of, fraction=0.1):
  labels = dict(items)
  val = prepare.group_holdout(labels, group_of, fraction)
  train = [i for i in labels if i not in set(val)]
  return labels, train, val


def test_holdout_on_the_real_ucf101_split_lists_separates_groups(realdata):
  split_dir = str(realdata / "ucf101" / "ucfTrainTestlist")
  for split in (1, 2, 3):
    labels, train, val = _check_holdout(splits.ucf101(split_dir, split)[0], datasets.UCF101.group_of)
    val_groups = {datasets.UCF101.group_of(i) for i in val}
    assert val_groups and not val_groups & {datasets.UCF101.group_of(i) for i in train}
    # A group is the gXX of every class, as in the official test groups; no clip of it stays in training.
    assert all(i.split("_")[-2] not in val_groups for i in train)
    assert {labels[i] for i in train} == set(range(101))        # every class keeps training clips
    assert {labels[i] for i in val} == set(range(101))          # and every class is validated
    assert 0.07 < len(val) / len(labels) < 0.16, len(val) / len(labels)
    assert val == prepare.group_holdout(labels, datasets.UCF101.group_of, 0.1)   # deterministic


def test_holdout_on_the_real_hmdb51_split_lists_separates_source_videos(realdata):
  split_dir = str(realdata / "hmdb51" / "testTrainMulti_7030_splits")
  source = lambda i: re.sub(r"_\d+\.avi$", "", i)      # the rule: the name without its segment index
  for split in (1, 2, 3):
    labels, train, val = _check_holdout(splits.hmdb51(split_dir, split)[0], datasets.HMDB51.group_of)
    assert val and not {source(i) for i in val} & {source(i) for i in train}
    group = datasets.HMDB51.group_of
    assert not {group(i) for i in val} & {group(i) for i in train}   # nor the coarser tag-free source name
    assert {labels[i] for i in train} == set(range(51))
    assert {labels[i] for i in val} == set(range(51))
    per_class = np.bincount([labels[i] for i in val], minlength=51) / 70
    assert per_class.min() >= 0.1 - 1e-9 and per_class.max() < 0.35, (per_class.min(), per_class.max())


def test_group_keys_of_real_clip_names():
  assert datasets.UCF101.group_of("HandstandPushups/v_HandStandPushups_g08_c01.avi") == "g08"
  assert datasets.HMDB51.group_of("brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0.avi") == "April_09_brush_hair"
  assert (datasets.HMDB51.group_of("brush_hair/April_09_brush_hair_h_nm_np1_fr_goo_2.avi")
          == datasets.HMDB51.group_of("brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0.avi"))
  assert datasets.HMDB51.group_of("c/some_title_3.avi") == "some_title"     # untagged: the segment index only
  assert datasets.Synthetic.group_of("a/clip_1") == "a/clip_1"


def test_holdout_never_empties_a_class_of_training_clips():
  # Class 1 lives in one group only: holding that group out would empty it, so it stays in training.
  labels = {f"x/v_x_g{g:02d}_c1.avi": 0 for g in range(1, 9)} | {"y/v_y_g01_c1.avi": 1, "y/v_y_g01_c2.avi": 1}
  val = prepare.group_holdout(labels, datasets.UCF101.group_of, 0.5)
  assert val and all(labels[i] == 0 for i in val) and "x/v_x_g01_c1.avi" not in val
