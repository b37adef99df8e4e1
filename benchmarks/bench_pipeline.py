"""Grain video pipeline throughput: clips/s with 0 vs N worker processes, and npz read speed, in one run.

  .venv/bin/python benchmarks/bench_pipeline.py [--workers 2] [--clips 40] [--batches 20]

Builds a temporary store from the built-in synthetic dataset (64x64, 16 frames, DIS flow between consecutive
frames, written with `store_write.write_clip`), then times `make_loader` (train: segment sampling, random crop, flip,
resize to 112, batch 8, T=8 frames, L=5 consecutive stacks) after one warm-up batch. Also times `np.load` of
one clip written uncompressed (the store's format) vs `np.savez_compressed`.
"""

import argparse
import io
import tempfile
import time

import cv2
import numpy as np

from attn_har.data import pipeline
from attn_har.data import store_write
from attn_har.data import quantize
from attn_har.data import store
from attn_har.data import synthetic
from attn_har.data.clip_options import ClipOptions


def build_store(root: str, num_clips: int) -> None:
  ds = synthetic.SyntheticActions(clips_per_class=max(1, -(-num_clips // 10)))
  dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
  entries = []
  for i in range(num_clips):
    c = ds.clip(i)
    grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in c["rgb"]]
    flow = np.stack([dis.calc(a, b, None) for a, b in zip(grey[:-1], grey[1:])])
    pairs = np.stack([np.arange(len(grey) - 1), np.arange(1, len(grey))], 1).astype(np.int16)
    entries.append(store_write.write_clip(root, c["name"], {"rgb": c["rgb"], "flow": quantize.quantize(flow),
                                                       "pairs": pairs, "mask": c["mask"]},
                                    {"label": c["label"], "num_frames": len(grey)}))
  ids = [e["id"] for e in entries]
  store_write.write_manifest(root, {
      "version": 1, "dataset": "synthetic", "classes": ds.class_names, "frames": ds.num_frames,
      "size": [ds.size, ds.size], "flow": {"method": "dis", "clip_px": quantize.DEFAULT_CLIP_PX,
                                           "pairs": "consecutive", "length": 5, "bidirectional": False},
      "clips": entries, "splits": {"1": {"train": ids, "test": ids}}, "failures": []})


def npz_read_speed(root: str, repeats: int = 50):
  clip = store.ClipStore(root)
  arrays = clip.read(clip.ids()[0])
  arrays.pop("label")
  out = {}
  for name, save in (("uncompressed", np.savez), ("compressed", np.savez_compressed)):
    buf = io.BytesIO()
    save(buf, **arrays)
    data = buf.getvalue()
    t = time.perf_counter()
    for _ in range(repeats):
      with np.load(io.BytesIO(data)) as z:
        _ = {k: z[k] for k in z.files}
    out[name] = ((time.perf_counter() - t) / repeats * 1e3, len(data) / 1e6)
  return out


def loader_speed(root: str, workers: int, batches: int, batch_size: int = 8):
  t0 = time.perf_counter()
  with pipeline.make_loader(root, ClipOptions(num_frames=8, flow_length=5, image_size=112),
                            batch_size=batch_size, seed=0, workers=workers, prefetch=2, to_device=False) as it:
    next(it)
    first = time.perf_counter() - t0
    t = time.perf_counter()
    for _ in range(batches):
      next(it)
    rate = batches * batch_size / (time.perf_counter() - t)
  return first, rate


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--workers", type=int, default=2)
  parser.add_argument("--clips", type=int, default=40)
  parser.add_argument("--batches", type=int, default=20)
  args = parser.parse_args()
  with tempfile.TemporaryDirectory() as root:
    t = time.perf_counter()
    build_store(root, args.clips)
    print(f"store: {args.clips} synthetic clips (64x64, 16 frames, DIS flow) built in {time.perf_counter() - t:.1f} s")
    for name, (ms, mb) in npz_read_speed(root).items():
      print(f"np.load one clip, {name:12s}: {ms:6.2f} ms  ({mb:.2f} MB)")
    results = {w: loader_speed(root, w, args.batches) for w in (0, args.workers)}
    print(f"{'workers':>8s} {'first batch s':>14s} {'clips/s':>9s}")
    for w, (first, rate) in results.items():
      print(f"{w:8d} {first:14.2f} {rate:9.1f}")
    print(f"ratio clips/s {args.workers} workers / 0 workers: {results[args.workers][1] / results[0][1]:.2f}")


if __name__ == "__main__":
  main()
