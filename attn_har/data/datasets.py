"""Video dataset sources for pre-processing: `DATASETS` maps a name to a source class.

A source lists its clips (`ClipSpec`: store id, label, file or synthetic index), its class names and its splits,
and loads the T sampled frames of one clip. Store ids are relative paths ('Class/v_Class_g01_c01.avi').

  'ucf101'     <root>/UCF-101/<Class>/*.avi and <root>/ucfTrainTestlist/ (official splits 1-3, train/test).
  'hmdb51'     <root>/videos/<class>/*.avi (or <root>/<class>/*.avi) and <root>/testTrainMulti_7030_splits/
               (official splits 1-3; clips marked 0 are not used).
  'folder'     <root>/<class>/*.{avi,mp4,...}; one deterministic stratified split '1': per class, the clips are
               ordered by the sha1 of their file name and the first round(test_fraction * n) are test (at least
               one when a class has two or more clips). Adding files never moves an existing clip to the other
               subset unless it changes the per-class test count.
  'synthetic'  `attn_har.data.synthetic.SyntheticActions`; split '1' = its train/val/test.

What differs per dataset is an attribute or method of its class, so no caller compares names:
  help                  the raw-data layout, for the message when a store is missing.
  generated             True when the clips are generated from settings (no raw data): a run builds a missing store.
  from_args(args)       the source the preprocess CLI's arguments name.
  from_config(c)        (generated sources) the source the `data` config section `c` describes.
  store_frames(c)       frames T per clip of the store that the `data` config section `c` describes.
  store_tag(c)          the default store folder name for `c` (`attn_har.data.prepare.default_store`).
  default_frames        T when --frames is not given.
  frame_size(size)      the stored frame size [H, W] for a requested one.
  cli_args()            the preprocess arguments that name this source (recorded in the manifest for repairs).
  group_of(clip_id)     the clips that must stay on one side of a train/validation hold-out share this key
                        (`attn_har.data.prepare.split_store`): UCF101 its group, HMDB51 its source video, else the clip.

`load(spec, select, size)` decodes (or generates) a clip and keeps the video frames `select(N)` picks from its N
frames: pre-processing selects the stored frames (`stacking.store_frames`) and the frames of their flow pairs.
Frames are resized while decoding with `decode.resize_cover` to the store size (aspect kept, centre crop; a no-op
for native-size clips); a synthetic clip keeps its own size.
"""

import argparse
import dataclasses
import hashlib
import os
import re
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from attn_har.data import decode, splits, stacking, synthetic

VIDEO_EXTENSIONS = (".avi", ".mp4", ".mkv", ".webm", ".mov", ".mpg", ".mpeg", ".m4v", ".wmv", ".flv")
UCF101_HELP = ("expected <root>/UCF-101/<Class>/v_*.avi and <root>/ucfTrainTestlist/ (classInd.txt, "
               "trainlist0N.txt, testlist0N.txt). Get UCF101.rar and UCF101TrainTestSplits-RecognitionTask.zip "
               "from https://www.crcv.ucf.edu/data/UCF101.php and extract both into <root>; nothing is downloaded "
               "for you.")
HMDB51_HELP = ("expected <root>/videos/<class>/*.avi (or <root>/<class>/*.avi) and "
               "<root>/testTrainMulti_7030_splits/<class>_test_split{1,2,3}.txt. Get hmdb51_org.rar (extract each "
               "class .rar into videos/) and test_train_splits.rar from "
               "https://serre-lab.clps.brown.edu/resource/hmdb-a-large-human-motion-database/; nothing is "
               "downloaded for you.")
FOLDER_HELP = f"expected <root>/<class>/<clip> with extensions {', '.join(VIDEO_EXTENSIONS)}"


@dataclasses.dataclass(frozen=True)
class ClipSpec:
  """One clip to pre-process.

  Attributes:
    id: store id (relative path, unique within the dataset).
    label: 0-based class index.
    path: the video file, or None for synthetic clips.
    index: synthetic clip index, or None.
  """
  id: str
  label: int
  path: Optional[str] = None
  index: Optional[int] = None


