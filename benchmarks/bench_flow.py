"""Optical-flow throughput per method at the stored frame size, flow pairs per clip per pairing, and the projected
flow time for all of UCF101 on this machine.

  .venv/bin/python benchmarks/bench_flow.py [--seconds 3] [--size 128 128]

Frames: consecutive frames of the real UCF101 clip v_ApplyEyeMakeup_g01_c01 (320x240, 164 frames) from
../shared/realdata when present, else smooth synthetic frames moving 1.5 px per frame, resized to --size (the real
configs' store size, `data.store_size` = 128, by default) the way pre-processing does (`decode.resize_cover`). Each
solver is built once, warmed up on one pair, then timed for about --seconds on consecutive pairs with one OpenCV
thread (pre-processing runs one worker process per core, one thread each).

Projection: UCF101's 13,320 clips x the pairs per clip of the pairing ('video_frames': T = 25 sampled frames x
L = 10 forward pairs minus the pairs that overlapping stacks share, computed for a clip of --clip-frames frames,
UCF101's mean of ~186; 'stored_frames', the thesis's spacing: T - 1 = 24) / (pairs/s per core x cores), assuming
throughput scales with the cores. Decoding is timed separately and added.
"""

import argparse
import os
import pathlib
import sys
import time

import cv2
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from attn_har.data import decode, flow, quantize, stacking

REALDATA = pathlib.Path(os.environ.get("ATTN_HAR_REALDATA",
                                       pathlib.Path(__file__).resolve().parents[2] / "shared" / "realdata"))
CLIP = REALDATA / "ucf101" / "UCF-101" / "ApplyEyeMakeup" / "v_ApplyEyeMakeup_g01_c01.avi"
UCF101_CLIPS = 13320
METHODS = ("tvl1", "dis", "farneback", "farneback_small")


def load_frames(size):
  """(uint8 [N, H, W, 3] frames at `size`, description, decode seconds per frame)."""
  if CLIP.is_file():
    start = time.perf_counter()
    frames = decode.read_frames(CLIP, size)
    return frames, f"real UCF101 clip {CLIP.name}", (time.perf_counter() - start) / len(frames)
  tex = cv2.GaussianBlur(np.random.default_rng(0).random((300, 400)).astype(np.float32), (0, 0), 2.0)
  tex = (255 * (tex - tex.min()) / (tex.max() - tex.min())).astype(np.uint8)
  frames = [decode.resize_cover(np.repeat(tex[t:t + 240, int(1.5 * t):int(1.5 * t) + 320, None], 3, -1), size)
            for t in range(40)]
  return np.stack(frames), "synthetic frames (realdata not found)", 0.0


def time_method(name: str, grey: np.ndarray, seconds: float) -> float:
  """Seconds per pair for `name` on consecutive pairs for about `seconds` (after one warm-up pair)."""
  solver = flow.make_solver(name)
  solver(grey[0], grey[1])
  start, pairs = time.perf_counter(), 0
  while time.perf_counter() - start < seconds:
    i = pairs % (len(grey) - 1)
    solver(grey[i], grey[i + 1])
    pairs += 1
  return (time.perf_counter() - start) / pairs


def pairs_per_clip(num_frames: int, count: int, length: int, pairing: str) -> int:
  rows = stacking.store_frames(num_frames, count, length, pairing)
  return len(stacking.required_video_pairs(rows, num_frames, length, pairing=pairing))


def _duration(seconds: float) -> str:
  return f"{seconds / 3600:6.1f} h" if seconds >= 3600 else f"{seconds / 60:6.1f} min"


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--seconds", type=float, default=3.0, help="timing budget per method")
  p.add_argument("--size", type=int, nargs=2, default=(128, 128), metavar=("H", "W"), help="stored frame size")
  p.add_argument("--clip-frames", type=int, default=186, help="frames of the clip the pairs per clip assume")
  p.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
  args = p.parse_args()
  cv2.setNumThreads(1)
  cores = os.cpu_count() or 1
  frames, source, decode_s = load_frames(args.size)
  grey = flow.to_grey(frames)
  print(f"flow at {grey.shape[1]}x{grey.shape[2]} (H x W) on {source}; OpenCV {cv2.__version__}, 1 thread per "
        f"process, {cores} CPUs; decode + resize {1e3 * decode_s:.2f} ms per frame")
  seconds = {name: time_method(name, grey, args.seconds) for name in args.methods}
  print(f"{'method':<16} {'ms/pair':>9} {'pairs/s/core':>13}")
  for name, s in seconds.items():
    print(f"{name:<16} {1e3 * s:9.2f} {1 / s:13.1f}")
  q = quantize.quantize(flow.make_solver("dis")(grey[0], grey[1]))
  start = time.perf_counter()
  for _ in range(100):
    quantize.dequantize(quantize.quantize(quantize.dequantize(q)))
  print(f"quantise+dequantise one field: {1e3 * (time.perf_counter() - start) / 100:.3f} ms")

  t, length, n = 25, 10, args.clip_frames
  video = pairs_per_clip(n, t, length, "video_frames")
  thesis = pairs_per_clip(n, t, length, "stored_frames")
  print(f"\npairs per clip, T={t} sampled frames, L={length}, a clip of N={n} frames: video_frames {video} "
        f"(= {t} x {length} = {t * length} minus {t * length - video} shared by overlapping stacks), "
        f"stored_frames {thesis}")
  print(f"projected for all of UCF101 ({UCF101_CLIPS} clips) on {cores} cores, decoding "
        f"{_duration(UCF101_CLIPS * n * decode_s / cores).strip()} included:")
  print(f"{'method':<16} {'video_frames':>13} {'stored_frames':>14} {'flow s/clip/core':>17}")
  for name, s in seconds.items():
    per_clip = lambda pairs: UCF101_CLIPS * (pairs * s + n * decode_s) / cores
    print(f"{name:<16} {_duration(per_clip(video)):>13} {_duration(per_clip(thesis)):>14} {video * s:17.2f}")


if __name__ == "__main__":
  main()
