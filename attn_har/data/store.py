"""The clip store: one `.npz` per pre-processed clip plus a JSON manifest.

Layout of a store directory::

  <store_dir>/manifest.json          # written last by `write_manifest` (atomic)
  <store_dir>/clips/<safe>.npz       # arrays of one clip (uncompressed, see below)
  <store_dir>/clips/<safe>.json      # its manifest entry; present only once the .npz is complete

A clip file holds `rgb` uint8 [T, H, W, 3], `flow` uint8 [P, H, W, 2] (quantised with
`attn_har.data.quantize`), `pairs` int32 [P, 2] (flow p goes from video frame pairs[p, 0] to video frame
pairs[p, 1]), `frame_indices` int32 [T] (the video frame of each RGB row) and, optionally, `mask` uint8 [T, H, W].
How the pairs serve the stacks (the manifest's flow 'pairing', 'pairs' = stacking mode, 'length') is described in
`attn_har.data.stacking`. Stores written before the pairing was recorded hold int16 pairs of rows and no
frame_indices (pairing 'stored_frames'). Files are written uncompressed: on this machine `np.load` of an
uncompressed clip is several times faster than of a `savez_compressed` one (benchmarks/bench_pipeline.py
prints both), and random access during training matters more than disk space.

Writing (`attn_har.data.store_write`) is resumable: `write_clip` writes the `.npz` to a temporary name, renames
it into place, then writes the `.json` entry the same way, so `clip_done` (entry present, file of the recorded
size) never sees a half written clip. `read_entry` rebuilds a manifest entry from the `.json` without reading the
arrays. A failed write (e.g. a full disk) leaves no temporary file behind.

Integrity: each entry records the file's sha256 (`verify`; a pre-processing re-run checks every finished clip and
redoes damaged ones, `clip_damage`). A clip that cannot be read raises `DamagedClipError` naming the clip, its file
and the command that repairs the store (`repair_command`: the preprocess command re-run on the same --out, from
the manifest's `preprocess_args`). Entry files must lie inside the store (or, in a split view, inside the store it
views): a manifest naming a path with '..' or outside is refused.

Write side (the preprocess command, `store_write`)::

  entry = store_write.write_clip(store_dir, 'ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi', arrays, {'label': 0, ...})
  store_write.write_manifest(store_dir, {'version': 1, 'dataset': 'ucf101', 'classes': [...], 'clips': [...], ...})

Read side (the Grain pipeline)::

  store = ClipStore(store_dir)
  for clip_id in store.ids(split='1', subset='train'):
    clip = store.read(clip_id)   # {'rgb', 'flow', 'pairs', 'frame_indices', 'label', 'mask'?}
"""

import hashlib
import json
import os
import pathlib
import re
import shlex
import threading
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from attn_har.data.stacking import LEGACY_PAIRING

MANIFEST = "manifest.json"
CLIP_DIR = "clips"
VERSION = 1
MANIFEST_KEYS = ("version", "dataset", "classes", "frames", "size", "flow", "clips", "splits", "failures")
PREPROCESS_HINT = (
    "create it with the preprocess command, e.g. "
    "`python -m attn_har.data.preprocess --dataset synthetic --out {store}` "
    "(see `python -m attn_har.data.preprocess --help`)")

PREPROCESS_MODULE = "python -m attn_har.data.preprocess"

# np.load parses .npy headers with ast.literal_eval, which CPython 3.11 < 3.11.8 cannot run from several threads
# at once ("SystemError: AST constructor recursion depth mismatch", gh-106905); Grain reads with a thread pool.
_NPZ_LOCK = threading.Lock()

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def clip_file(clip_id: str) -> str:
  """Safe, unique relative file stem for a clip id (e.g. 'Class/v_x (1).avi' -> 'clips/Class_v_x_1_.avi-<hash>').

  The readable part replaces every run of characters outside [A-Za-z0-9._-] by '_'; the 10-hex-digit sha1 of
  the exact id keeps two ids that map to the same readable part apart.
  """
  if not isinstance(clip_id, str) or not clip_id:
    raise ValueError(f"clip id must be a non-empty string, got {clip_id!r}")
  readable = _UNSAFE.sub("_", clip_id).strip("._")[:80] or "clip"
  digest = hashlib.sha1(clip_id.encode("utf-8")).hexdigest()[:10]
  return f"{CLIP_DIR}/{readable}-{digest}"


class DamagedClipError(OSError, ValueError):
  """A stored clip is missing, unreadable or does not match its checksum; the message names the clip, its file
  and the repair command."""


def file_sha256(path: pathlib.Path) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      h.update(block)
  return h.hexdigest()


