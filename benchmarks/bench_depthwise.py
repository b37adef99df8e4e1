"""MobileNetV2 train-step throughput with the two depthwise implementations, side by side in one process.

  .venv/bin/python benchmarks/bench_depthwise.py [--alpha 1.0 --size 112 --batch 8 --steps 10 --classes 101]

Prints img/s for depthwise_impl='shifted' (kh*kw shifted multiply-adds) and 'grouped' (feature_group_count conv)
and their ratio. On XLA:CPU the shifted form is expected to win by a wide margin; on GPU the grouped one is fine.
"""

import argparse
import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from attn_har.models import build_image_model  # noqa: E402


def train_step_rate(impl: str, args: argparse.Namespace) -> tuple[float, float]:
  """Returns (compile seconds, images per second) of a jitted SGD train step."""
  model = build_image_model("mobilenet_v2", None, args.classes, alpha=args.alpha, depthwise_impl=impl)
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((args.batch, args.size, args.size, 3)), jnp.float32)
  y = jnp.asarray(rng.integers(0, args.classes, args.batch))
  variables = jax.jit(lambda x: model.init(jax.random.key(0), x, False))(x)
  tx = optax.sgd(0.1, momentum=0.9)
  opt_state = tx.init(variables["params"])

  def step(params, batch_stats, opt_state, x, y):
    def loss_fn(params):
      logits, state = model.apply({"params": params, "batch_stats": batch_stats}, x, True, mutable=["batch_stats"])
      return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), state["batch_stats"]

    (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), batch_stats, opt_state, loss

  state = (variables["params"], variables["batch_stats"], opt_state)
  t0 = time.perf_counter()
  compiled = jax.jit(step, donate_argnums=(0, 1, 2)).lower(*state, x, y).compile()
  compile_s = time.perf_counter() - t0
  *state, loss = compiled(*state, x, y)  # warm-up
  jax.block_until_ready(loss)
  t0 = time.perf_counter()
  for _ in range(args.steps):
    *state, loss = compiled(*state, x, y)
  jax.block_until_ready(loss)
  if not np.isfinite(float(loss)):
    raise FloatingPointError(f"non-finite loss with depthwise_impl={impl!r}")
  return compile_s, args.steps * args.batch / (time.perf_counter() - t0)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--alpha", type=float, default=1.0)
  parser.add_argument("--size", type=int, default=112)
  parser.add_argument("--batch", type=int, default=8)
  parser.add_argument("--steps", type=int, default=10)
  parser.add_argument("--classes", type=int, default=101)
  args = parser.parse_args()
  print(f"MobileNetV2 alpha={args.alpha} {args.size}x{args.size} batch {args.batch}, {args.steps} train steps, "
        f"backend {jax.default_backend()} ({jax.devices()[0].device_kind})")
  rates = {}
  for impl in ("shifted", "grouped"):
    compile_s, rates[impl] = train_step_rate(impl, args)
    print(f"  depthwise_impl={impl:8s} {rates[impl]:8.1f} img/s   (compile {compile_s:.1f} s)", flush=True)
  print(f"  shifted / grouped = {rates['shifted'] / rates['grouped']:.2f}x")


if __name__ == "__main__":
  main()