class _VideoSource:
  """Shared loading for file-based sources."""

  name = ""
  help = FOLDER_HELP
  generated = False
  default_frames = 25
  split_ids: Tuple[str, ...] = ("1",)   # the split ids its stores hold (checked before any work)
  classes: List[str]
  clips: List[ClipSpec]
  missing: List[ClipSpec]
  root: str = ""
  split_dir: Optional[str] = None
  _splits: Dict[str, Dict[str, List[str]]]

  @classmethod
  def from_args(cls, args: argparse.Namespace) -> "_VideoSource":
    """The source at --root (official splits from --split-dir when given)."""
    return cls(_root_of(args), split_dir=args.split_dir)

  @staticmethod
  def store_frames(c: Any) -> int:
    """Frames per clip of the store that the `data` config section `c` describes (`c.store_frames`)."""
    return c.store_frames

  @staticmethod
  def store_tag(c: Any) -> str:
    """'<dataset>-t<frames>-s<size>-<flow>-<pairing>-<stacking>-L<length>' for the `data` config section `c`."""
    return (f"{c.dataset}-t{c.store_frames}-s{c.store_size}-{c.flow_method}-{pairing_of(c)}-{c.stacking}-"
            f"L{c.flow_length}")

  @staticmethod
  def group_of(clip_id: str) -> str:
    """The hold-out group of a clip: the clip itself."""
    return clip_id

  def cli_args(self) -> List[str]:
    """['--dataset', name, '--root', root, ('--split-dir', dir)]."""
    args = ["--dataset", self.name, "--root", os.path.abspath(self.root)]
    return args + (["--split-dir", os.path.abspath(self.split_dir)] if self.split_dir else [])

  def frame_size(self, size: Sequence[int]) -> List[int]:
    """The stored frame size [H, W]: the requested one."""
    return [int(s) for s in size]

  def splits(self, present: Sequence[str]) -> Dict[str, Dict[str, List[str]]]:
    """The dataset's splits restricted to the ids in `present`."""
    keep = set(present)
    return {s: {sub: [i for i in ids if i in keep] for sub, ids in subsets.items()}
            for s, subsets in self._splits.items()}

  def load(self, spec: ClipSpec, select: Callable[[int], np.ndarray], size: Sequence[int],
           max_decode_bytes: int = 1 << 30) -> Tuple[np.ndarray, Optional[np.ndarray], int, np.ndarray]:
    """Decodes one clip keeping the frames `select(N)` picks.

    Long clips (header frame count x frame bytes over `max_decode_bytes`) are decoded in two passes keeping only
    the selected frames; others in one pass.

    Args:
      spec: the clip.
      select: maps the decoded frame count N to the video frame indices to keep (int [K] in [0, N)).
      size: (H, W) of the kept frames.
      max_decode_bytes: the two-pass threshold.

    Returns:
      (rgb uint8 [K, H, W, 3], mask None, decoded frame count N, frame indices int64 [K] = select(N)).
    """
    frame_bytes = int(size[0]) * int(size[1]) * 3
    if decode.header_frame_count(spec.path) * frame_bytes > max_decode_bytes:
      rgb, n = decode.read_sampled_frames(spec.path, select, size)
      return rgb, None, n, np.asarray(select(n), np.int64)
    frames = decode.read_frames(spec.path, size)
    idx = _selected(select, len(frames), spec.path)
    return frames[idx], None, len(frames), idx


def _selected(select: Callable[[int], np.ndarray], n: int, what: str) -> np.ndarray:
  idx = np.asarray(select(n), np.int64)
  if idx.ndim != 1 or (idx.size and (idx.min() < 0 or idx.max() >= n)):
    raise ValueError(f"select({n}) must return 1-D frame indices in [0, {n}), got {idx}: {what}")
  return idx


