"""Pre-process a video dataset into a clip store: sampled RGB frames plus quantised optical flow per frame pair.

  python -m attn_har.data.preprocess --dataset ucf101 --root /data/ucf101 --out /data/stores/ucf101_dis \\
      --flow dis --frames 25 --stacking consecutive --length 10 --workers 2

For each clip: decode every frame (`decode.read_frames`, resized while decoding), sample T frames uniformly
(⌊k·N/T⌋), compute the flow of each frame pair that the chosen stacking needs once (`stacking.required_pairs`;
consecutive: T - 1 pairs for any L; anchored: (T - L)·L pairs), quantise it to uint8 over ±clip_px
(`quantize.quantize`) and write the clip atomically (`store.write_clip`). Stacks are built at load time.

Frame size (--size H W, default 240 320): each frame is resized keeping its aspect ratio until it covers H x W,
then centre-cropped (UCF101's native 320x240 passes unchanged; HMDB51's 240-high clips keep their height and lose
side borders; 1080p is shrunk while decoding). Synthetic clips keep their own size.

Runs in parallel over spawned processes (one flow solver per process), shows a tqdm bar with rate and ETA, and is
resumable: finished clips are skipped (their recorded settings must match, else it stops), stale temporary files
are removed, and the manifest is rebuilt at the end from the finished clip files, so a Ctrl-C or SIGKILL followed
by a re-run loses no finished clip and never keeps a half-written one. A clip that fails to decode is reported and
skipped; the others still finish; the exit status is 1 only at the end (2 for bad arguments or data layout).
Do not run two pre-processing commands on one --out at the same time.
"""

import argparse
import concurrent.futures as cf
from concurrent.futures.process import BrokenProcessPool
import multiprocessing
import os
import signal
import sys
import time
from typing import Callable, Dict, List, Optional

import cv2
import tqdm

from attn_har.data import datasets, flow, quantize, stacking, store
from attn_har.registry import lookup

# Settings recorded in every clip entry; a resumed run must use the same ones.
SETTING_KEYS = ("flow", "clip_px", "stacking", "length", "bidirectional", "frames", "size")


