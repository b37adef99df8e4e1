"""Depthwise 2-D convolution with an implementation that is fast on XLA:CPU.

XLA:CPU runs `lax.conv_general_dilated(..., feature_group_count=C)` about 45x slower than the same operation written
as kh*kw shifted multiply-adds (2-core CPU, jax 0.10.2, 8x56x56x144: grouped 0.6 GFLOP/s forward; shifted 45x faster
forward, 7x faster forward + backward; `benchmarks/bench_depthwise.py`); on GPU the grouped convolution is fine.
Both implementations share one parameter tree (`kernel` of shape [kh, kw, 1, C], as a grouped `nn.Conv`), so
checkpoints move between them.
"""

import functools
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from attn_har.layers.keras import glorot_uniform, zeros
from attn_har.layers.windows import resolve_by_backend, window_slice

IMPLS = ("auto", "shifted", "grouped")
Padding = str | Sequence[tuple[int, int]]


def resolve_impl(impl: str) -> str:
  """'auto' -> 'shifted' on the CPU backend, 'grouped' elsewhere; other names are checked and returned."""
  return resolve_by_backend(impl, IMPLS, "shifted", "grouped", "depthwise_impl")


def _shifted_sum(x: jax.Array, kernel: jax.Array, strides: tuple[int, int], out_hw: tuple[int, int]) -> jax.Array:
  """sum over (i, j) of x[:, i::sh, j::sw][:, :Ho, :Wo] * kernel[i, j, 0]: one loop fusion on XLA:CPU."""
  kh, kw = kernel.shape[:2]
  out = None
  for i in range(kh):
    for j in range(kw):
      term = window_slice(x, (i, j), strides, out_hw) * kernel[i, j, 0]
      out = term if out is None else out + term
  return out


def _out_hw(x_hw: Sequence[int], kernel: jax.Array, strides: tuple[int, int], pads) -> tuple[int, int]:
  return tuple((n + p[0] + p[1] - k) // s + 1 for n, k, s, p in zip(x_hw, kernel.shape[:2], strides, pads))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def depthwise_shifted(x: jax.Array, kernel: jax.Array, strides: tuple[int, int],
                      pads: Sequence[tuple[int, int]]) -> jax.Array:
  """Depthwise convolution as a sum of kh*kw strided slices times per-channel weights.

  The gradient is written out (`jax.custom_vjp`) rather than derived: autodiff of the slices gives kh*kw padded
  copies of the output gradient, each as large as the input, summed one by one (on MobileNetV2 the largest cost
  of the train step on XLA:CPU). Here dx is one shifted multiply-add of the zero-dilated, padded gradient with the
  flipped kernel (a transposed depthwise convolution), and dkernel the kh*kw per-channel sums of patch * gradient.

  Args:
    x: [B, H, W, C] input.
    kernel: [kh, kw, 1, C] weights.
    strides: (sh, sw).
    pads: ((top, bottom), (left, right)) zero padding.

  Returns:
    [B, Ho, Wo, C], equal to the grouped convolution.
  """
  pads = tuple(tuple(p) for p in pads)
  xp = jnp.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
  return _shifted_sum(xp, kernel, strides, _out_hw(x.shape[1:3], kernel, strides, pads))


def _shifted_fwd(x, kernel, strides, pads):
  return depthwise_shifted(x, kernel, strides, pads), (x, kernel)


def _shifted_bwd(strides, pads, res, g):
  x, kernel = res
  pads = tuple(tuple(p) for p in pads)
  kh, kw = kernel.shape[:2]
  (sh, sw), (h, w) = strides, x.shape[1:3]
  ho, wo = g.shape[1:3]
  # dx[u] = sum_i g_dilated[u + top - i] * k[i]: pad the stride-dilated gradient so that a stride-1 shifted sum
  # with the flipped kernel lands exactly on x's H x W (negative pads crop).
  gpads = [(k - 1 - p[0], n + p[0] - (o - 1) * s - 1, s - 1) for k, p, n, o, s in
           zip((kh, kw), pads, (h, w), (ho, wo), (sh, sw))]
  gp = lax.pad(g, jnp.zeros((), g.dtype), ((0, 0, 0), *gpads, (0, 0, 0)))
  dx = _shifted_sum(gp, kernel[::-1, ::-1], (1, 1), (h, w))
  return dx.astype(x.dtype), _kernel_grad(x, g, kernel.shape, strides, pads).astype(kernel.dtype)