def pairing_of(c: Any) -> str:
  """The `data` section's pairing (`stacking.PAIRINGS`; configs without one get the default)."""
  return c.get("pairing") or stacking.DEFAULT_PAIRING


def _root_of(args: argparse.Namespace) -> str:
  if not args.root:
    raise FileNotFoundError(f"--root is required for --dataset {args.dataset}")
  return args.root


def _resolve(video_dir: str, rel: str, listing: Dict[str, Dict[str, str]]) -> str:
  """Path of `rel` under `video_dir`, matching folder and file names case-insensitively if needed."""
  path = os.path.join(video_dir, rel)
  if os.path.exists(path):
    return path
  folder, name = rel.split("/", 1)
  if not listing:
    for d in os.listdir(video_dir):
      full = os.path.join(video_dir, d)
      if os.path.isdir(full):
        listing[d.lower()] = {"": d, **{f.lower(): f for f in os.listdir(full)}}
  entries = listing.get(folder.lower())
  if entries and name.lower() in entries:
    return os.path.join(video_dir, entries[""], entries[name.lower()])
  return path


def _require_dir(path: str, what: str, help_text: str) -> None:
  if not os.path.isdir(path):
    raise FileNotFoundError(f"{what} not found: {path}; {help_text}")


_UCF101_GROUP = re.compile(r"_(g\d+)_c\d+(\.\w+)?$")
# HMDB51 clip names end in the clip's tags and its segment index: '<source>_<action>_<body>_<camera>_np<people>_
# <view>_<quality>_<n>.avi' (e.g. 'April_09_brush_hair_u_nm_np1_ba_goo_0.avi'); every official split file matches.
_HMDB51_TAGS = re.compile(r"_[a-z]+_[a-z]+_np\d+_[a-z]+_[a-z]+_\d+(\.\w+)?$")
_TRAILING_INDEX = re.compile(r"_\d+(\.\w+)?$")


class UCF101(_VideoSource):
  """UCF101 with its three official splits."""

  name = "ucf101"
  help = UCF101_HELP
  split_ids = tuple(str(s) for s in splits.SPLITS)

  @staticmethod
  def group_of(clip_id: str) -> str:
    """'gXX' of '<Class>/v_<Class>_gXX_cYY.avi': clips of a group share actors and background. The number is
    taken across classes, as the official splits do (split 1 tests g01-g07 of every class)."""
    m = _UCF101_GROUP.search(clip_id)
    return m.group(1) if m else clip_id

  def __init__(self, root: str, split_dir: Optional[str] = None):
    self.root, self.split_dir = root, split_dir
    video_dir = os.path.join(root, "UCF-101")
    split_dir = split_dir or os.path.join(root, "ucfTrainTestlist")
    _require_dir(video_dir, "UCF101 video folder", UCF101_HELP)
    _require_dir(split_dir, "UCF101 split folder", UCF101_HELP)
    self.classes = splits.ucf101_classes(split_dir)
    self._splits, labels = {}, {}
    for s in splits.SPLITS:
      train, test = splits.ucf101(split_dir, s)
      self._splits[str(s)] = {"train": [p for p, _ in train], "test": [p for p, _ in test]}
      labels.update(train + test)
    _collect(self, video_dir, labels)


