"""MobileNetV2 (Sandler et al., CVPR 2018, arXiv:1801.04381), layer for layer as Keras's `MobileNetV2`."""

import functools
from typing import Any, Callable, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from attn_har.backbones import attach
from attn_har.layers import keras
from attn_har.layers import pointwise
from attn_har.layers.depthwise import DepthwiseConv

# (filters, stride, expansion) of blocks 0..16, as Keras names them block_0 ("expanded_conv") .. block_16.
BLOCKS = ((16, 1, 1), (24, 2, 6), (24, 1, 6), (32, 2, 6), (32, 1, 6), (32, 1, 6), (64, 2, 6), (64, 1, 6),
          (64, 1, 6), (64, 1, 6), (96, 1, 6), (96, 1, 6), (96, 1, 6), (160, 2, 6), (160, 1, 6), (160, 1, 6),
          (320, 1, 6))
BLOCK_NAMES = tuple(f"block_{i}" for i in range(len(BLOCKS)))

# Thesis attachment points (docs/thesis_code.md §1).
HEAD_POSITIONS = ("block_5", "block_12", "block_15")      # L2PA / gates: 28x28x32, 14x14x96, 7x7x160
TRUNK_POSITIONS = ("block_2", "block_5", "block_12")      # trunk modules after: 56x56x24, 28x28x32, 14x14x96


def make_divisible(v: float, divisor: int = 8) -> int:
  """Keras's `_make_divisible`: round to the nearest multiple of `divisor` (at least `divisor`), adding `divisor`
  when that falls below 90% of v."""
  new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
  return new_v + divisor if new_v < 0.9 * v else new_v


def block_widths(alpha: float) -> tuple[int, tuple[int, ...], int]:
  """(Conv1 width, output widths of block_0 .. block_16, Conv_1 width) at width multiplier `alpha`, as Keras's.

  Keras: Conv1 `_make_divisible(32 * alpha, 8)`; block outputs `_make_divisible(int(filters * alpha), 8)`, the
  product truncated first (alpha 0.56, block_6: int(64 * 0.56) = 35 -> 32 channels, where 35.84 -> 40);
  Conv_1 `_make_divisible(1280 * alpha, 8)` when alpha > 1, else 1280. Each expand conv has expansion x the
  block's input width.
  """
  first = make_divisible(32 * alpha)
  blocks = tuple(make_divisible(int(filters * alpha)) for filters, _, _ in BLOCKS)
  last = make_divisible(1280 * alpha) if alpha > 1.0 else 1280
  return first, blocks, last


def correct_pad(size: tuple[int, int], kernel: int) -> tuple[tuple[int, int], tuple[int, int]]:
  """Keras's `correct_pad`: zero padding before a stride-2 'valid' conv (equals TF 'SAME' for k = 3)."""
  pads = []
  for n in size:
    adjust, half = 1 - n % 2, kernel // 2
    pads.append((half - adjust, half))
  return tuple(pads)


def relu6(x: jax.Array) -> jax.Array:
  """min(max(x, 0), 6) with TF's gradient, 0 at both kinks (`jnp.clip` gives 0.5 there), written as
  `jax.nn.relu6` so that guided backpropagation (`attn_har.explain.guided_backprop`) recognises its ReLU."""
  return jax.nn.relu6(x)


class InvertedResidual(nn.Module):
  """Inverted residual block: [expand 1x1 -> BN -> ReLU6] -> depthwise 3x3 -> BN -> ReLU6 -> project 1x1 -> BN.

  The identity add is used when stride is 1 and the width is unchanged.

  Attributes:
    filters: output channels (already width-adjusted).
    stride: 1 or 2.
    expansion: expansion factor (1 skips the expand conv, as Keras's block 0).
    attention: optional factory `attention(name=...)` of a module applied to the projected branch before the add.
    depthwise_impl: 'auto', 'shifted' or 'grouped' (see `attn_har.layers.depthwise`).
    pointwise: 'auto', 'dot' or 'conv': how the 1x1 convolutions run (see `attn_har.layers.pointwise`).
    bn_axis_name: mapped axis (e.g. `nn.vmap`'s time axis) whose elements share BatchNorm batch statistics.
    dtype: compute dtype.
    param_dtype: parameter dtype.
  """
  filters: int
  stride: int = 1
  expansion: int = 6
  attention: Callable[..., nn.Module] | None = None
  depthwise_impl: str = "auto"
  pointwise: str = "auto"
  bn_axis_name: str | None = None
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    """[B, H, W, C] -> [B, H / stride, W / stride, filters]."""
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    conv_kw = dict(conv_general_dilated=pointwise.conv_fn(self.pointwise), **kw)
    bn = functools.partial(keras.batch_norm, train, keras.MOBILENET_BN, axis_name=self.bn_axis_name, **kw)
    in_channels = x.shape[-1]
    y = x
    if self.expansion != 1:
      y = keras.Conv(self.expansion * in_channels, (1, 1), use_bias=False, name="expand", **conv_kw)(y)
      y = relu6(bn(name="expand_BN")(y))
    pads = correct_pad(y.shape[1:3], 3) if self.stride == 2 else ((1, 1), (1, 1))
    y = DepthwiseConv((3, 3), (self.stride, self.stride), pads, impl=self.depthwise_impl, name="depthwise",
                      **kw)(y)
    y = relu6(bn(name="depthwise_BN")(y))
    y = keras.Conv(self.filters, (1, 1), use_bias=False, name="project", **conv_kw)(y)
    y = bn(name="project_BN")(y)
    if self.attention is not None:
      y = self.attention(name="attention")(y, train)
    if self.stride == 1 and in_channels == self.filters:
      y = x + y
    return y


