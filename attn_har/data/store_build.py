"""Building a clip store from a dataset source: `build_store(source, store_settings(source, ...), out)`.

Every clip of the source is pre-processed once in spawned processes (`clip_pool`); finished clips are skipped
(their recorded settings must match, else it stops) once their sha256 is checked (damaged ones are redone), stale
temporary files are removed, and the manifest is rebuilt at the end from the finished clip files, so an
interrupted run resumes without losing or duplicating a clip. The manifest records the preprocess arguments
(`preprocess_args`), so a reader that meets a damaged clip names the command that repairs the store.
`python -m attn_har.data.preprocess` is its command line.
"""

import concurrent.futures as cf
import dataclasses
import os
import sys
import time
from typing import List, Optional, Sequence

import tqdm

from attn_har.data import clip_pool, datasets, flow, quantize, stacking, store as store_lib
from attn_har.data import store_write

# Settings recorded in every clip entry; a resumed run must use the same ones.
SETTING_KEYS = ("flow", "clip_px", "pairing", "stacking", "length", "bidirectional", "frames", "size")
# What an entry written before a setting was recorded was made with.
LEGACY_SETTINGS = {"pairing": stacking.LEGACY_PAIRING}


def store_settings(source, *, flow_method: str, stacking_mode: str = "consecutive", length: int = 10,
                   clip_px: float = quantize.DEFAULT_CLIP_PX, bidirectional: bool = False,
                   frames: Optional[int] = None, size: Sequence[int] = (240, 320),
                   pairing: str = stacking.DEFAULT_PAIRING) -> dict:
  """The settings every clip of a store of `source` is made with (validated; keys `SETTING_KEYS`).

  `frames` None = `source.default_frames`; `size` [H, W] passes through `source.frame_size` (a generated source
  keeps its own); `pairing` is a `stacking.PAIRINGS` entry.
  """
  frames = frames or source.default_frames
  size = source.frame_size(size)
  if pairing not in stacking.PAIRINGS:
    raise ValueError(f"unknown pairing {pairing!r}; valid choices: {', '.join(map(repr, stacking.PAIRINGS))}")
  # Validates T, L and the mode (stored frames: T >= L + 1 rows; video frames: any T >= 1).
  stacking.required_pairs(frames if pairing == "stored_frames" else length + 1, length, stacking_mode, bidirectional)
  if frames < 1:
    raise ValueError(f"--frames must be >= 1, got {frames}")
  quantize.step(clip_px)
  if min(size) < 8:
    raise ValueError(f"--size must be at least 8 x 8, got {size}")
  return {"flow": flow_method, "clip_px": float(clip_px), "pairing": pairing, "stacking": stacking_mode,
          "length": length, "bidirectional": bool(bidirectional), "frames": frames, "size": size}


def remove_stale_temporaries(out: str) -> int:
  """Deletes temporary files a killed run left in the store; returns how many."""
  clip_dir = os.path.join(out, store_lib.CLIP_DIR)
  removed = 0
  for folder in (out, clip_dir):
    if not os.path.isdir(folder):
      continue
    for name in os.listdir(folder):
      if name.startswith(".") and ".tmp" in name:
        os.remove(os.path.join(folder, name))
        removed += 1
  return removed


def redo_damaged(out: str, entries: List[dict], threads: int = 1) -> List[dict]:
  """Checks the sha256 of each finished clip (`threads` at a time) and removes the damaged ones so they are redone.

  Returns:
    [{'id', 'path', 'error'}] of the damaged clips.
  """
  with cf.ThreadPoolExecutor(max(1, threads)) as pool:
    problems = list(pool.map(lambda e: store_lib.clip_damage(out, e), entries))
  damaged = []
  for entry, problem in zip(entries, problems):
    if problem:
      store_write.remove_clip(out, entry["id"])
      damaged.append({"id": entry["id"], "path": entry.get("source"), "error": problem})
  return damaged


def preprocess_args(source, settings: dict) -> List[str]:
  """The preprocess arguments (all but --out) that build a store of `source` with `settings`."""
  args = source.cli_args() if hasattr(source, "cli_args") else ["--dataset", source.name]
  args += ["--flow", settings["flow"], "--clip-px", str(settings["clip_px"]), "--pairing", settings["pairing"],
           "--stacking", settings["stacking"],
           "--length", str(settings["length"]), "--frames", str(settings["frames"]),
           "--size", *[str(v) for v in settings["size"]]]
  return args + (["--bidirectional"] if settings["bidirectional"] else [])


def finished(out: str, specs: List[datasets.ClipSpec], settings: dict) -> List[dict]:
  """Entries of the finished clips among `specs`; raises if one was made with other settings."""
  entries = []
  for spec in specs:
    if store_write.clip_done(out, spec.id):
      entry = store_write.read_entry(out, spec.id)
      old = entry.get("preprocess", {})
      old = {k: old.get(k, LEGACY_SETTINGS.get(k)) for k in SETTING_KEYS}
      diff = [k for k in SETTING_KEYS if old[k] != settings[k]]
      if diff:
        raise ValueError(f"store {out} holds clip {spec.id!r} made with other settings "
                         f"({', '.join(f'{k}={old[k]!r} not {settings[k]!r}' for k in diff)}); "
                         f"use another --out or the original options")
      entries.append(entry)
  return entries


