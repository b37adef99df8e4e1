"""Train-step throughput (clips/s) of RGB, flow and two-stream MobileNetV2 with and without each attention.

  python benchmarks/bench_train_step.py [--size 64] [--batch 8] [--frames 2] [--alpha 0.35] [--steps 5]
      [--attention none,cbam] [--stream rgb,flow,two_stream]

Each row jit-compiles the real train step (`attn_har.train.steps`, SGD, donated state) once, runs one warm-up
step, then times `--steps` steps on synthetic inputs; clips/s = batch * steps / seconds. One process, so the
rows are comparable; compile time is printed separately. Numbers are for the machine it runs on.
"""

import argparse
import time

from attn_har import xla_cpu

xla_cpu.configure()  # before jax starts: malloc and CPU dispatch settings (attn_har.xla_cpu, ATTN_HAR_MALLOC)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from attn_har.config.loader import load_config  # noqa: E402
from attn_har.models import build_model  # noqa: E402
from attn_har.train import steps  # noqa: E402
from attn_har.train.optim import make_optimizer  # noqa: E402
from attn_har.train.schedule import make_schedule  # noqa: E402

ATTENTIONS = ("none", "l2pa", "gate", "gate_grid", "residual", "cbam")
STREAMS = ("rgb", "flow", "two_stream")


def bench(stream: str, attention: str, a) -> tuple:
  c = load_config(f"configs/synthetic_baseline.py:stream={stream},attention={attention},alpha={a.alpha},"
                  f"size={a.size},frames={a.frames},batch={a.batch}")
  c.model.num_classes = 10
  model = build_model(c.model)
  tx = make_optimizer(c.optim, make_schedule(c.optim, 100))
  b, t, s, l2 = a.batch, a.frames, a.size, 2 * c.data.flow_length
  key = jax.random.key(0)
  batch = {"rgb": jax.random.normal(key, (b, t, s, s, 3)), "flow": jax.random.normal(key, (b, t, s, s, l2)),
           "label": jnp.arange(b) % 10}
  seconds, compile_s = time_train_step(model, tx, batch, a.steps)
  return b / seconds, compile_s


def time_train_step(model, tx, batch, count: int, warmup: int = 0, sync_each: bool = False) -> tuple:
  """(seconds per step, seconds of the first step: compile + run) of the jitted, donated train step on `batch`.

  `warmup` more untimed steps follow the first; `sync_each` waits for every timed step's metrics (as a training
  loop that reads the loss each step does) instead of only the last.
  """
  key = jax.random.key(0)
  state = jax.jit(lambda r: steps.init_state(model, tx, r, {k: v[:1] for k, v in batch.items()}))(key)
  step = jax.jit(steps.make_train_step(model, tx), donate_argnums=0)
  t0 = time.perf_counter()
  state, m = step(state, batch, key)
  jax.block_until_ready(m)
  compile_s = time.perf_counter() - t0
  for _ in range(warmup):
    state, m = step(state, batch, key)
  jax.block_until_ready(m)
  t0 = time.perf_counter()
  for _ in range(count):
    state, m = step(state, batch, key)
    if sync_each:
      jax.block_until_ready(m)
  jax.block_until_ready(m)
  return (time.perf_counter() - t0) / count, compile_s


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--size", type=int, default=64)
  p.add_argument("--batch", type=int, default=8)
  p.add_argument("--frames", type=int, default=2)
  p.add_argument("--alpha", type=float, default=0.35)
  p.add_argument("--steps", type=int, default=5)
  p.add_argument("--attention", default=",".join(ATTENTIONS))
  p.add_argument("--stream", default=",".join(STREAMS))
  a = p.parse_args()
  flow_channels = 2 * load_config("configs/synthetic_baseline.py").data.flow_length
  print(f"MobileNetV2 alpha={a.alpha}, {a.size}x{a.size}, batch {a.batch} clips x {a.frames} frames, "
        f"flow {flow_channels} channels; device {jax.devices()[0].platform}")
  print(f"{'stream':<11} {'attention':<10} {'clips/s':>8} {'vs none':>8} {'compile s':>10}", flush=True)
  for stream in a.stream.split(","):
    base = None
    for attention in a.attention.split(","):
      rate, compile_s = bench(stream, attention, a)
      base = rate if attention == "none" else base
      ratio = f"{rate / base:.2f}x" if base else "-"
      print(f"{stream:<11} {attention:<10} {rate:8.2f} {ratio:>8} {compile_s:10.1f}", flush=True)


if __name__ == "__main__":
  main()
