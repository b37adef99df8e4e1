"""1x1 convolutions as matrix products, which XLA:CPU trains 1.7-4.7x faster than the same convolution.

A 1x1 convolution with stride 1 and no padding or dilation is a product over the channel axis:
y[b, h, w, o] = sum_i x[b, h, w, i] * kernel[0, 0, i, o]. As `lax.conv_general_dilated`, XLA:CPU computes its kernel
gradient as a convolution whose window is the whole image, after transposing both operands; as a product
(`channel_product`, with its kernel gradient written out) both gradients are plain matrix products. Forward +
backward on a 2-core CPU (jax 0.10.2, `benchmarks/bench_layer_grads.py`): ResNet50V2's [8, 28, 28, 512] -> 128
channels 26.0 ms as a convolution, 10.6 ms as a product; MobileNetV2's [16, 56, 56, 144] -> 24 channels 33.4 and
10.9 ms. Both forms compute the same sums in another order (relative difference about 1e-6).

`conv_general_dilated` is a drop-in for `lax.conv_general_dilated` (`nn.Conv(..., conv_general_dilated=...)`): it
takes the product form where it applies and calls the convolution otherwise, so the parameter tree (`kernel` of
shape [1, 1, C_in, C_out]) and the FLOP count (2 * outputs * C_in either way) do not change. The backbones take
`pointwise='auto'` (products on the CPU backend, convolutions elsewhere, where the products are unmeasured),
'dot' or 'conv'; the attention modules' own 1x1 convolutions stay convolutions.
"""

import functools
from typing import Any, Callable, Sequence

import jax
from jax import lax

from attn_har.layers.windows import resolve_by_backend

MODES = ("auto", "dot", "conv")


def resolve(mode: str) -> str:
  """'auto' -> 'dot' on the CPU backend, 'conv' elsewhere (unmeasured there); other names are checked and returned."""
  return resolve_by_backend(mode, MODES, "dot", "conv", "pointwise mode")


def _is_pointwise(rhs_shape: Sequence[int], window_strides, padding, lhs_dilation, rhs_dilation, dimension_numbers,
                  feature_group_count: int) -> bool:
  """True for an NHWC x HWIO convolution with a 1x1 kernel, unit strides and dilations, no padding and one group."""
  ones = lambda v: v is None or all(int(s) == 1 for s in v)
  no_pad = padding in ("VALID", "SAME") or all(tuple(p) == (0, 0) for p in padding)
  spec = getattr(dimension_numbers, "lhs_spec", None)
  nhwc = spec is not None and tuple(spec) == (0, 3, 1, 2) and tuple(dimension_numbers.rhs_spec) == (3, 2, 0, 1) \
      and tuple(dimension_numbers.out_spec) == (0, 3, 1, 2)
  return (len(rhs_shape) == 4 and tuple(rhs_shape[:2]) == (1, 1) and nhwc and feature_group_count == 1
          and ones(window_strides) and ones(lhs_dilation) and ones(rhs_dilation) and no_pad)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def channel_product(x: jax.Array, w: jax.Array, precision: Any = None, preferred_element_type: Any = None) -> jax.Array:
  """x [..., C_in] @ w [C_in, C_out] -> [..., C_out].

  The kernel gradient is written out: autodiff transposes the product into dot_general(g, x) followed by a
  transpose, which XLA:CPU runs 2-6x slower than dot_general(x, g) over the leading axes (MobileNetV2's
  [32, 24, 24, 32] -> 192 channels: 13.6 ms against 2.5 ms).
  """
  return lax.dot_general(x, w, (((x.ndim - 1,), (0,)), ((), ())), precision=precision,
                         preferred_element_type=preferred_element_type)


def _channel_product_fwd(x, w, precision, preferred_element_type):
  return channel_product(x, w, precision, preferred_element_type), (x, w)


def _channel_product_bwd(precision, preferred_element_type, residuals, g):
  x, w = residuals
  dx = lax.dot_general(g, w, (((g.ndim - 1,), (1,)), ((), ())), precision=precision)
  leading = tuple(range(x.ndim - 1))
  dw = lax.dot_general(x, g, ((leading, leading), ((), ())), precision=precision)
  return dx.astype(x.dtype), dw.astype(w.dtype)


channel_product.defvjp(_channel_product_fwd, _channel_product_bwd)


def conv_general_dilated(lhs: jax.Array, rhs: jax.Array, window_strides, padding, lhs_dilation=None,
                         rhs_dilation=None, dimension_numbers=None, feature_group_count: int = 1,
                         batch_group_count: int = 1, precision: Any = None,
                         preferred_element_type: Any = None) -> jax.Array:
  """`lax.conv_general_dilated`; a 1x1 NHWC convolution ([B, H, W, C_in] x [1, 1, C_in, C_out]) as
  `channel_product`."""
  dn = lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
  if batch_group_count == 1 and _is_pointwise(rhs.shape, window_strides, padding, lhs_dilation, rhs_dilation, dn,
                                              feature_group_count):
    return channel_product(lhs, rhs[0, 0], precision, preferred_element_type)
  return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation, dimension_numbers,
                                  feature_group_count, batch_group_count, precision, preferred_element_type)


def conv_fn(mode: str) -> Callable[..., jax.Array]:
  """The convolution function for `nn.Conv(conv_general_dilated=...)` of pointwise mode `mode` (see `resolve`)."""
  return conv_general_dilated if resolve(mode) == "dot" else lax.conv_general_dilated