@dataclasses.dataclass
class BuildResult:
  """What one `build_store` call did.

  Attributes:
    dataset: the source's name.
    out: the store directory.
    flow: the flow method.
    clips: clips in the store now (0 when interrupted: no manifest written).
    new: clips finished in this call.
    done: clips already finished before it (and intact).
    stale: stale temporary files removed.
    damaged: [{'id', 'path', 'error'}] of finished clips whose file did not match its sha256; they were redone
      (those that failed again are also in `failures`).
    failures: [{'id', 'path', 'error'}] of the clips that failed.
    missing: clips listed by the dataset but absent on disk.
    seconds: time spent pre-processing.
    pairs: flow pairs computed in this call (all new clips).
    interrupted: a KeyboardInterrupt stopped it (finished clips are kept; no manifest written).
  """
  dataset: str
  out: str
  flow: str
  clips: int = 0
  new: int = 0
  done: int = 0
  stale: int = 0
  damaged: List[dict] = dataclasses.field(default_factory=list)
  failures: List[dict] = dataclasses.field(default_factory=list)
  missing: List[datasets.ClipSpec] = dataclasses.field(default_factory=list)
  seconds: float = 0.0
  pairs: int = 0
  interrupted: bool = False

  def status(self, allow_missing: bool = False) -> int:
    """The preprocess command's exit status: 130 interrupted, 1 failures (or missing clips), else 0."""
    if self.interrupted:
      return 130
    return int(bool(self.failures) or (bool(self.missing) and not allow_missing))

  def summary(self) -> str:
    """One line: clips, new / done, failures, missing, time and rates."""
    rate = self.new / self.seconds if self.seconds > 0 else 0.0
    return (f"{self.dataset}: {self.clips} clips in {self.out} ({self.new} new, {self.done} already done"
            f"{f', {len(self.damaged)} damaged clips redone' if self.damaged else ''}"
            f"{f', {self.stale} stale temporaries removed' if self.stale else ''}); {len(self.failures)} failed; "
            f"{len(self.missing)} listed but missing on disk; {self.seconds:.1f} s, {rate:.2f} clips/s, "
            f"{self.pairs / self.seconds if self.seconds > 0 else 0.0:.1f} flow pairs/s ({self.flow}, "
            f"{self.pairs / max(1, self.new):.0f} pairs per clip)")


def build_store(source, settings: dict, out, workers: int = os.cpu_count() or 1, progress: bool = True,
                limit: Optional[int] = None, max_decode_bytes: int = 1 << 30, verify: bool = True) -> BuildResult:
  """Pre-processes the clips of `source` into the store `out` (resumable) and writes its manifest.

  Args:
    source: a `datasets.DATASETS` source (clips, classes, splits, missing, load).
    settings: `store_settings(...)`.
    out: the store directory (created).
    workers: spawned processes; 0 runs in this process.
    progress: show a tqdm bar (failed clips are reported on stderr either way).
    limit: pre-process at most this many pending clips.
    max_decode_bytes: clips whose decoded frames would exceed this are decoded in two passes keeping T frames.
    verify: check the sha256 of every finished clip and redo damaged ones (False: trust a file of the right size).

  Raises:
    FileNotFoundError, ValueError, KeyError, ImportError: unusable settings, flow method or store (before any
      clip is processed), e.g. a store holding clips made with other settings.
  """
  out = os.fspath(out)
  flow.make_solver(settings["flow"])  # fail fast, before any worker starts
  os.makedirs(out, exist_ok=True)
  stale = remove_stale_temporaries(out)
  done = finished(out, source.clips, settings)
  damaged = redo_damaged(out, done, max(1, workers)) if verify else []
  for d in damaged:
    print(f"DAMAGED {d['id']}: {d['error']}; pre-processing it again", file=sys.stderr)
  done = [e for e in done if e["id"] not in {d["id"] for d in damaged}]
  done_ids = {e["id"] for e in done}
  pending = [s for s in source.clips if s.id not in done_ids]
  if limit is not None:
    pending = pending[:limit]
  result = BuildResult(source.name, out, settings["flow"], done=len(done), stale=stale, damaged=damaged,
                       missing=list(source.missing))
  bar = tqdm.tqdm(total=len(pending), unit="clip", desc=f"{source.name} {settings['flow']}", disable=not progress,
                  dynamic_ncols=True, file=sys.stderr)

  def on_result(r: tuple) -> None:
    if r[0] == "ok":
      result.new += 1
      result.pairs += int(r[1]["pairs"])
    else:
      _, cid, path, msg = r
      result.failures.append({"id": cid, "path": path, "error": msg})
      bar.write(f"FAILED {cid} ({path}): {msg}", file=sys.stderr)
      bar.set_postfix(failed=len(result.failures))
    bar.update(1)

  start = time.time()
  n_workers = min(workers, len(pending)) if workers > 0 else 0
  threads = max(1, (os.cpu_count() or 1) // max(1, n_workers))
  initargs = (source, settings, out, threads, max_decode_bytes)
  try:
    if pending:
      clip_pool.run_pool(pending, n_workers, initargs, on_result)
  except KeyboardInterrupt:
    bar.close()
    result.interrupted = True
    return result
  bar.close()
  result.seconds = time.time() - start

  entries = finished(out, source.clips, settings)  # rebuilt from the files: every finished clip exactly once
  ids = [e["id"] for e in entries]
  manifest = {
      "version": store_lib.VERSION, "dataset": source.name, "classes": list(source.classes),
      "frames": settings["frames"], "size": settings["size"],
      "flow": {"method": settings["flow"], "clip_px": settings["clip_px"], "pairing": settings["pairing"],
               "pairs": settings["stacking"],
               "length": settings["length"], "bidirectional": settings["bidirectional"]},
      "clips": entries, "splits": source.splits(ids), "failures": result.failures,
      "num_missing": len(source.missing),
      "num_unprocessed": len(source.clips) - len(entries) - len(result.failures),
      "preprocess_args": preprocess_args(source, settings),
  }
  store_write.write_manifest(out, manifest)
  result.clips = len(entries)
  return result
