"""attn_har's jitted train step against TF-Keras's `train_on_batch`, same model, side by side on this machine.

  .venv/bin/python benchmarks/bench_vs_keras.py [--models mobilenet_v2,resnet50_v2] [--pairs 3] [--steps 6]
      [--malloc default,off] [--tf_python .venv-bench/bin/python]

TF-Keras lives in its own environment (not a dependency of attn_har); create it once with
  python3.11 -m venv .venv-bench && .venv-bench/bin/pip install -r requirements-bench.txt
Without it the benchmark prints how to create it and exits 0.

Each measurement is a child process (this file with --child jax|tf) that builds the model, runs the first train
step (compile + run: "first-step s"), one more warm-up step, then times --steps steps, each waited for (TF's
`train_on_batch` returns the loss to the host each step, so attn_har's step is synchronised each step too), and
prints JSON. The two frameworks alternate (pair i runs attn_har first when i is even, TF first when odd), so
load from other processes hits both alike; the ratio is per pair, and the median over pairs is printed. attn_har
runs once per pair for each --malloc mode (`attn_har.xla_cpu`: 'default', the settings `python launch.py` uses
unless ATTN_HAR_MALLOC says otherwise: synchronous CPU dispatch and glibc settings that keep each step's
temporaries mapped; 'off', glibc's and jax's defaults, which fault them in again every step; or 'single_arena'),
each against the pair's one TF run.

Models (float32, random init, synthetic batch of fixed images and labels, SGD momentum 0.9, lr 0.01,
softmax cross-entropy on logits):
  mobilenet_v2  Keras `MobileNetV2(alpha=1.0, weights=None)` vs `build_image_model('mobilenet_v2', alpha=1.0)`
  resnet50_v2   Keras `ResNet50V2(weights=None)` vs `build_image_model('resnet50_v2')`
Both at --size px with --classes classes. attn_har runs its real train step (`attn_har.train.steps`, donated
state, `benchmarks/bench_train_step.time_train_step`) with `attn_har.xla_cpu.configure()` under ATTN_HAR_MALLOC=
<mode>; TF runs without XLA (`jit_compile=False`, its default and its fast path on CPU).
"""

import argparse
import json
import os
import pathlib
import resource
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
TF_PYTHON = ROOT / ".venv-bench" / "bin" / "python"
DEFAULT_BATCH = {"mobilenet_v2": 16, "resnet50_v2": 8}


def _cpu_seconds() -> dict:
  r = resource.getrusage(resource.RUSAGE_SELF)
  return {"user_s": r.ru_utime, "sys_s": r.ru_stime}


def child_jax(a) -> dict:
  """Times attn_har's train step; returns {'img_s', 'first_step_s', 'user_s', 'sys_s'}."""
  sys.path.insert(0, str(ROOT))
  from attn_har import xla_cpu  # pylint: disable=import-outside-toplevel
  xla_cpu.configure()
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  import optax  # pylint: disable=import-outside-toplevel
  from attn_har.models import ImageModel, build_image_model  # pylint: disable=import-outside-toplevel
  from benchmarks.bench_train_step import time_train_step  # pylint: disable=import-outside-toplevel

  extra = {"alpha": 1.0} if a.model == "mobilenet_v2" else {}
  model = ImageModel(build_image_model(a.model, None, a.classes, **extra))
  tx = optax.chain(optax.scale_by_learning_rate(0.01), optax.trace(decay=0.9))  # Keras SGD(0.01, momentum=0.9)
  rng = np.random.default_rng(0)
  batch = {"image": jnp.asarray(rng.standard_normal((a.batch, a.size, a.size, 3)), jnp.float32),
           "label": jnp.asarray(rng.integers(0, a.classes, a.batch), jnp.int32)}
  seconds, first_s = time_train_step(model, tx, batch, a.steps, warmup=1, sync_each=True)
  return {"img_s": a.batch / seconds, "first_step_s": first_s, "backend": jax.default_backend(), **_cpu_seconds()}