def build_parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog="python -m attn_har.data.preprocess", description=__doc__.split("\n\n")[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--dataset", required=True, choices=sorted(datasets.DATASETS))
  p.add_argument("--root", help="dataset folder (unused for synthetic)")
  p.add_argument("--out", required=True, help="store directory (created; re-run to resume)")
  p.add_argument("--split-dir", help="official split folder (default: inside --root)")
  p.add_argument("--flow", default="tvl1", choices=sorted(flow.FLOW_METHODS), help="optical flow method")
  p.add_argument("--clip-px", type=float, default=quantize.DEFAULT_CLIP_PX, help="flow quantisation range ±px")
  p.add_argument("--frames", type=int, help="frames T sampled per clip (default 25; synthetic: its own length)")
  p.add_argument("--stacking", default="consecutive", choices=stacking.STACKING_MODES)
  p.add_argument("--length", type=int, default=10, help="stack length L the stored pairs must serve")
  p.add_argument("--bidirectional", action="store_true", help="also store backward flow for each pair")
  p.add_argument("--size", type=int, nargs=2, default=(240, 320), metavar=("H", "W"),
                 help="stored frame size: cover-resize then centre crop (default 240 320)")
  p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes; 0 runs in this process")
  p.add_argument("--max-decode-mb", type=int, default=1024,
                 help="clips whose decoded frames would exceed this are decoded in two passes keeping T frames")
  p.add_argument("--limit", type=int, help="process at most this many pending clips (smoke runs)")
  p.add_argument("--allow-missing", action="store_true",
                 help="listed clips absent on disk do not make the exit status non-zero")
  p.add_argument("--test-fraction", type=float, default=0.3, help="folder: test share per class")
  p.add_argument("--synthetic-classes", type=int, default=10)
  p.add_argument("--synthetic-clips-per-class", type=int, default=30)
  p.add_argument("--synthetic-size", type=int, default=64)
  p.add_argument("--synthetic-frames", type=int, default=16)
  p.add_argument("--seed", type=int, default=0, help="synthetic dataset seed")
  p.add_argument("--no-progress", action="store_true", help="no progress bar")
  return p


def make_dataset(args: argparse.Namespace):
  """Builds the dataset source named by --dataset."""
  cls = lookup(datasets.DATASETS, args.dataset, "dataset")
  if args.dataset == "synthetic":
    return cls(num_classes=args.synthetic_classes, clips_per_class=args.synthetic_clips_per_class,
               size=args.synthetic_size, num_frames=args.synthetic_frames, seed=args.seed)
  if not args.root:
    raise FileNotFoundError(f"--root is required for --dataset {args.dataset}")
  if args.dataset == "folder":
    return cls(args.root, test_fraction=args.test_fraction)
  return cls(args.root, split_dir=args.split_dir)


def make_settings(args: argparse.Namespace) -> dict:
  """The settings every clip of this store is made with."""
  synthetic = args.dataset == "synthetic"
  frames = args.frames or (args.synthetic_frames if synthetic else 25)
  size = [args.synthetic_size] * 2 if synthetic else [int(s) for s in args.size]
  stacking.required_pairs(frames, args.length, args.stacking, args.bidirectional)  # validates T, L, mode
  quantize.step(args.clip_px)
  if min(size) < 8:
    raise ValueError(f"--size must be at least 8 x 8, got {size}")
  return {"flow": args.flow, "clip_px": float(args.clip_px), "stacking": args.stacking, "length": args.length,
          "bidirectional": bool(args.bidirectional), "frames": frames, "size": size}


_WORKER: Dict[str, object] = {}


def _init_worker(dataset, settings: dict, out: str, threads: int, max_decode_bytes: int) -> None:
  """Per-process set-up: ignore SIGINT (the parent handles it), build the flow solver once."""
  if multiprocessing.parent_process() is not None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
  cv2.setNumThreads(threads)
  _WORKER.update(dataset=dataset, settings=settings, out=out, max_decode_bytes=max_decode_bytes,
                 solver=flow.make_solver(settings["flow"]))


def process_clip(spec: datasets.ClipSpec) -> tuple:
  """Pre-processes one clip in a worker; returns ('ok', entry) or ('error', id, path, message)."""
  cfg = _WORKER["settings"]
  try:
    rgb, mask, n, idx = _WORKER["dataset"].load(spec, cfg["frames"], cfg["size"], _WORKER["max_decode_bytes"])
    pairs = stacking.required_pairs(cfg["frames"], cfg["length"], cfg["stacking"], cfg["bidirectional"])
    fields = flow.compute_pairs(_WORKER["solver"], rgb, pairs)
    arrays = {"rgb": rgb, "flow": quantize.quantize(fields, cfg["clip_px"]), "pairs": pairs}
    if mask is not None:
      arrays["mask"] = mask
    meta = {"label": spec.label, "num_frames": n, "frame_indices": idx.tolist(),
            "source": spec.path if spec.path is not None else f"synthetic:{spec.index}", "preprocess": cfg}
    return ("ok", store.write_clip(_WORKER["out"], spec.id, arrays, meta))
  except Exception as e:  # pylint: disable=broad-except  (a bad clip must not stop the others)
    return ("error", spec.id, spec.path, f"{type(e).__name__}: {e}")


def _terminate(executor: cf.ProcessPoolExecutor) -> None:
  for proc in list(getattr(executor, "_processes", {}).values()):
    proc.terminate()
  executor.shutdown(wait=False, cancel_futures=True)


def run_pool(specs: List[datasets.ClipSpec], workers: int, initargs: tuple, on_result: Callable[[tuple], None]):
  """Runs `process_clip` over `specs` with at most `workers` clips in flight.

  A worker that dies (e.g. a crash inside a decoder) fails only the clips in flight; a fresh pool continues.
  """
  if workers <= 0:
    _init_worker(*initargs)
    for spec in specs:
      on_result(process_clip(spec))
    return
  todo = list(reversed(specs))
  ctx = multiprocessing.get_context("spawn")
  while todo:
    executor = cf.ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=initargs)
    running: Dict[cf.Future, datasets.ClipSpec] = {}
    try:
      broken = False
      while (todo or running) and not broken:
        while todo and len(running) < workers:
          spec = todo.pop()
          running[executor.submit(process_clip, spec)] = spec
        done, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
        for fut in done:
          spec = running.pop(fut)
          try:
            on_result(fut.result())
          except BrokenProcessPool:
            broken = True
            on_result(("error", spec.id, spec.path, "worker process died while processing this clip (or one "
                       "beside it); re-run with --workers 1 to isolate"))
      for fut, spec in running.items():  # in flight when the pool broke
        on_result(("error", spec.id, spec.path, "worker process died while this clip was in flight"))
      executor.shutdown(wait=True)
    except BaseException:
      _terminate(executor)
      raise


def remove_stale_temporaries(out: str) -> int:
  """Deletes temporary files a killed run left in the store; returns how many."""
  clip_dir = os.path.join(out, store.CLIP_DIR)
  removed = 0
  for folder in (out, clip_dir):
    if not os.path.isdir(folder):
      continue
    for name in os.listdir(folder):
      if name.startswith(".") and ".tmp" in name:
        os.remove(os.path.join(folder, name))
        removed += 1
  return removed


