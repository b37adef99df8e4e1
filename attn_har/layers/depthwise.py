"""Depthwise 2-D convolution with an implementation that is fast on XLA:CPU.

XLA:CPU runs `lax.conv_general_dilated(..., feature_group_count=C)` about 45x slower than the same operation written
as kh*kw shifted multiply-adds (2-core CPU, jax 0.10.2, 8x56x56x144: grouped 0.6 GFLOP/s forward; shifted 45x faster
forward, 7x faster forward + backward; `benchmarks/bench_depthwise.py`); on GPU the grouped convolution is fine.
Both implementations share one parameter tree (`kernel` of shape [kh, kw, 1, C], as a grouped `nn.Conv`), so
checkpoints move between them.
"""

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from attn_har.layers.keras import glorot_uniform, zeros

IMPLS = ("auto", "shifted", "grouped")
Padding = str | Sequence[tuple[int, int]]


def resolve_impl(impl: str) -> str:
  """'auto' -> 'shifted' on the CPU backend, 'grouped' elsewhere; other names are checked and returned."""
  if impl not in IMPLS:
    raise ValueError(f"unknown depthwise_impl {impl!r}; valid choices: {', '.join(IMPLS)}")
  if impl == "auto":
    return "shifted" if jax.default_backend() == "cpu" else "grouped"
  return impl


def depthwise_shifted(x: jax.Array, kernel: jax.Array, strides: tuple[int, int],
                      pads: Sequence[tuple[int, int]]) -> jax.Array:
  """Depthwise convolution as a sum of kh*kw strided slices times per-channel weights.

  Args:
    x: [B, H, W, C] input.
    kernel: [kh, kw, 1, C] weights.
    strides: (sh, sw).
    pads: ((top, bottom), (left, right)) zero padding.

  Returns:
    [B, Ho, Wo, C], equal to the grouped convolution.
  """
  kh, kw = kernel.shape[:2]
  sh, sw = strides
  x = jnp.pad(x, ((0, 0), tuple(pads[0]), tuple(pads[1]), (0, 0)))
  b, hp, wp, c = x.shape
  ho, wo = (hp - kh) // sh + 1, (wp - kw) // sw + 1
  out = None
  for i in range(kh):
    for j in range(kw):
      patch = lax.slice(x, (0, i, j, 0), (b, i + sh * (ho - 1) + 1, j + sw * (wo - 1) + 1, c), (1, sh, sw, 1))
      term = patch * kernel[i, j, 0]
      out = term if out is None else out + term
  return out


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
    y = fn(x, kernel, tuple(self.strides), pads)
    return y if bias is None else y + bias
