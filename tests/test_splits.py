"""Official UCF101 / HMDB51 split readers on the real split files (../shared/realdata)."""

import collections
import os

import pytest

from attn_har.data import splits

UCF_SIZES = {1: (9537, 3783), 2: (9586, 3734), 3: (9624, 3696)}
UCF_NAMED = ["ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi", "BaseballPitch/v_BaseballPitch_g01_c01.avi",
             "HeadMassage/v_HeadMassage_g02_c05.avi", "Shotput/v_Shotput_g05_c02.avi"]


@pytest.fixture(scope="module")
def ucf_dir(realdata):
  return str(realdata / "ucf101" / "ucfTrainTestlist")


@pytest.fixture(scope="module")
def hmdb_dir(realdata):
  return str(realdata / "hmdb51" / "testTrainMulti_7030_splits")


@pytest.mark.parametrize("split", [1, 2, 3])
def test_ucf101_split_sizes_and_disjoint(ucf_dir, split):
  train, test = splits.ucf101(ucf_dir, split)
  assert (len(train), len(test)) == UCF_SIZES[split]
  train_paths, test_paths = {p for p, _ in train}, {p for p, _ in test}
  assert len(train_paths) == len(train) and len(test_paths) == len(test)
  assert not train_paths & test_paths
  assert len(train_paths | test_paths) == 13320
  classes = splits.ucf101_classes(ucf_dir)
  assert len(classes) == 101
  # Label = classInd position, folder part = classInd spelling, every class in both subsets.
  for path, label in train + test:
    assert path.split("/")[0] == classes[label]
  assert {l for _, l in train} == {l for _, l in test} == set(range(101))
  # Test groups: g01-g07 (split 1), g08-g14 (split 2), g15-g21 (split 3).
  groups = {int(p.rsplit("_g", 1)[1][:2]) for p, _ in test}
  assert groups == set(range(7 * split - 6, 7 * split + 1))


def test_ucf101_labels_consistent_and_handstand_case(ucf_dir):
  labels = {}
  for split in (1, 2, 3):
    train, test = splits.ucf101(ucf_dir, split)
    for path, label in train + test:
      assert labels.setdefault(path, label) == label
  hand = [p for p in labels if p.lower().startswith("handstandpushups/")]
  assert len(hand) > 100
  assert all(p.startswith("HandstandPushups/v_HandStandPushups_") for p in hand)
  train1, test1 = splits.ucf101(ucf_dir, 1)
  assert set(UCF_NAMED) <= {p for p, _ in test1}
  for split in (2, 3):
    assert set(UCF_NAMED) <= {p for p, _ in splits.ucf101(ucf_dir, split)[0]}


@pytest.mark.parametrize("split", [1, 2, 3])
def test_hmdb51_split_sizes(hmdb_dir, split):
  train, test = splits.hmdb51(hmdb_dir, split)
  assert (len(train), len(test)) == (3570, 1530)
  assert not {p for p, _ in train} & {p for p, _ in test}
  classes = splits.hmdb51_classes(hmdb_dir)
  assert len(classes) == 51 and classes == sorted(classes)
  per_class_train = collections.Counter(l for _, l in train)
  per_class_test = collections.Counter(l for _, l in test)
  assert set(per_class_train.values()) == {70} and set(per_class_test.values()) == {30}
  assert all(p.split("/")[0] == classes[l] for p, l in train + test)


def test_hmdb51_drops_unused_and_labels_consistent(hmdb_dir):
  labels = {}
  for split in (1, 2, 3):
    train, test = splits.hmdb51(hmdb_dir, split)
    for path, label in train + test:
      assert labels.setdefault(path, label) == label
  zero = []
  with open(os.path.join(hmdb_dir, "brush_hair_test_split1.txt")) as f:
    zero = [line.split()[0] for line in f if line.split() and line.split()[1] == "0"]
  assert zero
  train, test = splits.hmdb51(hmdb_dir, 1)
  assert not {f"brush_hair/{z}" for z in zero} & {p for p, _ in train + test}


def _crlf_copy(src, dst):
  dst.mkdir()
  for name in os.listdir(src):
    with open(os.path.join(src, name), "rb") as f:
      data = f.read().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    assert b"\r\n" in data
    (dst / name).write_bytes(data)
  return str(dst)


def test_crlf_copies_parse_identically(ucf_dir, hmdb_dir, tmp_path):
  ucf_crlf = _crlf_copy(ucf_dir, tmp_path / "ucf")
  hmdb_crlf = _crlf_copy(hmdb_dir, tmp_path / "hmdb")
  assert splits.ucf101_classes(ucf_crlf) == splits.ucf101_classes(ucf_dir)
  for split in (1, 2, 3):
    assert splits.ucf101(ucf_crlf, split) == splits.ucf101(ucf_dir, split)
    assert splits.hmdb51(hmdb_crlf, split) == splits.hmdb51(hmdb_dir, split)


def test_bad_inputs_name_the_problem(ucf_dir, tmp_path):
  with pytest.raises(ValueError, match="split must be one of"):
    splits.ucf101(ucf_dir, 4)
  with pytest.raises(FileNotFoundError, match="classInd.txt.*ucfTrainTestlist"):
    splits.ucf101(str(tmp_path), 1)
  with pytest.raises(FileNotFoundError, match="testTrainMulti_7030_splits"):
    splits.hmdb51(str(tmp_path / "none"), 1)
  bad = tmp_path / "bad"
  bad.mkdir()
  (bad / "classInd.txt").write_text("1 Archery\n2 Bowling\n")
  (bad / "trainlist01.txt").write_text("Archery/v_Archery_g01_c01.avi 1\nBowling/v_Bowling_g01_c01.avi 1\n")
  (bad / "testlist01.txt").write_text("")
  with pytest.raises(ValueError, match=r"trainlist01.txt:2: index 1 disagrees"):
    splits.ucf101(str(bad), 1)
  (bad / "trainlist01.txt").write_text("Juggling/v_Juggling_g01_c01.avi 1\n")
  with pytest.raises(ValueError, match="'Juggling' is not in classInd"):
    splits.ucf101(str(bad), 1)
