"""Optical-flow throughput per method and flow pairs per clip per stacking mode, side by side in one run.

  .venv/bin/python benchmarks/bench_flow.py [--pairs-tvl1 4] [--pairs-fast 40]

Frames: consecutive frames of the real UCF101 clip v_ApplyEyeMakeup_g01_c01 (320x240) from ../shared/realdata
when present, else smooth synthetic frames moving 1.5 px per frame. Each solver is built once and warmed up on
one pair; the timed pairs then run with OpenCV's default thread count.
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


def load_frames(count: int):
  if CLIP.is_file():
    return decode.read_frames(CLIP)[:count + 1], f"real UCF101 clip {CLIP.name}"
  tex = cv2.GaussianBlur(np.random.default_rng(0).random((300, 400)).astype(np.float32), (0, 0), 2.0)
  tex = (255 * (tex - tex.min()) / (tex.max() - tex.min())).astype(np.uint8)
  frames = [np.repeat(tex[t:t + 240, int(1.5 * t):int(1.5 * t) + 320, None], 3, -1) for t in range(count + 1)]
  return np.stack(frames), "synthetic frames (realdata not found)"


def time_method(name: str, grey: np.ndarray, pairs: int) -> float:
  """Seconds per pair for `name` over `pairs` consecutive pairs (after one warm-up pair)."""
  solver = flow.make_solver(name)
  solver(grey[0], grey[1])
  start = time.perf_counter()
  for i in range(pairs):
    solver(grey[i], grey[i + 1])
  return (time.perf_counter() - start) / pairs


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--pairs-tvl1", type=int, default=4)
  p.add_argument("--pairs-fast", type=int, default=40)
  args = p.parse_args()
  frames, source = load_frames(max(args.pairs_tvl1, args.pairs_fast))
  grey = flow.to_grey(frames)
  print(f"flow at {grey.shape[2]}x{grey.shape[1]} on {source}; OpenCV {cv2.__version__}, "
        f"{cv2.getNumThreads()} threads, {os.cpu_count()} CPUs")
  seconds = {}
  for name in ("tvl1", "dis", "farneback"):
    seconds[name] = time_method(name, grey, args.pairs_tvl1 if name == "tvl1" else args.pairs_fast)
  print(f"{'method':<10} {'ms/pair':>9} {'pairs/s':>9} {'vs tvl1':>8}")
  for name, s in seconds.items():
    print(f"{name:<10} {1e3 * s:9.1f} {1 / s:9.1f} {seconds['tvl1'] / s:7.0f}x")
  q = quantize.quantize(flow.make_solver("dis")(grey[0], grey[1]))
  start = time.perf_counter()
  for _ in range(100):
    quantize.dequantize(quantize.quantize(quantize.dequantize(q)))
  print(f"quantise+dequantise one 320x240 field: {1e3 * (time.perf_counter() - start) / 100:.2f} ms")

  t = 25
  print(f"\nflow pairs per clip (T={t}) and flow time per clip")
  print(f"{'L':>3} {'consecutive':>12} {'anchored':>9} {'ratio':>6}   " +
        "  ".join(f"{n + ' cons/anch s':>22}" for n in seconds))
  for length in (1, 5, 10):
    cons = len(stacking.required_pairs(t, length, "consecutive"))
    anch = len(stacking.required_pairs(t, length, "anchored"))
    times = "  ".join(f"{cons * s:10.2f} / {anch * s:9.2f}" for s in seconds.values())
    print(f"{length:>3} {cons:>12} {anch:>9} {anch / cons:6.1f}   {times}")


if __name__ == "__main__":
  main()
