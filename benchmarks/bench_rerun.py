"""Cost of checking stored checksums on a no-op pre-processing re-run (`store_build.build_store`, every clip finished).

  .venv/bin/python benchmarks/bench_rerun.py [--clips 200] [--frames 25] [--size 240 320] [--workers 1 2]

Writes `--clips` clips of UCF101's stored size (T frames of H x W RGB and T - 1 flow pairs, random bytes, about
9.4 MB each at the defaults) with `store_write.write_clip`, then times `build_store` over them with `verify=False` (the
old re-run: entries and file sizes only) and `verify=True` (sha256 of every file, `--workers` threads), each
three times after one warm-up; the files are then in the page cache, so the numbers are the hashing cost, not the
disk's. Prints seconds per re-run and MB/s hashed.
"""

import argparse
import tempfile
import time

import numpy as np

from attn_har.data import datasets, store_build, store_write


class _Stored:
  """A source whose clips are all finished already (nothing to pre-process)."""

  name = "bench"

  def __init__(self, specs):
    self.clips, self.missing, self.classes = specs, [], ["a"]

  def splits(self, present):
    return {"1": {"train": list(present), "test": []}}


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--clips", type=int, default=200)
  p.add_argument("--frames", type=int, default=25)
  p.add_argument("--size", type=int, nargs=2, default=(240, 320))
  p.add_argument("--workers", type=int, nargs="+", default=(1, 2))
  args = p.parse_args()
  h, w = args.size
  settings = {"flow": "dis", "clip_px": 20.0, "stacking": "consecutive", "length": 10, "bidirectional": False,
              "frames": args.frames, "size": [h, w]}
  rng = np.random.default_rng(0)
  rgb = rng.integers(0, 256, (args.frames, h, w, 3), dtype=np.uint8)
  flow = rng.integers(0, 256, (args.frames - 1, h, w, 2), dtype=np.uint8)
  pairs = np.stack([np.arange(args.frames - 1), np.arange(1, args.frames)], 1)
  with tempfile.TemporaryDirectory() as out:
    specs = []
    for i in range(args.clips):
      rgb[0, 0, 0, 0] = i % 256
      cid = f"a/clip_{i:05d}.avi"
      e = store_write.write_clip(out, cid, {"rgb": rgb, "flow": flow, "pairs": pairs},
                           {"label": 0, "num_frames": args.frames, "preprocess": settings})
      specs.append(datasets.ClipSpec(cid, 0, index=i))
    total_mb = e["bytes"] * args.clips / 1e6
    print(f"{args.clips} clips of {e['bytes'] / 1e6:.1f} MB ({total_mb / 1e3:.2f} GB)")
    source = _Stored(specs)
    runs = [("no verification", False, 1)] + [(f"sha256, {k} threads", True, k) for k in args.workers]
    for label, verify, workers in runs:
      store_build.build_store(source, settings, out, workers=workers, progress=False, verify=verify)  # warm-up
      times = []
      for _ in range(3):
        start = time.perf_counter()
        result = store_build.build_store(source, settings, out, workers=workers, progress=False, verify=verify)
        times.append(time.perf_counter() - start)
        assert result.new == 0 and result.done == args.clips and not result.damaged
      best = min(times)
      print(f"{label:>20}: {best:.2f} s per no-op re-run ({best / args.clips * 1e3:.1f} ms per clip"
            f"{f', {total_mb / best:.0f} MB/s' if verify else ''})")


if __name__ == "__main__":
  main()