def clip_damage(store_dir, entry: Mapping[str, Any]) -> Optional[str]:
  """None when the file of a finished clip's `entry` matches its recorded sha256, else what is wrong with it."""
  path = pathlib.Path(store_dir) / entry["file"]
  try:
    digest = file_sha256(path)
  except OSError as e:
    return f"cannot read {path}: {e.strerror or e}"
  if digest != entry.get("sha256"):
    return f"sha256 of {path} is {digest}, its entry says {entry.get('sha256')}"
  return None


def repair_command(manifest: Mapping[str, Any], store_dir) -> str:
  """The preprocess command that rebuilds or repairs the store at `store_dir` (finished, intact clips are kept).

  Uses the manifest's `preprocess_args` (recorded by `store_build.build_store`); a store written before they were
  recorded gets the options its manifest holds, with a placeholder for the dataset folder (and, when the manifest
  records no pairing, 'stored_frames': what stores held before the pairing was recorded).
  """
  args = _preprocess_args(manifest) + ["--out", os.fspath(store_dir)]
  return " ".join([PREPROCESS_MODULE] + [_quote(str(a)) for a in args])


def _preprocess_args(manifest: Mapping[str, Any]) -> list:
  """The recorded preprocess arguments (all but --out), or those the manifest's options imply."""
  args = manifest.get("preprocess_args")
  if not args:
    dataset = str(manifest.get("dataset", "<dataset>"))
    f = manifest.get("flow", {})
    size = manifest.get("size") or ["<H>", "<W>"]
    args = ["--dataset", dataset, "--root", f"<{dataset} root>", "--flow", f.get("method", "<flow>"),
            "--clip-px", f.get("clip_px", "<clip px>"), "--pairing", f.get("pairing", LEGACY_PAIRING),
            "--stacking", f.get("pairs", "<stacking>"),
            "--length", f.get("length", "<L>"), "--frames", manifest.get("frames", "<T>"), "--size", *size]
    args += ["--bidirectional"] if f.get("bidirectional") else []
  elif "--pairing" not in args:   # recorded before the pairing was
    args = [*args, "--pairing", (manifest.get("flow") or {}).get("pairing", LEGACY_PAIRING)]
  return [str(a) for a in args]


def rebuild_command(manifest: Mapping[str, Any], out: str = "<new store dir>", **changes: str) -> str:
  """The preprocess command that builds a store like the one `manifest` describes into `out`, with option changes
  (e.g. `pairing='video_frames'` sets --pairing video_frames)."""
  args = _preprocess_args(manifest)
  for key, value in changes.items():
    flag = f"--{key.replace('_', '-')}"
    if flag in args:
      args[args.index(flag) + 1] = str(value)
    else:
      args += [flag, str(value)]
  return " ".join([PREPROCESS_MODULE] + [_quote(a) for a in [*args, "--out", out]])


def _quote(arg: str) -> str:
  return shlex.quote(arg) if not re.fullmatch(r"<[^<>]*>", arg) else arg


def _inside(path: str, base: pathlib.Path) -> bool:
  parts = pathlib.PurePath(path).parts
  if ".." in parts:
    return False
  full = os.path.normpath(base / path)
  return os.path.commonpath([full, os.path.normpath(base)]) == os.path.normpath(base)


def load_manifest(path: pathlib.Path, hint: str = "") -> dict:
  """Parses a manifest file; a damaged one raises ValueError naming it (and `hint`, what to do)."""
  try:
    manifest = json.loads(path.read_bytes().decode("utf-8"))
  except (UnicodeDecodeError, json.JSONDecodeError) as e:
    where = f" (line {e.lineno}, column {e.colno}: {e.msg})" if isinstance(e, json.JSONDecodeError) else ""
    raise ValueError(f"{path}: damaged manifest, not valid JSON{where}; "
                     f"{hint or 're-run the preprocess command that built this store with the same --out'}"
                     ) from None
  if not isinstance(manifest, dict) or not isinstance(manifest.get("clips"), list) or not isinstance(
      manifest.get("splits"), dict):
    raise ValueError(f"{path}: damaged manifest (no 'clips' list or 'splits' mapping); "
                     f"{hint or 're-run the preprocess command that built this store with the same --out'}")
  return manifest


