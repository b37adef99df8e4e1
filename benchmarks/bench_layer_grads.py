"""Forward + backward time of the layers attn_har writes for XLA:CPU against the plain JAX form, in one process.

  .venv/bin/python benchmarks/bench_layer_grads.py [--repeats 20]

  pointwise  a 1x1 convolution as `lax.conv_general_dilated` vs as a matrix product (`attn_har.layers.pointwise`),
             on the shapes of ResNet50V2 (batch 8, 112 px) and MobileNetV2 alpha 1.0 (batch 16, 112 px) blocks;
  max_pool   ResNet50V2's 3x3/2 stem pool (batch 8, 112 px): `nn.max_pool` under autodiff vs `attn_har.layers.max_pool`.

Each row jit-compiles the gradient of sum(layer(x) * g) with respect to the inputs and the kernel, and prints the
best of 3 means over --repeats calls for each form and their ratio (> 1: attn_har's form is faster), with the
largest relative difference of the results. Numbers are for the machine it runs on.
"""

import argparse
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from attn_har import xla_cpu  # noqa: E402

xla_cpu.configure()  # before jax starts: malloc and CPU dispatch settings (attn_har.xla_cpu, ATTN_HAR_MALLOC)

import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from jax import lax  # noqa: E402

from attn_har.layers import pointwise  # noqa: E402
from attn_har.layers.max_pool import max_pool  # noqa: E402

# (batch, height = width, C_in, C_out)
POINTWISE_SHAPES = [(8, 28, 512, 128), (8, 28, 128, 512), (8, 56, 256, 64), (8, 56, 64, 256), (8, 14, 1024, 256),
                    (8, 7, 2048, 512), (16, 56, 24, 144), (16, 56, 144, 24), (16, 28, 192, 32), (16, 14, 384, 64)]


def best_mean(fn, args, repeats: int) -> float:
  jax.block_until_ready(fn(*args))
  best = float("inf")
  for _ in range(3):
    t0 = time.perf_counter()
    for _ in range(repeats):
      out = fn(*args)
    jax.block_until_ready(out)
    best = min(best, (time.perf_counter() - t0) / repeats)
  return best


def grad_fn(layer, argnums):
  return jax.jit(jax.grad(lambda *a: jnp.sum(layer(*a[:-1]) * a[-1]), argnums=argnums))


def rel_diff(a, b) -> float:
  return max(float(jnp.max(jnp.abs(x - y)) / jnp.max(jnp.abs(y))) for x, y in zip(jax.tree.leaves(a),
                                                                                   jax.tree.leaves(b)))


def row(name: str, plain, ours, args, repeats: int) -> None:
  t_plain, t_ours = best_mean(plain, args, repeats), best_mean(ours, args, repeats)
  print(f"{name:<34} {t_plain * 1e3:9.2f} {t_ours * 1e3:9.2f} {t_plain / t_ours:6.2f} "
        f"{rel_diff(ours(*args), plain(*args)):9.1e}", flush=True)


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--repeats", type=int, default=20)
  a = p.parse_args()
  nhwc = ("NHWC", "HWIO", "NHWC")
  print(f"{'layer (forward + backward)':<34} {'plain ms':>9} {'ours ms':>9} {'ratio':>6} {'rel diff':>9}")
  key = jax.random.key(0)
  for b, h, ci, co in POINTWISE_SHAPES:
    x, w = jax.random.normal(key, (b, h, h, ci)), jax.random.normal(key, (1, 1, ci, co)) * 0.05
    g = jax.random.normal(key, (b, h, h, co))
    conv = lambda x, w, f: f(x, w, (1, 1), "VALID", dimension_numbers=nhwc)
    row(f"pointwise {b}x{h}x{h}x{ci} -> {co}", grad_fn(lambda x, w: conv(x, w, lax.conv_general_dilated), (0, 1)),
        grad_fn(lambda x, w: conv(x, w, pointwise.conv_general_dilated), (0, 1)), (x, w, g), a.repeats)
  x = jnp.pad(jax.random.normal(key, (8, 56, 56, 64)), ((0, 0), (1, 1), (1, 1), (0, 0)))  # conv1's output, padded
  g = jax.random.normal(key, (8, 28, 28, 64))
  row("max_pool 8x58x58x64 3x3/2", grad_fn(lambda x: nn.max_pool(x, (3, 3), (2, 2), padding="VALID"), 0),
      grad_fn(lambda x: max_pool(x, (3, 3), (2, 2)), 0), (x, g), a.repeats)


if __name__ == "__main__":
  main()