def finished(out: str, specs: List[datasets.ClipSpec], settings: dict) -> List[dict]:
  """Entries of the finished clips among `specs`; raises if one was made with other settings."""
  entries = []
  for spec in specs:
    if store.clip_done(out, spec.id):
      entry = store.read_entry(out, spec.id)
      old = entry.get("preprocess", {})
      diff = [k for k in SETTING_KEYS if old.get(k) != settings[k]]
      if diff:
        raise ValueError(f"store {out} holds clip {spec.id!r} made with other settings "
                         f"({', '.join(f'{k}={old.get(k)!r} not {settings[k]!r}' for k in diff)}); "
                         f"use another --out or the original options")
      entries.append(entry)
  return entries


def main(argv: Optional[List[str]] = None) -> int:
  args = build_parser().parse_args(argv)
  try:
    ds = make_dataset(args)
    settings = make_settings(args)
    flow.make_solver(settings["flow"])  # fail fast, before any worker starts
    os.makedirs(args.out, exist_ok=True)
    stale = remove_stale_temporaries(args.out)
    done = finished(args.out, ds.clips, settings)
  except (FileNotFoundError, ValueError, KeyError, ImportError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  done_ids = {e["id"] for e in done}
  pending = [s for s in ds.clips if s.id not in done_ids]
  if args.limit is not None:
    pending = pending[:args.limit]
  failures: List[dict] = []
  new = 0
  bar = tqdm.tqdm(total=len(pending), unit="clip", desc=f"{args.dataset} {settings['flow']}",
                  disable=args.no_progress, dynamic_ncols=True, file=sys.stderr)

  def on_result(result: tuple) -> None:
    nonlocal new
    if result[0] == "ok":
      new += 1
    else:
      _, cid, path, msg = result
      failures.append({"id": cid, "path": path, "error": msg})
      bar.write(f"FAILED {cid} ({path}): {msg}", file=sys.stderr)
      bar.set_postfix(failed=len(failures))
    bar.update(1)

  start = time.time()
  workers = min(args.workers, len(pending)) if args.workers > 0 else 0
  threads = max(1, (os.cpu_count() or 1) // max(1, workers))
  initargs = (ds, settings, args.out, threads, args.max_decode_mb << 20)
  try:
    if pending:
      run_pool(pending, workers, initargs, on_result)
  except KeyboardInterrupt:
    bar.close()
    print(f"\ninterrupted: {new} clips finished in this run are kept; re-run the same command to resume",
          file=sys.stderr)
    return 130
  bar.close()
  elapsed = time.time() - start

  entries = finished(args.out, ds.clips, settings)  # rebuilt from the files: every finished clip exactly once
  ids = [e["id"] for e in entries]
  manifest = {
      "version": store.VERSION, "dataset": args.dataset, "classes": list(ds.classes),
      "frames": settings["frames"], "size": settings["size"],
      "flow": {"method": settings["flow"], "clip_px": settings["clip_px"], "pairs": settings["stacking"],
               "length": settings["length"], "bidirectional": settings["bidirectional"]},
      "clips": entries, "splits": ds.splits(ids), "failures": failures,
      "num_missing": len(ds.missing), "num_unprocessed": len(ds.clips) - len(entries) - len(failures),
  }
  store.write_manifest(args.out, manifest)

  pairs = len(stacking.required_pairs(settings["frames"], settings["length"], settings["stacking"],
                                      settings["bidirectional"]))
  rate = new / elapsed if elapsed > 0 else 0.0
  print(f"{args.dataset}: {len(entries)} clips in {args.out} ({new} new, {len(done)} already done"
        f"{f', {stale} stale temporaries removed' if stale else ''}); {len(failures)} failed; "
        f"{len(ds.missing)} listed but missing on disk; {elapsed:.1f} s, {rate:.2f} clips/s, "
        f"{rate * pairs:.1f} flow pairs/s ({settings['flow']}, {pairs} pairs per clip)")
  status = 0
  if failures:
    print(f"{len(failures)} clips failed and were skipped:", file=sys.stderr)
    for f in failures:
      print(f"  {f['id']} ({f['path']}): {f['error']}", file=sys.stderr)
    status = 1
  if ds.missing:
    shown = ", ".join(s.id for s in ds.missing[:5])
    print(f"{len(ds.missing)} clips listed in the splits are missing on disk (e.g. {shown})", file=sys.stderr)
    if not args.allow_missing:
      status = 1
  return status


if __name__ == "__main__":
  sys.exit(main())
