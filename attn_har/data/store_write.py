"""The write side of the clip store (`attn_har.data.store`): clip files, their entries and the manifest.

`write_clip` writes the `.npz` to a temporary name, renames it into place, then writes the `.json` entry the
same way, so `clip_done` (entry present, file of the recorded size) never sees a half written clip; a failed
write (e.g. a full disk) leaves no temporary file behind. `read_entry` rebuilds a manifest entry from the `.json`
without reading the arrays; `write_manifest` is written last, atomically.
"""

import json
import os
import pathlib
from typing import Any, Mapping

import numpy as np

from attn_har.data.store import CLIP_DIR, MANIFEST, MANIFEST_KEYS, VERSION, clip_file, file_sha256

def _write_replace(path: pathlib.Path, write, what: str) -> pathlib.Path:
  """Writes `path` through a temporary file (`write(f)`), fsyncs and renames it into place.

  On any failure (e.g. ENOSPC) the temporary is removed and an OSError naming `what` and `path` is raised.
  """
  tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
  try:
    with open(tmp, "wb") as f:
      write(f)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException as e:
    tmp.unlink(missing_ok=True)
    if isinstance(e, OSError):
      raise OSError(e.errno, f"{what}: cannot write {path}: {e.strerror or e}") from e
    raise
  return path


def _atomic_write_bytes(path: pathlib.Path, data: bytes, what: str = "") -> None:
  _write_replace(path, lambda f: f.write(data), what or str(path))


def _check_arrays(clip_id: str, arrays: Mapping[str, np.ndarray], num_frames: int) -> dict:
  """Validates dtypes/shapes of a clip's arrays (`num_frames`: the video's N); returns a plain dict of numpy arrays."""
  known = ("rgb", "flow", "pairs", "frame_indices", "mask")
  unknown = set(arrays) - set(known)
  if unknown:
    raise ValueError(f"clip {clip_id!r}: unknown array keys {sorted(unknown)}; expected {', '.join(known)}")
  out = {}
  for key, dtype in (("rgb", np.uint8), ("flow", np.uint8), ("pairs", np.int32), ("frame_indices", np.int32),
                     ("mask", np.uint8)):
    if key not in arrays:
      if key in ("mask", "frame_indices"):
        continue
      raise ValueError(f"clip {clip_id!r}: missing array {key!r}")
    a = np.asarray(arrays[key])
    if key in ("pairs", "frame_indices") and a.dtype != dtype and np.issubdtype(a.dtype, np.integer):
      a = a.astype(dtype)
    if a.dtype != dtype:
      raise ValueError(f"clip {clip_id!r}: array {key!r} must be {np.dtype(dtype).name}, got {a.dtype}")
    out[key] = a
  rgb, flow, pairs = out["rgb"], out["flow"], out["pairs"]
  if rgb.ndim != 4 or rgb.shape[-1] != 3 or rgb.shape[0] < 1:
    raise ValueError(f"clip {clip_id!r}: rgb must be [T, H, W, 3] with T >= 1, got {rgb.shape}")
  t, h, w, _ = rgb.shape
  if flow.ndim != 4 or flow.shape[1:] != (h, w, 2):
    raise ValueError(f"clip {clip_id!r}: flow must be [P, {h}, {w}, 2], got {flow.shape}")
  if pairs.shape != (flow.shape[0], 2):
    raise ValueError(f"clip {clip_id!r}: pairs must be [{flow.shape[0]}, 2], got {pairs.shape}")
  # Pairs index video frames [0, N) when frame_indices says which video frame each row is, else rows [0, T).
  bound, unit = (num_frames, "video frames") if "frame_indices" in out else (t, "frames")
  if "frame_indices" in out:
    fi = out["frame_indices"]
    if fi.shape != (t,) or (t and (fi.min() < 0 or fi.max() >= num_frames)) or np.any(np.diff(fi) < 0):
      raise ValueError(f"clip {clip_id!r}: frame_indices must be [{t}] non-decreasing video frames in "
                       f"[0, {num_frames}), got {fi.tolist()}")
  if pairs.size and (pairs.min() < 0 or pairs.max() >= bound):
    raise ValueError(f"clip {clip_id!r}: pairs index {unit} outside [0, {bound})")
  if "mask" in out and out["mask"].shape != (t, h, w):
    raise ValueError(f"clip {clip_id!r}: mask must be [{t}, {h}, {w}], got {out['mask'].shape}")
  return out