class HMDB51(_VideoSource):
  """HMDB51 with its three official 70/30 splits (clips marked 0 are not used)."""

  name = "hmdb51"
  help = HMDB51_HELP
  split_ids = tuple(str(s) for s in splits.SPLITS)

  @staticmethod
  def group_of(clip_id: str) -> str:
    """The source video of '<class>/<source>_<action>_<tags>_<n>.avi': the name without its tags and trailing
    segment index (without the index alone when the tags do not parse). Clips of one source differing only in tags
    are segments of the same footage; the official splits never put them on both sides (0 in splits 1-3)."""
    name = clip_id.rsplit("/", 1)[-1]
    stripped = _HMDB51_TAGS.sub("", name)
    return stripped if stripped != name else _TRAILING_INDEX.sub("", name)

  def __init__(self, root: str, split_dir: Optional[str] = None):
    self.root, self.split_dir = root, split_dir
    _require_dir(root, "HMDB51 root", HMDB51_HELP)
    video_dir = os.path.join(root, "videos") if os.path.isdir(os.path.join(root, "videos")) else root
    split_dir = split_dir or os.path.join(root, "testTrainMulti_7030_splits")
    _require_dir(split_dir, "HMDB51 split folder", HMDB51_HELP)
    self.classes = splits.hmdb51_classes(split_dir)
    self._splits, labels = {}, {}
    for s in splits.SPLITS:
      train, test = splits.hmdb51(split_dir, s)
      self._splits[str(s)] = {"train": [p for p, _ in train], "test": [p for p, _ in test]}
      labels.update(train + test)
    _collect(self, video_dir, labels)


def _collect(source: _VideoSource, video_dir: str, labels: Dict[str, int]) -> None:
  """Sets `clips` (listed and present) and `missing` (listed, absent) in sorted id order."""
  listing: Dict[str, Dict[str, str]] = {}
  source.clips, source.missing = [], []
  for rel in sorted(labels):
    path = _resolve(video_dir, rel, listing)
    spec = ClipSpec(rel, labels[rel], path)
    (source.clips if os.path.isfile(path) else source.missing).append(spec)


class Folder(_VideoSource):
  """`<root>/<class>/<clip>` videos with a deterministic stratified train/test split '1'."""

  name = "folder"
  help = FOLDER_HELP

  @classmethod
  def from_args(cls, args: argparse.Namespace) -> "Folder":
    """The folder at --root, split with --test-fraction."""
    return cls(_root_of(args), test_fraction=args.test_fraction)

  def __init__(self, root: str, test_fraction: float = 0.3):
    _require_dir(root, "video folder", FOLDER_HELP)
    if not 0.0 <= test_fraction < 1.0:
      raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    self.root, self.test_fraction = root, test_fraction
    self.classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    self.clips, self.missing = [], []
    train, test = [], []
    for label, cls in enumerate(self.classes):
      names = sorted(f for f in os.listdir(os.path.join(root, cls)) if f.lower().endswith(VIDEO_EXTENSIONS))
      names.sort(key=lambda f: hashlib.sha1(f.encode("utf-8")).hexdigest())
      n_test = round(test_fraction * len(names))
      if test_fraction > 0 and len(names) >= 2:
        n_test = min(max(n_test, 1), len(names) - 1)
      for k, f in enumerate(names):
        rel = f"{cls}/{f}"
        self.clips.append(ClipSpec(rel, label, os.path.join(root, cls, f)))
        (test if k < n_test else train).append(rel)
    if not self.clips:
      raise FileNotFoundError(f"no video files under {root}; {FOLDER_HELP}")
    self.clips.sort(key=lambda c: c.id)
    self._splits = {"1": {"train": sorted(train), "test": sorted(test)}}

  def cli_args(self) -> List[str]:
    """['--dataset', 'folder', '--root', root, '--test-fraction', f]."""
    return ["--dataset", self.name, "--root", os.path.abspath(self.root), "--test-fraction", str(self.test_fraction)]