def child_tf(a) -> dict:
  """Times TF-Keras's `train_on_batch`; returns {'img_s', 'first_step_s', 'user_s', 'sys_s'}."""
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  import numpy as np  # pylint: disable=import-outside-toplevel
  import tensorflow as tf  # pylint: disable=import-outside-toplevel

  shape = (a.size, a.size, 3)
  if a.model == "mobilenet_v2":
    model = tf.keras.applications.MobileNetV2(alpha=1.0, weights=None, input_shape=shape, classes=a.classes,
                                              classifier_activation=None)
  else:
    model = tf.keras.applications.ResNet50V2(weights=None, input_shape=shape, classes=a.classes,
                                             classifier_activation=None)
  model.compile(optimizer=tf.keras.optimizers.SGD(0.01, momentum=0.9),
                loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=False)
  rng = np.random.default_rng(0)
  x = rng.standard_normal((a.batch, *shape)).astype(np.float32)
  y = rng.integers(0, a.classes, a.batch).astype(np.int32)
  t0 = time.perf_counter()
  model.train_on_batch(x, y)
  first_s = time.perf_counter() - t0
  model.train_on_batch(x, y)
  t0 = time.perf_counter()
  for _ in range(a.steps):
    model.train_on_batch(x, y)
  seconds = (time.perf_counter() - t0) / a.steps
  return {"img_s": a.batch / seconds, "first_step_s": first_s, "backend": "tf " + tf.__version__, **_cpu_seconds()}


def run_child(kind: str, model: str, batch: int, a, tf_python: pathlib.Path, malloc: str = "default") -> dict:
  python = sys.executable if kind == "jax" else str(tf_python)
  cmd = [python, __file__, "--child", kind, "--models", model, "--batch", str(batch), "--size", str(a.size),
         "--steps", str(a.steps), "--classes", str(a.classes)]
  env = {**os.environ, "ATTN_HAR_MALLOC": malloc}
  out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False, env=env)
  lines = [l for l in out.stdout.splitlines() if l.startswith("{")]
  if out.returncode != 0 or not lines:
    raise RuntimeError(f"{kind} child failed (rc {out.returncode}):\n{out.stderr[-3000:]}")
  return json.loads(lines[-1])


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--models", default="mobilenet_v2,resnet50_v2")
  p.add_argument("--batch", type=int, default=0, help="batch size (default: 16 for mobilenet_v2, 8 for resnet50_v2)")
  p.add_argument("--size", type=int, default=112)
  p.add_argument("--classes", type=int, default=101)
  p.add_argument("--steps", type=int, default=6)
  p.add_argument("--pairs", type=int, default=3)
  p.add_argument("--malloc", default="default,off", help="ATTN_HAR_MALLOC modes of attn_har's runs")
  p.add_argument("--tf_python", default=str(TF_PYTHON), help="python of the TF-Keras environment")
  p.add_argument("--child", choices=("jax", "tf"), help=argparse.SUPPRESS)
  a = p.parse_args(argv)
  if a.child:
    a.model = a.models
    print(json.dumps((child_jax if a.child == "jax" else child_tf)(a)), flush=True)
    return 0
  tf_python = pathlib.Path(a.tf_python)
  if not tf_python.exists():
    print(f"skipped: no TF-Keras environment at {tf_python}; create it with\n"
          f"  python3.11 -m venv {ROOT / '.venv-bench'} && {ROOT / '.venv-bench/bin/pip'} install "
          f"-r {ROOT / 'requirements-bench.txt'}")
    return 0
  print(f"{a.size}x{a.size} px, float32, SGD momentum 0.9, {a.steps} timed steps per run, {a.pairs} pairs, "
        f"{os.cpu_count()} CPUs; XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
  modes = a.malloc.split(",")
  print(f"{'model':<13} {'batch':>5} {'pair':>4} {'malloc':>12} {'attn_har img/s':>14} {'TF img/s':>9} {'ratio':>6} "
        f"{'first-step s (jax / tf)':>24} {'sys s (jax / tf)':>17}", flush=True)
  for model in a.models.split(","):
    batch = a.batch or DEFAULT_BATCH.get(model, 8)
    ratios = {m: [] for m in modes}
    for i in range(a.pairs):
      runs = [("jax", m) for m in modes] + [("tf", "default")]
      runs = runs if i % 2 == 0 else runs[::-1]
      r = {(kind, m): run_child(kind, model, batch, a, tf_python, m) for kind, m in runs}
      tf = r[("tf", "default")]
      for m in modes:
        jx = r[("jax", m)]
        ratios[m].append(jx["img_s"] / tf["img_s"])
        print(f"{model:<13} {batch:5d} {i:4d} {m:>12} {jx['img_s']:14.1f} {tf['img_s']:9.1f} {ratios[m][-1]:6.2f} "
              f"{jx['first_step_s']:11.1f} / {tf['first_step_s']:<10.1f} "
              f"{jx['sys_s']:7.1f} / {tf['sys_s']:<7.1f}", flush=True)
    for m in modes:
      print(f"{model:<13} malloc {m}: median attn_har / TF-Keras = {statistics.median(ratios[m]):.2f} "
            f"(pairs: {', '.join(f'{x:.2f}' for x in ratios[m])})", flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