class MobileNetV2(nn.Module):
  """MobileNetV2 feature extractor (Keras structure, BN eps 1e-3 / momentum 0.999, glorot-uniform kernels).

  Names follow Keras: Conv1, bn_Conv1, block_0 .. block_16 (expand, depthwise, project + BNs), Conv_1,
  Conv_1_bn. Takes any number of input channels. Attention (`attn_har.backbones.attach.Attachment`): 'head'
  modules get taps at HEAD_POSITIONS; 'after' modules (thesis CBAM, paper residual attention) go after
  TRUNK_POSITIONS or the mechanism's own `family_positions`; 'replace' modules (thesis residual attention)
  replace those blocks; 'inside' modules (paper CBAM) sit in every block. A trunk module's `unit` is a stride-1
  inverted residual block of the same width.

  Widths per alpha are Keras's (`block_widths`), so the parameter count equals Keras's `count_params()` for every
  alpha (e.g. 1000 classes: 1,691,208 at 0.35, 3,538,984 at 1.0) and Keras's ImageNet files load
  (`attn_har.backbones.keras_weights`).

  Attributes:
    alpha: width multiplier.
    attention: the attention mechanism (`Attachment`) or None.
    attention_positions: block names ('block_0' .. 'block_16'); None for the defaults.
    depthwise_impl: 'auto' (shifted multiply-adds on CPU, grouped conv elsewhere), 'shifted' or 'grouped'.
    pointwise: 'auto' (1x1 convolutions as matrix products on CPU, convolutions elsewhere), 'dot' or 'conv'.
    bn_axis_name: mapped axis (e.g. `nn.vmap`'s time axis) whose elements share BatchNorm batch statistics.
    dtype: compute dtype.
    param_dtype: parameter dtype.
  """
  family: ClassVar[str] = "mobilenet"
  alpha: float = 1.0
  attention: attach.Attachment | None = None
  attention_positions: tuple[str, ...] | None = None
  depthwise_impl: str = "auto"
  pointwise: str = "auto"
  bn_axis_name: str | None = None
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  def positions(self) -> tuple[str, ...]:
    """The block names where attention attaches (empty without attention)."""
    if self.attention is None:
      return ()
    if self.attention_positions is not None:
      return attach.check_positions(self.attention_positions, BLOCK_NAMES, "mobilenet_v2")
    where = self.attention.where(self.family)
    if where == "head":
      return HEAD_POSITIONS
    if where == "inside":
      return BLOCK_NAMES
    return self.attention.default_positions(self.family) or TRUNK_POSITIONS

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> tuple[jax.Array, dict[str, jax.Array]]:
    """x: [B, H, W, C_in]. Returns (out_relu [B, H/32, W/32, 1280], taps {block name: [B, H_s, W_s, C_s]})."""
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    bn = functools.partial(keras.batch_norm, train, keras.MOBILENET_BN, axis_name=self.bn_axis_name, **kw)
    blk = dict(depthwise_impl=self.depthwise_impl, pointwise=self.pointwise, bn_axis_name=self.bn_axis_name, **kw)
    where = None if self.attention is None else self.attention.where(self.family)
    positions = self.positions()

    first, widths, last = block_widths(self.alpha)
    x = keras.Conv(first, (3, 3), (2, 2), correct_pad(x.shape[1:3], 3), use_bias=False, name="Conv1", **kw)(x)
    x = relu6(bn(name="bn_Conv1")(x))
    taps = {}
    for name, filters, (_, stride, expansion) in zip(BLOCK_NAMES, widths, BLOCKS):
      block = functools.partial(InvertedResidual, filters, stride, expansion, **blk)
      here = name in positions
      level = positions.index(name) if here else -1
      if here and where == "replace":
        if stride != 1 or x.shape[-1] != filters:
          raise ValueError(f"mobilenet_v2: {self.attention.label} replaces a stride-1 block of unchanged width; "
                           f"{name} has stride {stride}, {x.shape[-1]} -> {filters} channels")
        unit = functools.partial(InvertedResidual, filters, 1, 6, **blk)
        x = self._trunk(level, len(positions), unit)(name=f"{name}_{self.attention.label}")(x, train)
        continue
      inner = self._trunk(level, len(positions), None) if here and where == "inside" else None
      x = block(attention=inner, name=name)(x, train)
      if here and where == "after":
        unit = functools.partial(InvertedResidual, filters, 1, 6, **blk)
        x = self._trunk(level, len(positions), unit)(name=f"{name}_{self.attention.label}")(x, train)
      if here and where == "head":
        taps[name] = x

    conv_kw = dict(conv_general_dilated=pointwise.conv_fn(self.pointwise), **kw)
    x = keras.Conv(last, (1, 1), use_bias=False, name="Conv_1", **conv_kw)(x)
    x = relu6(bn(name="Conv_1_bn")(x))
    return x, taps

  def _trunk(self, level: int, num_levels: int, unit) -> Callable[..., nn.Module]:
    return self.attention.trunk(self.family, level, num_levels, unit=unit, bn_axis_name=self.bn_axis_name,
                                dtype=self.dtype, param_dtype=self.param_dtype)
