"""The image train step on a GPU in bfloat16: img/s, the fraction of the GPU's bf16 peak it reaches, what bounds it.

  python benchmarks/gpu_train_peak.py [--models mobilenet_v2,resnet50_v2,mobilenet_v2:shifted] [--size 224]
      [--batch 128] [--steps 20] [--peak_tflops 0] [--trace_dir DIR]

Per model (`build_image_model`, 1000 classes, compute dtype bfloat16, float32 parameters and optimiser state, SGD
momentum 0.9, the real jitted, donated train step `attn_har.train.steps`; `name:shifted` / `name:grouped` picks
MobileNetV2's depthwise implementation, default 'auto' = grouped conv off CPU):

  compile s        first step (trace + XLA compile + one run)
  img/s            batch x steps / seconds of --steps steps after 2 warm-up steps, synchronised at the end only
  model TFLOP/s    3 x the forward pass's FLOPs (`attn_har.inspect.flops`, multiply-add = 2) x img/s: the usual
                   "model FLOPs" of a train step (backward = 2 x forward)
  % peak           model TFLOP/s / the bf16 dense peak; the peak is measured in the same process as the best of
                   three 8192^3 bf16 matmuls (the ceiling XLA reaches here), and the datasheet peak is printed too
  HLO GB/step      bytes the compiled step reads and writes by XLA's cost analysis, and what that is per second
  GPU busy / conv  from a profiler trace of 3 steps: the fraction of the step's wall time some kernel runs, and
                   the share of kernel time in convolution / matmul kernels (cuDNN, cuBLAS, CUTLASS) vs
                   elementwise / reduction fusions (BatchNorm, ReLU, the optimiser) and copies

A model far below the matmul ceiling while the GPU is busy, with most kernel time outside conv kernels, is bound by
memory traffic of its elementwise and normalisation work; a GPU that is idle for much of the step is bound by the
host (launches, Python). On a CPU it runs too (use --size 64 --batch 4), which is how it is tested.
"""

import argparse
import collections
import glob
import gzip
import json
import pathlib
import re
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from attn_har.inspect.flops import count_flops  # noqa: E402
from attn_har.models import ImageModel, build_image_model  # noqa: E402
from attn_har.train import steps  # noqa: E402

# Dense bf16 tensor-core peaks from the vendors' datasheets (TFLOP/s, SXM parts), printed beside the measured one.
DATASHEET_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L4": 121.0, "A10": 125.0}
_CONV = re.compile(r"conv|gemm|xmma|cudnn|cutlass|dgrad|wgrad|fprop|sm\d\d_|matmul|cublas|dot", re.I)
_COPY = re.compile(r"memcpy|memset|copy", re.I)


def datasheet_peak(kind: str) -> float:
  return next((v for k, v in DATASHEET_TFLOPS.items() if k.lower() in kind.lower()), float("nan"))


def matmul_peak_tflops(n: int = 8192, repeats: int = 10) -> float:
  """Best of three timings of `repeats` bf16 n^3 matmuls: the dense rate XLA reaches on this device."""
  a = jax.random.normal(jax.random.key(1), (n, n), jnp.bfloat16)
  f = jax.jit(lambda x: x @ x)
  f(a).block_until_ready()
  best = float("inf")
  for _ in range(3):
    t0 = time.perf_counter()
    for _ in range(repeats):
      y = f(a)
    y.block_until_ready()
    best = min(best, (time.perf_counter() - t0) / repeats)
  return 2 * n ** 3 / best / 1e12


def build(spec: str, size: int, dtype):
  name, _, impl = spec.partition(":")
  extra = {"alpha": 1.0, "depthwise_impl": impl or "auto"} if name == "mobilenet_v2" else {}
  module = build_image_model(name, None, 1000, dtype=dtype, **extra)
  forward_flops = count_flops(module, (1, size, size, 3))
  return ImageModel(module), forward_flops


def summarize_trace(trace_dir: str, wall_s: float) -> dict:
  """GPU-side busy fraction and kernel-time shares from the perfetto trace `jax.profiler` wrote under trace_dir."""
  files = sorted(glob.glob(f"{trace_dir}/**/perfetto_trace.json.gz", recursive=True))
  if not files:
    return {}
  with gzip.open(files[-1], "rt") as f:
    events = json.load(f)["traceEvents"]
  names = {e["pid"]: e.get("args", {}).get("name", "") for e in events if e.get("ph") == "M"
           and e.get("name") == "process_name"}
  device = {pid for pid, n in names.items() if re.search(r"/device:(GPU|TPU)|gpu", n, re.I)}
  threads = {(e["pid"], e["tid"]): e.get("args", {}).get("name", "") for e in events if e.get("ph") == "M"
             and e.get("name") == "thread_name" and e.get("pid") in device}
  # Kernels run on the device's stream lines; its "XLA Modules" / "XLA Ops" lines span them again.
  streams = {k for k, n in threads.items() if re.search(r"stream", n, re.I)} or \
      {k for k, n in threads.items() if not re.search(r"xla|module|ops|step", n, re.I)}
  kernels = [e for e in events if e.get("ph") == "X" and (e.get("pid"), e.get("tid")) in streams and e.get("dur")]
  if not kernels:
    return {"device_processes": sorted(set(names.values()))}
  share = collections.Counter()
  for e in kernels:
    share["conv/matmul" if _CONV.search(e["name"]) else "copy" if _COPY.search(e["name"]) else "other"] += e["dur"]
  spans = sorted((e["ts"], e["ts"] + e["dur"]) for e in kernels)  # union of kernel intervals, any stream
  busy, end = 0.0, -np.inf
  for start, stop in spans:
    if stop > end:
      busy += stop - max(start, end)
      end = stop
  top = collections.Counter()
  for e in kernels:
    top[e["name"][:60]] += e["dur"]
  total = sum(share.values())
  return {"busy": busy / 1e6 / wall_s, **{k: v / total for k, v in share.items()},
          "top": [(n, d / total) for n, d in top.most_common(8)]}