class ClipStore:
  """Reader of a finished store.

  Attributes:
    root: the store directory.
    manifest: the parsed manifest.json.
    classes: class names, index = label.
    base: the folder entry files are relative to (`root`, or for a split view the store it views).
  """

  def __init__(self, store_dir):
    self.root = pathlib.Path(store_dir)
    path = self.root / MANIFEST
    if not path.is_file():
      what = "store directory" if not self.root.is_dir() else "manifest"
      raise FileNotFoundError(f"no clip store at {self.root} ({what} {path} missing); "
                              + PREPROCESS_HINT.format(store=self.root))
    hint = ("rebuild it by re-running the preprocess command that built this store with the same --out "
            f"(finished clips are kept), e.g. {PREPROCESS_MODULE} --dataset <dataset> ... --out {self.root}")
    self.manifest = load_manifest(path, hint)
    if self.manifest.get("version") != VERSION:
      raise ValueError(f"{path}: version {self.manifest.get('version')!r} unsupported (expected {VERSION})")
    self.classes = list(self.manifest["classes"])
    self.base = pathlib.Path(self.manifest.get("split_view_of") or self.root)
    self._entries = {}
    for e in self.manifest["clips"]:
      file = e.get("file") if isinstance(e, dict) else None
      if not isinstance(file, str) or not file or not _inside(file, self.base):
        clip_id = e.get("id") if isinstance(e, dict) else e
        raise ValueError(f"{path}: entry of clip {clip_id!r} names file {file!r}, which is not a path inside "
                         f"{self.base} ('..' and outside paths are refused); rebuild the store with: "
                         f"{self.repair_command()}")
      self._entries[e["id"]] = e

  def __len__(self) -> int:
    return len(self._entries)

  @property
  def has_mask(self) -> bool:
    """True when every clip stores a mask."""
    return bool(self._entries) and all(e.get("mask", False) for e in self._entries.values())

  def repair_command(self) -> str:
    """The preprocess command that repairs this store (for a split view: the store it views)."""
    return repair_command(self.manifest, self.base)

  def entry(self, clip_id: str) -> dict:
    """The manifest entry of `clip_id`."""
    try:
      return self._entries[clip_id]
    except KeyError:
      raise KeyError(f"clip {clip_id!r} not in store {self.root}") from None

  def path(self, clip_id: str) -> pathlib.Path:
    """The clip's file."""
    return self.base / self.entry(clip_id)["file"]

  def ids(self, split: str = "1", subset: str = "train") -> list:
    """Clip ids of one subset ('train', 'val', 'test', ...) of one split ('1', '2', '3')."""
    splits = self.manifest["splits"]
    if str(split) not in splits:
      raise KeyError(f"split {split!r} not in store {self.root}; valid splits: {sorted(splits)}")
    subsets = splits[str(split)]
    if subset not in subsets:
      raise KeyError(f"subset {subset!r} not in split {split!r} of {self.root}; valid subsets: {sorted(subsets)}")
    return list(subsets[subset])

  def require_ids(self, split: str = "1", subset: str = "train") -> list:
    """`ids(split, subset)`; ValueError naming the store, split and subset when the subset is empty."""
    ids = self.ids(split, subset)
    if not ids:
      counts = ", ".join(f"{k}: {len(v)}" for k, v in self.manifest["splits"][str(split)].items())
      raise ValueError(f"store {self.root}: split {split!r} has no {subset!r} clips ({counts}; "
                       f"{len(self.manifest.get('failures', []))} clips failed pre-processing); check the split "
                       f"files and the manifest's 'failures', then re-run: {self.repair_command()}")
    return ids

  def damaged(self, clip_id: str, reason: str) -> DamagedClipError:
    """The error for a clip that cannot be read: names the clip, its file, `reason` and the repair command."""
    return DamagedClipError(f"clip {clip_id!r} of store {self.root} is damaged: {reason}; file {self.path(clip_id)}; "
                            f"repair the store with: {self.repair_command()}")

  def read(self, clip_id: str, keys: Optional[Sequence[str]] = None) -> dict:
    """Arrays of one clip: {'rgb', 'flow' (uint8), 'pairs', 'frame_indices', 'label', 'mask' if stored}.

    Args:
      clip_id: the clip.
      keys: read only these arrays (of 'rgb', 'flow', 'pairs', 'frame_indices', 'mask'; a missing 'mask' or
        'frame_indices' is skipped); None = all.

    Raises:
      DamagedClipError: the file is missing, unreadable or damaged (names the clip, file and repair command).
    """
    e = self.entry(clip_id)
    path = self.path(clip_id)
    try:
      with _NPZ_LOCK, np.load(path) as z:
        out = {k: z[k] for k in z.files if keys is None or k in keys}
    except Exception as err:  # pylint: disable=broad-except  (BadZipFile, ValueError, OSError, EOFError, ...)
      problem = clip_damage(self.base, e) or "its checksum matches but it cannot be read"
      raise self.damaged(clip_id, f"{problem} ({type(err).__name__}: {err})") from err
    out["label"] = int(e["label"])
    return out

  def verify(self, clip_id: str) -> bool:
    """Checks the clip file's sha256 against the manifest; returns True or raises DamagedClipError (a ValueError
    and OSError) naming the clip, file and repair command."""
    problem = clip_damage(self.base, self.entry(clip_id))
    if problem:
      raise self.damaged(clip_id, problem)
    return True