def _jsonable(clip_id: str, meta: Mapping[str, Any]) -> dict:
  for key in ("label", "num_frames"):
    if key not in meta:
      raise ValueError(f"clip {clip_id!r}: meta lacks {key!r}")
  meta = dict(meta)
  meta["label"] = int(meta["label"])
  meta["num_frames"] = int(meta["num_frames"])
  try:
    json.dumps(meta)
  except TypeError as e:
    raise ValueError(f"clip {clip_id!r}: meta is not JSON serialisable: {e}") from None
  return meta


def write_clip(store_dir, clip_id: str, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> dict:
  """Writes one clip atomically and returns its manifest entry.

  Args:
    store_dir: the store directory (created if needed).
    clip_id: relative path of the source video, e.g. 'Class/v_x.avi' (any characters).
    arrays: rgb uint8 [T, H, W, 3], flow uint8 [P, H, W, 2], pairs int [P, 2] (stored as int32), optional
      frame_indices int [T] (the video frame of each row; then pairs index video frames) and mask uint8 [T, H, W].
    meta: at least {'label': int, 'num_frames': decoded frame count}; other JSON values are kept in the entry.

  Returns:
    The entry {'id', 'label', 'num_frames', 'file', 'sha256', 'bytes', 'frames', 'pairs', 'size', 'mask',
    **other meta keys}.
  """
  meta = _jsonable(clip_id, meta)
  arrays = _check_arrays(clip_id, arrays, meta["num_frames"])
  root = pathlib.Path(store_dir)
  stem = clip_file(clip_id)
  (root / CLIP_DIR).mkdir(parents=True, exist_ok=True)
  npz = root / f"{stem}.npz"
  _write_replace(npz, lambda f: np.savez(f, **arrays), f"clip {clip_id!r}")
  digest = file_sha256(npz)
  size = npz.stat().st_size
  t, h, w, _ = arrays["rgb"].shape
  entry = {**meta, "id": clip_id, "label": meta["label"], "num_frames": meta["num_frames"],
           "file": f"{stem}.npz", "sha256": digest, "bytes": size, "frames": t,
           "pairs": int(arrays["pairs"].shape[0]), "size": [h, w], "mask": "mask" in arrays}
  try:
    _atomic_write_bytes(root / f"{stem}.json", json.dumps(entry, sort_keys=True).encode(), f"clip {clip_id!r}")
  except BaseException:
    npz.unlink(missing_ok=True)
    raise
  return entry


def clip_done(store_dir, clip_id: str) -> bool:
  """True when the clip's entry and a file of the recorded size are both present."""
  root = pathlib.Path(store_dir)
  stem = clip_file(clip_id)
  try:
    entry = json.loads((root / f"{stem}.json").read_text())
    return entry.get("id") == clip_id and (root / entry["file"]).stat().st_size == entry["bytes"]
  except (OSError, ValueError, KeyError):
    return False


def remove_clip(store_dir, clip_id: str) -> None:
  """Deletes a clip's entry (first, so the clip is never 'done' meanwhile) and its file."""
  root = pathlib.Path(store_dir)
  stem = clip_file(clip_id)
  (root / f"{stem}.json").unlink(missing_ok=True)
  (root / f"{stem}.npz").unlink(missing_ok=True)


def read_entry(store_dir, clip_id: str) -> dict:
  """The manifest entry of a finished clip, rebuilt from its `.json` (no array is read)."""
  if not clip_done(store_dir, clip_id):
    raise FileNotFoundError(f"clip {clip_id!r} is not (completely) written in store {store_dir}")
  return json.loads((pathlib.Path(store_dir) / f"{clip_file(clip_id)}.json").read_text())


def write_manifest(store_dir, manifest: Mapping[str, Any]) -> None:
  """Validates and atomically writes `<store_dir>/manifest.json`.

  Required keys: version (1), dataset, classes, frames, size, flow, clips, splits, failures; every split id
  must name a clip of `clips`.
  """
  missing = [k for k in MANIFEST_KEYS if k not in manifest]
  if missing:
    raise ValueError(f"manifest for {store_dir} lacks keys {missing}")
  if manifest["version"] != VERSION:
    raise ValueError(f"manifest version {manifest['version']!r} unsupported (expected {VERSION})")
  known = {e["id"] for e in manifest["clips"]}
  for split, subsets in manifest["splits"].items():
    for subset, ids in subsets.items():
      unknown = [i for i in ids if i not in known]
      if unknown:
        raise ValueError(f"manifest split {split!r}/{subset!r} names {len(unknown)} clips absent from 'clips', "
                         f"e.g. {unknown[0]!r}")
  root = pathlib.Path(store_dir)
  root.mkdir(parents=True, exist_ok=True)
  _atomic_write_bytes(root / MANIFEST, json.dumps(manifest, indent=1).encode(), "manifest")