def _kernel_grad(x: jax.Array, g: jax.Array, kernel_shape: tuple, strides: tuple[int, int], pads) -> jax.Array:
  """dkernel[i, j, 0, c] = sum over (b, h, w) of x_padded[b, i + sh * h, j + sw * w, c] * g[b, h, w, c].

  The kh*kw sums are one variadic reduction (XLA:CPU reads x and g once instead of kh*kw times), float32
  accumulation. Wide maps (Wo >= 28) first reduce over (b, h) and then over w, which vectorises better on XLA:CPU.
  MobileNetV2 alpha 1.0, batch 16, 112 px, the 56x56x144 block: 32.5 ms as kh*kw separate sums, 12.1 ms as one.
  """
  kh, kw = kernel_shape[:2]
  out_hw = g.shape[1:3]
  acc = jnp.promote_types(g.dtype, jnp.float32)
  xp = jnp.pad(x, ((0, 0), pads[0], pads[1], (0, 0))).astype(acc)
  g = g.astype(acc)
  products = [window_slice(xp, (i, j), strides, out_hw) * g for i in range(kh) for j in range(kw)]
  axes = (0, 1) if out_hw[1] >= 28 else (0, 1, 2)
  sums = lax.reduce(products, [jnp.zeros((), acc)] * len(products),
                    lambda a, b: [u + v for u, v in zip(a, b)], axes)
  dk = jnp.stack(sums)
  if len(axes) == 2:
    dk = jnp.sum(dk, axis=1)
  return dk.reshape(kernel_shape)


depthwise_shifted.defvjp(_shifted_fwd, _shifted_bwd)


def depthwise_grouped(x: jax.Array, kernel: jax.Array, strides: tuple[int, int],
                      pads: Sequence[tuple[int, int]]) -> jax.Array:
  """The reference: `lax.conv_general_dilated` with `feature_group_count=C` (same arguments as above)."""
  return lax.conv_general_dilated(
      x, kernel, window_strides=strides, padding=[tuple(p) for p in pads],
      dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=x.shape[-1])


class DepthwiseConv(nn.Module):
  """Depthwise convolution (depth multiplier 1), Keras `DepthwiseConv2D` semantics.

  Attributes:
    kernel_size: (kh, kw).
    strides: (sh, sw).
    padding: 'SAME', 'VALID' or explicit ((top, bottom), (left, right)) zero padding.
    use_bias: add a per-channel bias.
    impl: 'auto' (shifted on CPU, grouped elsewhere), 'shifted' or 'grouped'.
    dtype: compute dtype.
    param_dtype: parameter dtype.
    kernel_init: initialiser of the [kh, kw, 1, C] kernel (glorot-uniform, as Keras: fan_in + fan_out is the
      same for Keras's [kh, kw, C, 1] layout).
  """
  kernel_size: tuple[int, int] = (3, 3)
  strides: tuple[int, int] = (1, 1)
  padding: Padding = "SAME"
  use_bias: bool = False
  impl: str = "auto"
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32
  kernel_init: Any = glorot_uniform

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """[B, H, W, C] -> [B, Ho, Wo, C]."""
    c = x.shape[-1]
    kernel = self.param("kernel", self.kernel_init, (*self.kernel_size, 1, c), self.param_dtype)
    bias = self.param("bias", zeros, (c,), self.param_dtype) if self.use_bias else None
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    if isinstance(self.padding, str):
      pads = lax.padtype_to_pads(x.shape[1:3], self.kernel_size, self.strides, self.padding)
    else:
      pads = self.padding
    fn = depthwise_shifted if resolve_impl(self.impl) == "shifted" else depthwise_grouped
    y = fn(x, kernel, tuple(self.strides), tuple(tuple(p) for p in pads))
    return y if bias is None else y + bias