class Synthetic:
  """`SyntheticActions` clips; --root is unused. Split '1' holds its train/val/test subsets.

  Generated, not read: its settings are the --synthetic-* arguments or the `data.synthetic` config section
  (num_classes, clips_per_class, size, num_frames, seed, scene), and its clips keep their own frame count and size.
  """

  name = "synthetic"
  help = "generated from its settings (attn_har.data.synthetic); there is no raw data"
  generated = True
  split_ids = ("1",)

  def __init__(self, num_classes: int = 10, clips_per_class: int = 30, size: int = 64, num_frames: int = 16,
               seed: int = 0, scene: str = "motion"):
    self.data = synthetic.SyntheticActions(num_classes=num_classes, clips_per_class=clips_per_class, size=size,
                                 num_frames=num_frames, seed=seed, scene=scene)
    self._args = {"classes": num_classes, "clips-per-class": clips_per_class, "size": size, "frames": num_frames,
                  "scene": scene}
    self._seed = seed
    self.classes = list(self.data.class_names)
    self.clips = [ClipSpec(self.data.name_of(i), self.data.label_of(i), index=i) for i in range(len(self.data))]
    self.missing = []

  @classmethod
  def from_args(cls, args: argparse.Namespace) -> "Synthetic":
    """The dataset the --synthetic-* arguments and --seed describe."""
    return cls(num_classes=args.synthetic_classes, clips_per_class=args.synthetic_clips_per_class,
               size=args.synthetic_size, num_frames=args.synthetic_frames, seed=args.seed,
               scene=args.synthetic_scene)

  @classmethod
  def from_config(cls, c: Any) -> "Synthetic":
    """The dataset the `data` config section `c` describes (`c.synthetic`)."""
    s = c.synthetic
    return cls(num_classes=int(s.num_classes), clips_per_class=int(s.clips_per_class), size=int(s.size),
               num_frames=int(s.num_frames), seed=int(s.seed), scene=str(s.get("scene", "motion")))

  @staticmethod
  def store_frames(c: Any) -> int:
    """Frames per clip of its store: every generated frame (`c.synthetic.num_frames`)."""
    return c.synthetic.num_frames

  @staticmethod
  def store_tag(c: Any) -> str:
    """'synthetic[-<scene>]-v<generator>-k<classes>-n<clips>-s<size>-t<frames>-seed<seed>-<flow>-<pairing>-<stacking>-
    L<length>' (the scene is named unless it is 'motion')."""
    s = c.synthetic
    scene = str(s.get("scene", "motion"))
    return (f"synthetic{'' if scene == 'motion' else '-' + scene}-v{synthetic.GENERATOR_VERSION}-k{s.num_classes}-n{s.clips_per_class}-s{s.size}-"
            f"t{s.num_frames}-seed{s.seed}-{c.flow_method}-{pairing_of(c)}-{c.stacking}-L{c.flow_length}")

  def cli_args(self) -> List[str]:
    """['--dataset', 'synthetic', '--synthetic-classes', K, ..., '--seed', seed]."""
    args = ["--dataset", self.name]
    for key, value in self._args.items():
      args += [f"--synthetic-{key}", str(value)]
    return args + ["--seed", str(self._seed)]

  @staticmethod
  def group_of(clip_id: str) -> str:
    """The hold-out group of a clip: the clip itself (generated clips are independent)."""
    return clip_id

  @property
  def default_frames(self) -> int:
    """Every generated frame."""
    return self.data.num_frames

  def frame_size(self, size: Sequence[int] = ()) -> List[int]:
    """Its own size [S, S]; the requested size is ignored."""
    return [self.data.size] * 2

  def splits(self, present: Sequence[str]) -> Dict[str, Dict[str, List[str]]]:
    keep = set(present)
    out = {"train": [], "val": [], "test": []}
    for spec in self.clips:
      if spec.id in keep:
        out[self.data.split_of(spec.index)].append(spec.id)
    return {"1": out}

  def load(self, spec: ClipSpec, select: Callable[[int], np.ndarray], size: Sequence[int] = (),
           max_decode_bytes: int = 0):
    """Generates clip `spec.index` (the generated clip is the video) and keeps the frames `select(N)` picks, with
    their actor masks; its own size is kept. Returns (rgb [K, S, S, 3], mask [K, S, S], N, indices [K])."""
    clip = self.data.clip(spec.index)
    idx = _selected(select, len(clip["rgb"]), spec.id)
    return clip["rgb"][idx], clip["mask"][idx], len(clip["rgb"]), idx


DATASETS = {
    "ucf101": UCF101,
    "hmdb51": HMDB51,
    "folder": Folder,
    "synthetic": Synthetic,
}
