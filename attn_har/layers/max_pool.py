"""Max pooling whose gradient XLA:CPU computes 2.7x faster than autodiff's.

Autodiff of `lax.reduce_window` max gives a select-and-scatter, which XLA:CPU lowers to a reduce-window that
carries the arg-max's indices (four int32 index arrays beside the values) and a scatter: for ResNet50V2's stem pool
at batch 8 and 112 px ([8, 58, 58, 64] -> [8, 28, 28, 64]) about 31 ms of a 400 ms train step on a 2-core CPU (the
profile in docs/speed.md). Here the forward pass is the same `lax.reduce_window`, and the gradient is kh*kw masked,
dilated copies of the output gradient summed in one loop: forward + backward of that pool 13.2 ms -> 4.9 ms
(`benchmarks/bench_layer_grads.py`). The gradient follows autodiff's rule: each window's gradient goes to its first
maximum in row-major order (equal values: the earliest); where windows overlap, their gradients add (in another
order than autodiff's: float rounding).
"""

import functools

import jax
import jax.numpy as jnp
from jax import lax

from attn_har.layers.windows import window_slice


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def max_pool(x: jax.Array, window: tuple[int, int], strides: tuple[int, int]) -> jax.Array:
  """'VALID' max pooling of x [B, H, W, C] -> [B, (H - kh) // sh + 1, (W - kw) // sw + 1, C]."""
  return lax.reduce_window(x, -jnp.inf, lax.max, (1, *window, 1), (1, *strides, 1), "VALID")


def _max_pool_fwd(x, window, strides):
  y = max_pool(x, window, strides)
  return y, (x, y)


def _max_pool_bwd(window, strides, residuals, g):
  """dx = sum over window offsets (i, j) of g where x[i::sh, j::sw] is the window's first maximum, placed back."""
  x, y = residuals
  (ho, wo), (sh, sw) = y.shape[1:3], strides
  taken, dx = None, None
  zero = jnp.zeros((), g.dtype)
  for i in range(window[0]):
    for j in range(window[1]):
      patch = window_slice(x, (i, j), strides, (ho, wo))
      hit = patch == y if taken is None else (patch == y) & ~taken
      taken = hit if taken is None else taken | hit
      placed = lax.pad(jnp.where(hit, g, zero), zero,
                       ((0, 0, 0), (i, x.shape[1] - i - sh * (ho - 1) - 1, sh - 1),
                        (j, x.shape[2] - j - sw * (wo - 1) - 1, sw - 1), (0, 0, 0)))
      dx = placed if dx is None else dx + placed
  return (dx,)


max_pool.defvjp(_max_pool_fwd, _max_pool_bwd)
