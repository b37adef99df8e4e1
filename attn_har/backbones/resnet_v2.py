"""Pre-activation ResNet V2 (He et al., ECCV 2016, arXiv:1603.05027); depth 50 exactly as Keras's `ResNet50V2`.

Keras layout: conv1 7x7/2 with bias, zero-pad + 3x3/2 max-pool, stacks conv2..conv5 whose *last* block carries
stride 2 (conv2..conv4), post BN + ReLU. Bottleneck blocks (depth 50, 101) are Keras's `block2`; depths 18 and 34
use pre-activation basic blocks with the same stack layout (not in Keras; extra variants).
"""

import functools
from typing import Any, Callable, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from attn_har.backbones import attach
from attn_har.layers import keras, pointwise
from attn_har.layers.max_pool import max_pool

# depth -> (block kind, blocks per stack conv2..conv5)
DEPTHS = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)), 50: ("bottleneck", (3, 4, 6, 3)),
          101: ("bottleneck", (3, 4, 23, 3))}
STACK_FILTERS = (64, 128, 256, 512)
PAD1 = ((1, 1), (1, 1))


def _subsample(x: jax.Array, stride: int) -> jax.Array:
  """Keras's `MaxPooling2D(1, strides=stride)` shortcut."""
  return x[:, ::stride, ::stride, :] if stride > 1 else x


class PreActBottleneck(nn.Module):
  """Keras `block2`: BN-ReLU preact; 1x1 (f) -> 3x3/stride (f) -> 1x1 (4f, bias); shortcut 1x1 conv or identity.

  Attributes:
    filters: f (the block outputs 4f channels).
    stride: stride of the 3x3 conv (and of the identity shortcut's subsampling).
    conv_shortcut: 1x1 conv (with bias, on the pre-activation) instead of the identity shortcut.
    attention: optional factory `attention(name=...)` of a module applied to the residual branch before the add.
    bn_axis_name: mapped axis (e.g. `nn.vmap`'s time axis) whose elements share BatchNorm batch statistics.
    dtype: compute dtype.
    param_dtype: parameter dtype.
  """
  filters: int
  stride: int = 1
  conv_shortcut: bool = False
  attention: Callable[..., nn.Module] | None = None
  pointwise: str = "auto"
  bn_axis_name: str | None = None
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    """[B, H, W, C] -> [B, H / stride, W / stride, 4f]."""
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    conv_kw = dict(conv_general_dilated=pointwise.conv_fn(self.pointwise), **kw)
    bn = functools.partial(keras.batch_norm, train, keras.RESNET_BN, axis_name=self.bn_axis_name, **kw)
    f, s = self.filters, self.stride
    preact = nn.relu(bn(name="preact_bn")(x))
    if self.conv_shortcut:
      shortcut = keras.Conv(4 * f, (1, 1), (s, s), name="0_conv", **conv_kw)(preact)
    else:
      shortcut = _subsample(x, s)
    y = keras.Conv(f, (1, 1), use_bias=False, name="1_conv", **conv_kw)(preact)
    y = nn.relu(bn(name="1_bn")(y))
    y = keras.Conv(f, (3, 3), (s, s), PAD1, use_bias=False, name="2_conv", **kw)(y)
    y = nn.relu(bn(name="2_bn")(y))
    y = keras.Conv(4 * f, (1, 1), name="3_conv", **conv_kw)(y)
    if self.attention is not None:
      y = self.attention(name="attention")(y, train)
    return shortcut + y


class PreActBasic(nn.Module):
  """Pre-activation basic block: BN-ReLU preact; 3x3/stride (f) -> BN-ReLU -> 3x3 (f, bias); shortcut as above.

  Attributes: as `PreActBottleneck`, except that the block outputs f channels.
  """
  filters: int
  stride: int = 1
  conv_shortcut: bool = False
  attention: Callable[..., nn.Module] | None = None
  pointwise: str = "auto"
  bn_axis_name: str | None = None
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    """[B, H, W, C] -> [B, H / stride, W / stride, f]."""
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    conv_kw = dict(conv_general_dilated=pointwise.conv_fn(self.pointwise), **kw)
    bn = functools.partial(keras.batch_norm, train, keras.RESNET_BN, axis_name=self.bn_axis_name, **kw)
    f, s = self.filters, self.stride
    preact = nn.relu(bn(name="preact_bn")(x))
    if self.conv_shortcut:
      shortcut = keras.Conv(f, (1, 1), (s, s), name="0_conv", **conv_kw)(preact)
    else:
      shortcut = _subsample(x, s)
    y = keras.Conv(f, (3, 3), (s, s), PAD1, use_bias=False, name="1_conv", **kw)(preact)
    y = nn.relu(bn(name="1_bn")(y))
    y = keras.Conv(f, (3, 3), (1, 1), PAD1, name="2_conv", **kw)(y)
    if self.attention is not None:
      y = self.attention(name="attention")(y, train)
    return shortcut + y


