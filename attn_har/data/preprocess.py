"""Pre-process a video dataset into a clip store: sampled RGB frames plus quantised optical flow per frame pair.

  python -m attn_har.data.preprocess --dataset ucf101 --root /data/ucf101 --out /data/stores/ucf101_dis \\
      --flow dis --frames 25 --pairing video_frames --stacking consecutive --length 10 --workers 2

For each clip: decode its frames (`decode.read_frames`, resized while decoding), sample T frames and compute, once
per pair, the flow of every frame pair their stacks need (`stacking.store_frames`, `stacking.required_video_pairs`),
quantise it to uint8 over ±clip_px (`quantize.quantize`) and write the clip atomically (`store_write.write_clip`)
with the video frame index of every stored frame and of both ends of every pair. Stacks are built at load time.

  --pairing video_frames (default; Simonyan & Zisserman): frame k is video frame n_k = ⌊k·(N - L)/T⌋ and its stack
      joins consecutive video frames n_k -> n_k + 1 -> ... -> n_k + L; overlapping stacks share pairs. UCF101
      (N ≈ 186) at T = 25, L = 10: ~N - 1 ≈ 185 pairs per clip (T·L = 250 without the overlaps). A clip with
      N <= T keeps every frame (a synthetic clip is its own video) and has stacks at frames 0..N-L-1.
  --pairing stored_frames (the thesis's code): frames ⌊k·N/T⌋ and flow between stored frames (7-8 video frames
      apart on UCF101); consecutive: T - 1 pairs for any L, anchored: (T - L)·L pairs.

Frame size (--size H W, default 240 320): each frame is resized keeping its aspect ratio until it covers H x W,
then centre-cropped (UCF101's native 320x240 passes unchanged; HMDB51's 240-high clips keep their height and lose
side borders; 1080p is shrunk while decoding). Synthetic clips keep their own size.

Runs in parallel over spawned processes (one flow solver per process), shows a tqdm bar with rate and ETA, and is
resumable: finished clips are skipped (their recorded settings must match, else it stops; their sha256 is checked
and damaged clips are pre-processed again, unless --no-verify), stale temporary files are removed, and the manifest
is rebuilt at the end from the finished clip files, so a Ctrl-C or SIGKILL followed by a re-run loses no finished
clip and never keeps a half-written one. A clip that fails to decode is reported and
skipped; the others still finish; the exit status is 1 only at the end (2 for bad arguments or data layout).
Do not run two pre-processing commands on one --out at the same time.

This module parses the arguments and reports; the work is `store_build.build_store` (per-clip jobs: `clip_pool`).
"""

import argparse
import os
import sys
from typing import List, Optional

from attn_har.data import datasets, flow, quantize, stacking, store_build
from attn_har.registry import lookup


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
  p.add_argument("--pairing", default=stacking.DEFAULT_PAIRING, choices=stacking.PAIRINGS,
                 help="flow between consecutive video frames (default) or between stored frames (the thesis's)")
  p.add_argument("--stacking", default="consecutive", choices=stacking.STACKING_MODES)
  p.add_argument("--length", type=int, default=10, help="stack length L the stored pairs must serve")
  p.add_argument("--bidirectional", action="store_true", help="also store backward flow for each pair")
  p.add_argument("--size", type=int, nargs=2, default=(240, 320), metavar=("H", "W"),
                 help="stored frame size: cover-resize then centre crop (default 240 320)")
  p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes; 0 runs in this process")
  p.add_argument("--max-decode-mb", type=int, default=1024,
                 help="clips whose decoded frames would exceed this are decoded in two passes keeping only the needed "
                      "frames")
  p.add_argument("--limit", type=int, help="process at most this many pending clips (smoke runs)")
  p.add_argument("--allow-missing", action="store_true",
                 help="listed clips absent on disk do not make the exit status non-zero")
  p.add_argument("--test-fraction", type=float, default=0.3, help="folder: test share per class")
  p.add_argument("--synthetic-classes", type=int, default=10)
  p.add_argument("--synthetic-clips-per-class", type=int, default=30)
  p.add_argument("--synthetic-size", type=int, default=64)
  p.add_argument("--synthetic-frames", type=int, default=16)
  p.add_argument("--synthetic-scene", default="motion", choices=("motion", "marked"))
  p.add_argument("--seed", type=int, default=0, help="synthetic dataset seed")
  p.add_argument("--no-progress", action="store_true", help="no progress bar")
  p.add_argument("--no-verify", action="store_true",
                 help="trust finished clips of the right size instead of checking their sha256 (faster re-runs)")
  return p


def make_dataset(args: argparse.Namespace):
  """Builds the dataset source named by --dataset (`from_args` of its `datasets.DATASETS` class)."""
  return lookup(datasets.DATASETS, args.dataset, "dataset").from_args(args)


def make_settings(args: argparse.Namespace, source) -> dict:
  """The settings every clip of this store is made with (`store_build.store_settings`)."""
  return store_build.store_settings(source, flow_method=args.flow, stacking_mode=args.stacking, length=args.length,
                                clip_px=args.clip_px, bidirectional=args.bidirectional, frames=args.frames,
                                size=args.size, pairing=args.pairing)


def main(argv: Optional[List[str]] = None) -> int:
  args = build_parser().parse_args(argv)
  try:
    source = make_dataset(args)
    result = store_build.build_store(source, make_settings(args, source), args.out, workers=args.workers,
                                 progress=not args.no_progress, limit=args.limit,
                                 max_decode_bytes=args.max_decode_mb << 20, verify=not args.no_verify)
  except (FileNotFoundError, ValueError, KeyError, ImportError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  if result.interrupted:
    print(f"\ninterrupted: {result.new} clips finished in this run are kept; re-run the same command to resume",
          file=sys.stderr)
    return result.status()
  print(result.summary())
  if result.failures:
    print(f"{len(result.failures)} clips failed and were skipped:", file=sys.stderr)
    for f in result.failures:
      print(f"  {f['id']} ({f['path']}): {f['error']}", file=sys.stderr)
  if result.missing:
    shown = ", ".join(s.id for s in result.missing[:5])
    print(f"{len(result.missing)} clips listed in the splits are missing on disk (e.g. {shown})", file=sys.stderr)
  return result.status(args.allow_missing)


if __name__ == "__main__":
  sys.exit(main())
