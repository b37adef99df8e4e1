"""Official UCF101 and HMDB51 train/test split readers.

UCF101 (`ucfTrainTestlist/`): `classInd.txt` lines `<1-based index> <Class>`; `trainlist0N.txt` lines
`<Class>/<file>.avi <index>`; `testlist0N.txt` lines `<Class>/<file>.avi`. Labels come from classInd (0-based), so
they agree across splits. The folder part is matched to classInd case-insensitively and rewritten to the classInd
spelling, which is the on-disk folder (`HandstandPushups`, whose files are `v_HandStandPushups_*`).

HMDB51 (`testTrainMulti_7030_splits/`): one file `<class>_test_split<N>.txt` per class and split, lines
`<file>.avi <0|1|2>`: 1 = train, 2 = test, 0 = not used in that split (dropped). Labels are the index in the sorted
class names. Relative paths are `<class>/<file>.avi`.

Lines are stripped, so CRLF endings, trailing spaces and a UTF-8 byte-order mark parse identically; blank lines
are skipped. Every error names the file and line: undecodable (non-UTF-8) text, a malformed line, or a clip name
that is not a plain file name ('..', '/' or an absolute path would read outside the dataset folder).
"""

import os
import re
from typing import Dict, List, Sequence, Tuple

Item = Tuple[str, int]          # (relative path, label)
SPLITS = (1, 2, 3)

UCF101_LAYOUT = ("ucfTrainTestlist/ with classInd.txt, trainlist01-03.txt, testlist01-03.txt "
                 "(from https://www.crcv.ucf.edu/data/UCF101/UCF101TrainTestSplits-RecognitionTask.zip)")
HMDB51_LAYOUT = ("testTrainMulti_7030_splits/ with <class>_test_split{1,2,3}.txt for the 51 classes "
                 "(from https://serre-lab.clps.brown.edu/resource/hmdb-a-large-human-motion-database/, "
                 "test_train_splits.rar)")
_HMDB_FILE = re.compile(r"^(?P<cls>.+)_test_split(?P<split>[123])\.txt$")


def _check_split(split: int) -> int:
  if int(split) not in SPLITS:
    raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
  return int(split)