def measure(spec: str, a, dtype, trace_root: str) -> dict:
  model, forward_flops = build(spec, a.size, dtype)
  tx = optax.chain(optax.scale_by_learning_rate(0.01), optax.trace(decay=0.9))
  rng = np.random.default_rng(0)
  batch = {"image": jnp.asarray(rng.standard_normal((a.batch, a.size, a.size, 3)), jnp.float32),
           "label": jnp.asarray(rng.integers(0, 1000, a.batch), jnp.int32)}
  key = jax.random.key(0)
  state = jax.jit(lambda r: steps.init_state(model, tx, r, {k: v[:1] for k, v in batch.items()}))(key)
  step = jax.jit(steps.make_train_step(model, tx), donate_argnums=0)
  t0 = time.perf_counter()
  compiled = step.lower(state, batch, key).compile()
  state, m = compiled(state, batch, key)
  jax.block_until_ready(m)
  compile_s = time.perf_counter() - t0
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else (cost or {})
  for _ in range(2):
    state, m = compiled(state, batch, key)
  jax.block_until_ready(m)
  t0 = time.perf_counter()
  for _ in range(a.steps):
    state, m = compiled(state, batch, key)
  jax.block_until_ready(m)
  step_s = (time.perf_counter() - t0) / a.steps
  trace = {}
  if trace_root:
    path = f"{trace_root}/{spec.replace(':', '_')}"
    try:
      with jax.profiler.trace(path, create_perfetto_trace=True):
        t0 = time.perf_counter()
        for _ in range(3):
          state, m = compiled(state, batch, key)
        jax.block_until_ready(m)
        traced_s = time.perf_counter() - t0
      trace = summarize_trace(path, traced_s)
    except Exception as e:  # pylint: disable=broad-except  (a profiler that cannot start loses the trace only)
      trace = {"error": f"{type(e).__name__}: {str(e)[:200]}"}
  return {"spec": spec, "compile_s": compile_s, "step_s": step_s, "img_s": a.batch / step_s,
          "model_tflops": 3 * forward_flops * a.batch / step_s / 1e12, "forward_gflops": forward_flops / 1e9,
          "hlo_gb": cost.get("bytes accessed", float("nan")) / 1e9, "trace": trace,
          "loss": float(m["loss"]), "steps_done": 3 + a.steps + (3 if trace_root else 0)}


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--models", default="mobilenet_v2,resnet50_v2,mobilenet_v2:shifted")
  p.add_argument("--size", type=int, default=224)
  p.add_argument("--batch", type=int, default=128)
  p.add_argument("--steps", type=int, default=20)
  p.add_argument("--dtype", default="bfloat16")
  p.add_argument("--peak_tflops", type=float, default=0.0, help="bf16 peak to divide by (default: measured matmul)")
  p.add_argument("--trace_dir", default="", help="write a profiler trace of 3 steps per model here and summarise it")
  a = p.parse_args(argv)
  dev = jax.devices()[0]
  kind = getattr(dev, "device_kind", dev.platform)
  print(f"jax {jax.__version__}, {dev.platform} {kind}; {a.size}x{a.size} px, batch {a.batch}, {a.dtype} compute, "
        f"float32 parameters, SGD momentum, {a.steps} timed steps", flush=True)
  matmul = matmul_peak_tflops(8192 if dev.platform == "gpu" else 1024, 10 if dev.platform == "gpu" else 2)
  peak = a.peak_tflops or matmul
  print(f"bf16 matmul 8192^3 here: {matmul:.0f} TFLOP/s; datasheet dense bf16 peak: {datasheet_peak(kind):.0f}; "
        f"% peak below is of {peak:.0f}", flush=True)
  print(f"{'model':<22} {'compile s':>9} {'img/s':>8} {'model TFLOP/s':>13} {'% peak':>7} {'% datasheet':>11} "
        f"{'HLO GB/step':>11} {'GB/s':>6} {'GPU busy':>8} {'conv':>5} {'other':>5}", flush=True)
  for spec in a.models.split(","):
    try:
      r = measure(spec, a, jnp.dtype(a.dtype), a.trace_dir)
    except Exception as e:  # pylint: disable=broad-except  (one model failing must not lose the others' rows)
      print(f"{spec:<22} failed: {type(e).__name__}: {str(e)[:400]}", flush=True)
      continue
    t = r["trace"]
    print(f"{spec:<22} {r['compile_s']:9.1f} {r['img_s']:8.0f} {r['model_tflops']:13.1f} "
          f"{100 * r['model_tflops'] / peak:6.1f}% {100 * r['model_tflops'] / datasheet_peak(kind):10.1f}% "
          f"{r['hlo_gb']:11.1f} {r['hlo_gb'] / r['step_s']:6.0f} {t.get('busy', float('nan')):8.2f} "
          f"{t.get('conv/matmul', float('nan')):5.2f} {t.get('other', float('nan')):5.2f}", flush=True)
    print(f"  forward {r['forward_gflops']:.2f} GFLOP/img, step {1e3 * r['step_s']:.1f} ms, "
          f"loss after {r['steps_done']} steps {r['loss']:.3f}; "
          f"top kernels: " + "; ".join(f"{n} {s:.2f}" for n, s in t.get("top", [])[:6]) + t.get("error", ""),
          flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
