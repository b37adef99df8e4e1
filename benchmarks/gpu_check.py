"""The GPU check of the real-video setup: train-step throughput and memory, and what the input pipeline delivers.

  python benchmarks/gpu_check.py [--batch 64] [--frames 5] [--size 112] [--length 5] [--dtype bfloat16]
      [--steps 10] [--realdata ../shared/realdata] [--workers 16] [--batches 20]

1. Train step: the UCF101-shaped two-stream MobileNetV2 (alpha 1.0, CBAM, 101 classes; `configs/ucf101_cbam.py`
   at its model settings) on synthetic arrays: batch x frames RGB frames and 2L-channel flow stacks at size x size,
   the real train step (`attn_har.train.steps`, donated state). Prints the compile time, frames/s (img/s: both
   streams' frames of a clip count once) and the device's peak memory.
2. Input pipeline: pre-processes the real UCF101 clips of --realdata into a temporary store (video-frame flow, DIS)
   and times the Grain training loader (`--workers` processes) in clips/s, without a device.
3. Says which bound the throughput: the train step needs batch / step-time clips/s; the pipeline gives its clips/s.

Everything runs in one process, one after the other; on a CPU it runs too (use a small --batch), which is how it is
tested before it meets a GPU.
"""

import argparse
import pathlib
import subprocess
import sys
import tempfile
import time

import jax
import jax.numpy as jnp

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from attn_har.config.loader import load_config  # pylint: disable=wrong-import-position
from attn_har.models import build_model  # pylint: disable=wrong-import-position
from attn_har.train.optim import make_optimizer  # pylint: disable=wrong-import-position
from attn_har.train.schedule import make_schedule  # pylint: disable=wrong-import-position
from bench_train_step import time_train_step  # pylint: disable=wrong-import-position  (this script's folder)

REPO = pathlib.Path(__file__).resolve().parents[1]


def train_step_rate(a) -> dict:
  c = load_config(f"configs/ucf101_cbam.py:frames={a.frames},size={a.size},batch={a.batch},dtype={a.dtype}")
  c.data.flow_length = a.length
  c.model.num_classes = 101
  model = build_model(c.model)
  tx = make_optimizer(c.optim, make_schedule(c.optim, 1000))
  b, t, s = a.batch, a.frames, a.size
  key = jax.random.key(0)
  batch = {"rgb": jax.random.normal(key, (b, t, s, s, 3)), "flow": jax.random.normal(key, (b, t, s, s, 2 * a.length)),
           "label": jnp.arange(b) % 101}
  seconds, compile_s = time_train_step(model, tx, batch, a.steps)
  stats = jax.devices()[0].memory_stats() or {}
  return {"device": str(jax.devices()[0]), "compile_s": compile_s, "step_s": seconds, "clips_per_s": b / seconds,
          "img_per_s": b * t / seconds, "peak_gib": stats.get("peak_bytes_in_use", 0) / 2 ** 30}


def pipeline_rate(a, store: pathlib.Path) -> dict:
  from attn_har.data import pipeline  # pylint: disable=import-outside-toplevel
  from attn_har.data.clip_options import ClipOptions  # pylint: disable=import-outside-toplevel
  clip = ClipOptions(num_frames=a.frames, flow_length=a.length, image_size=a.size)
  it = pipeline.make_loader(store, clip, split="1", subset="train", batch_size=min(a.batch, 8), workers=a.workers,
                            seed=0, to_device=False)
  next(it)
  t0 = time.perf_counter()
  clips = 0
  for _ in range(a.batches):
    clips += next(it)["label"].shape[0]
  return {"clips_per_s": clips / (time.perf_counter() - t0), "workers": a.workers}


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--batch", type=int, default=64)
  p.add_argument("--frames", type=int, default=5)
  p.add_argument("--size", type=int, default=112)
  p.add_argument("--length", type=int, default=5)
  p.add_argument("--dtype", default="bfloat16")
  p.add_argument("--steps", type=int, default=10)
  p.add_argument("--realdata", default=str(REPO.parent / "shared" / "realdata"))
  p.add_argument("--workers", type=int, default=16)
  p.add_argument("--batches", type=int, default=20)
  a = p.parse_args(argv)
  step = train_step_rate(a)
  print(f"train step on {step['device']}: compile {step['compile_s']:.1f} s, {step['step_s'] * 1e3:.0f} ms/step, "
        f"{step['clips_per_s']:.1f} clips/s = {step['img_per_s']:.0f} img/s (batch {a.batch} x {a.frames} frames, "
        f"{a.size} px, 2L = {2 * a.length}, {a.dtype}), peak memory {step['peak_gib']:.2f} GiB", flush=True)
  root = pathlib.Path(a.realdata) / "ucf101" / "UCF-101"
  if not root.is_dir():
    print(f"no real UCF101 clips at {root}: pipeline part skipped")
    return 0
  with tempfile.TemporaryDirectory() as tmp:
    store = pathlib.Path(tmp) / "store"
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "attn_har.data.preprocess", "--dataset", "folder", "--root", str(root),
                    "--out", str(store), "--length", str(a.length), "--workers", str(a.workers)], check=True,
                   cwd=REPO, stdout=subprocess.DEVNULL)
    print(f"pre-processed the real clips in {time.perf_counter() - t0:.1f} s", flush=True)
    pipe = pipeline_rate(a, store)
  print(f"input pipeline: {pipe['clips_per_s']:.1f} clips/s with {pipe['workers']} workers")
  bound = "the input pipeline" if pipe["clips_per_s"] < step["clips_per_s"] else "the train step"
  print(f"bound by {bound}: the step consumes {step['clips_per_s']:.1f} clips/s, the pipeline gives "
        f"{pipe['clips_per_s']:.1f}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