def _read_lines(path: str, layout: str) -> List[Tuple[int, str]]:
  """Returns (1-based line number, stripped line) of the non-empty lines of a UTF-8 text file (any line ending)."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f"split file not found: {path}; expected {layout}")
  with open(path, "rb") as f:
    raw = f.read()
  lines = []
  for n, line in enumerate(raw.removeprefix(b"\xef\xbb\xbf").splitlines(), 1):
    try:
      text = line.decode("utf-8").strip()
    except UnicodeDecodeError as e:
      raise ValueError(f"{path}:{n}: not UTF-8 text (byte 0x{line[e.start]:02x} at column {e.start + 1}); "
                       f"replace the file with an intact copy of {layout}") from None
    if text:
      lines.append((n, text))
  return lines


def _plain_name(path: str, n: int, name: str, line: str) -> str:
  """`name` when it is a plain file name; else ValueError naming the file and line."""
  if not name or name in (".", "..") or "/" in name or "\\" in name or os.path.isabs(name):
    raise ValueError(f"{path}:{n}: clip name {name!r} is not a plain file name ('..' and paths are refused, they "
                     f"would read outside the dataset folder), got {line!r}")
  return name


def ucf101_classes(split_dir: str) -> List[str]:
  """Returns the 101 UCF101 class names in classInd order (label = position)."""
  path = os.path.join(split_dir, "classInd.txt")
  names = {}
  for n, line in _read_lines(path, UCF101_LAYOUT):
    parts = line.split()
    if len(parts) != 2 or not parts[0].isdigit():
      raise ValueError(f"{path}:{n}: expected '<index> <Class>', got {line!r}")
    if int(parts[0]) in names:
      raise ValueError(f"{path}:{n}: class index {parts[0]} appears twice ({names[int(parts[0])]} and {parts[1]})")
    names[int(parts[0])] = _plain_name(path, n, parts[1], line)
  if sorted(names) != list(range(1, len(names) + 1)):
    raise ValueError(f"{path}: class indices are not 1..{len(names)}")
  return [names[i] for i in range(1, len(names) + 1)]


def _ucf_list(path: str, classes: Sequence[str], with_label: bool) -> List[Item]:
  lookup = {c.lower(): i for i, c in enumerate(classes)}
  items = []
  for n, line in _read_lines(path, UCF101_LAYOUT):
    parts = line.replace("\\", "/").split()
    if len(parts) not in (1, 2) or parts[0].count("/") != 1 or (len(parts) == 2 and not parts[1].isdigit()):
      raise ValueError(f"{path}:{n}: expected '<Class>/<file>.avi[ <index>]', got {line!r}")
    folder, name = parts[0].split("/")
    label = lookup.get(folder.lower())
    if label is None:
      raise ValueError(f"{path}:{n}: class folder {folder!r} is not in classInd.txt")
    _plain_name(path, n, name, line)
    if with_label and len(parts) == 2 and int(parts[1]) - 1 != label:
      raise ValueError(f"{path}:{n}: index {parts[1]} disagrees with classInd ({classes[label]} is {label + 1})")
    items.append((f"{classes[label]}/{name}", label))
  return items


def ucf101(split_dir: str, split: int) -> Tuple[List[Item], List[Item]]:
  """Reads one official UCF101 split.

  Args:
    split_dir: the `ucfTrainTestlist` folder.
    split: 1, 2 or 3.

  Returns:
    (train, test): lists of (relative path 'Class/v_Class_gXX_cYY.avi', 0-based label).
  """
  split = _check_split(split)
  classes = ucf101_classes(split_dir)
  train = _ucf_list(os.path.join(split_dir, f"trainlist0{split}.txt"), classes, True)
  test = _ucf_list(os.path.join(split_dir, f"testlist0{split}.txt"), classes, False)
  _check_disjoint(train, test, split_dir, split)
  return train, test


def _hmdb_files(split_dir: str) -> Dict[Tuple[str, int], str]:
  if not os.path.isdir(split_dir):
    raise FileNotFoundError(f"HMDB51 split folder not found: {split_dir}; expected {HMDB51_LAYOUT}")
  files = {}
  for name in os.listdir(split_dir):
    m = _HMDB_FILE.match(name)
    if m:
      if m["cls"] in (".", ".."):
        raise ValueError(f"{os.path.join(split_dir, name)}: class name {m['cls']!r} is refused (it would read "
                         f"outside the video folder); remove the file")
      files[(m["cls"], int(m["split"]))] = os.path.join(split_dir, name)
  if not files:
    raise FileNotFoundError(f"no '<class>_test_split<N>.txt' files in {split_dir}; expected {HMDB51_LAYOUT}")
  return files


def hmdb51_classes(split_dir: str) -> List[str]:
  """Returns the HMDB51 class names, sorted (label = position)."""
  return sorted({cls for cls, _ in _hmdb_files(split_dir)})


def hmdb51(split_dir: str, split: int) -> Tuple[List[Item], List[Item]]:
  """Reads one official HMDB51 split (clips marked 0 are dropped).

  Args:
    split_dir: the `testTrainMulti_7030_splits` folder.
    split: 1, 2 or 3.

  Returns:
    (train, test): lists of (relative path '<class>/<file>.avi', 0-based label).
  """
  split = _check_split(split)
  files = _hmdb_files(split_dir)
  classes = sorted({cls for cls, _ in files})
  train, test = [], []
  for label, cls in enumerate(classes):
    path = files.get((cls, split))
    if path is None:
      raise FileNotFoundError(f"missing {cls}_test_split{split}.txt in {split_dir}; expected {HMDB51_LAYOUT}")
    for n, line in _read_lines(path, HMDB51_LAYOUT):
      parts = line.split()
      if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
        raise ValueError(f"{path}:{n}: expected '<file>.avi <0|1|2>', got {line!r}")
      _plain_name(path, n, parts[0], line)
      if parts[1] == "1":
        train.append((f"{cls}/{parts[0]}", label))
      elif parts[1] == "2":
        test.append((f"{cls}/{parts[0]}", label))
  _check_disjoint(train, test, split_dir, split)
  return train, test


def _check_disjoint(train: List[Item], test: List[Item], split_dir: str, split: int) -> None:
  both = {p for p, _ in train} & {p for p, _ in test}
  if both:
    raise ValueError(f"{split_dir} split {split}: {len(both)} clips are in both train and test, "
                     f"e.g. {sorted(both)[0]!r}")