def block_names(depth: int) -> tuple[str, ...]:
  """Keras block names, e.g. 'conv2_block1' .. 'conv5_block3' for depth 50."""
  return tuple(f"conv{i + 2}_block{j + 1}" for i, n in enumerate(DEPTHS[depth][1]) for j in range(n))


def default_positions(depth: int, where: str | None) -> tuple[str, ...]:
  """Thesis attachment points generalised to any depth (docs/thesis_code.md §1 for depth 50).

  'head': the last block of conv2..conv4 (conv2_block3, conv3_block4, conv4_block6 at depth 50);
  'after' / 'replace': the block before it (conv2_block2, conv3_block3, conv4_block5: before the strided block);
  'inside': every block.
  """
  counts = DEPTHS[depth][1]
  if where is None:
    return ()
  if where == "inside":
    return block_names(depth)
  offset = 0 if where == "head" else 1
  return tuple(f"conv{i + 2}_block{counts[i] - offset}" for i in range(3))


class ResNetV2(nn.Module):
  """Pre-activation ResNet feature extractor (BN eps 1.001e-5 / momentum 0.99, glorot-uniform kernels).

  Takes any number of input channels. Attention (`attn_har.backbones.attach.Attachment`): 'head' modules get
  taps at the last block of conv2..conv4; trunk modules (thesis CBAM, residual attention) are inserted after the
  block before those (or the mechanism's own `family_positions`); paper CBAM goes inside every block. A trunk
  module's `unit` is a stride-1 block of the same kind and width ('replace' is treated as 'after': a ResNet
  block is kept).

  Attributes:
    depth: 18, 34, 50 or 101.
    attention: the attention mechanism (`Attachment`) or None.
    attention_positions: block names (e.g. 'conv3_block4'); None for the defaults.
    pointwise: 'auto' (1x1 convolutions as matrix products on CPU, convolutions elsewhere), 'dot' or 'conv'.
    bn_axis_name: mapped axis (e.g. `nn.vmap`'s time axis) whose elements share BatchNorm batch statistics.
    dtype: compute dtype.
    param_dtype: parameter dtype.
  """
  family: ClassVar[str] = "resnet"
  depth: int = 50
  attention: attach.Attachment | None = None
  attention_positions: tuple[str, ...] | None = None
  pointwise: str = "auto"
  bn_axis_name: str | None = None
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  def _where(self) -> str | None:
    if self.attention is None:
      return None
    where = self.attention.where(self.family)
    return "after" if where == "replace" else where

  def positions(self) -> tuple[str, ...]:
    """The block names where attention attaches (empty without attention)."""
    if self.depth not in DEPTHS:
      raise ValueError(f"resnet_v2: unsupported depth {self.depth}; valid choices: {sorted(DEPTHS)}")
    if self.attention is None:
      return ()
    if self.attention_positions is not None:
      return attach.check_positions(self.attention_positions, block_names(self.depth), f"resnet{self.depth}_v2")
    return self.attention.default_positions(self.family) or default_positions(self.depth, self._where())

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> tuple[jax.Array, dict[str, jax.Array]]:
    """x: [B, H, W, C_in]. Returns (post_relu [B, H/32, W/32, D], taps {block name: [B, H_s, W_s, C_s]})."""
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    blk = dict(pointwise=self.pointwise, bn_axis_name=self.bn_axis_name, **kw)
    positions = self.positions()
    where = self._where()
    kind, counts = DEPTHS[self.depth]
    block_cls, expand = (PreActBottleneck, 4) if kind == "bottleneck" else (PreActBasic, 1)

    x = keras.Conv(64, (7, 7), (2, 2), ((3, 3), (3, 3)), name="conv1_conv", **kw)(x)
    x = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))  # Keras pads with zeros, then max-pools 'valid'
    x = max_pool(x, (3, 3), (2, 2))  # nn.max_pool's values; its gradient, computed faster on CPU
    taps = {}
    for i, (filters, n) in enumerate(zip(STACK_FILTERS, counts)):
      for j in range(n):
        name = f"conv{i + 2}_block{j + 1}"
        stride = 2 if (j == n - 1 and i < 3) else 1
        conv_shortcut = j == 0 and (kind == "bottleneck" or x.shape[-1] != filters)
        here = name in positions
        level = positions.index(name) if here else -1
        inner = self._trunk(level, len(positions), None) if here and where == "inside" else None
        x = block_cls(filters, stride, conv_shortcut, inner, name=name, **blk)(x, train)
        if here and where == "after":
          unit = functools.partial(block_cls, x.shape[-1] // expand, 1, False, **blk)
          x = self._trunk(level, len(positions), unit)(name=f"{name}_{self.attention.label}")(x, train)
        if here and where == "head":
          taps[name] = x
    x = nn.relu(keras.batch_norm(train, keras.RESNET_BN, name="post_bn", axis_name=self.bn_axis_name, **kw)(x))
    return x, taps

  def _trunk(self, level: int, num_levels: int, unit) -> Callable[..., nn.Module]:
    return self.attention.trunk(self.family, level, num_levels, unit=unit, bn_axis_name=self.bn_axis_name,
                                dtype=self.dtype, param_dtype=self.param_dtype)
