"""Residual attention module (Wang et al., CVPR 2017, arXiv:1704.06904)."""

from typing import Any, Callable, ClassVar, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

from attn_har.attention import normalize
from attn_har.attention.variant import check_variant
from attn_har.layers import keras

# Wang et al.'s three attention functions, all computed in float32.
ATTENTION_FUNCTIONS = {
    "mixed": normalize.sigmoid,
    "channel": normalize.l2_channel,
    "spatial": normalize.spatial_zscore_sigmoid,
}


def _upsample_to(x: jax.Array, shape: tuple[int, ...]) -> jax.Array:
  """Bilinear resize of [B, h, w, C] to the spatial size of `shape` (x2 for the even sizes of the thesis)."""
  return jax.image.resize(x, (x.shape[0], shape[1], shape[2], x.shape[3]), "bilinear").astype(x.dtype)


class ResidualAttention(nn.Module):
  """Trunk and bottom-up/top-down mask branch, combined by attention residual learning: (1 + M) * T.

  out = post(  (1 + M(x')) * T(x')  ),  x' = pre(x), with p pre/post units, t trunk units and a mask branch of
  max-pool / r units / `shortcuts` nested down-up levels / r units / upsample / 1x1 head / attention function.
  Every unit is built by `unit` (a factory of a stride-1, C -> C residual block of the host backbone).

  variant='paper' (Wang et al.): 3x3/2 max-pooling; every nested level has a residual unit on its skip
  connection; the mask head is BN-ReLU-conv1x1-BN-ReLU-conv1x1.
  variant='thesis' (the thesis code): 2x2/2 max-pooling; identity skips; the mask head is two linear 1x1 convs
  with bias (C -> C, C being the trunk width: the "4f" head that reproduces the thesis count); the backbone
  passes p=0 and t=1 (MobileNetV2, replacing a block) or t=2 (ResNet).

  Odd sizes work: pooling pads ('SAME') and upsampling resizes to the skip's exact size.
  Sows the mask M (after the attention function, float32, [B, H, W, C]) as 'attention'.

  Attributes:
    unit: factory `unit(name=...)` of a [B, H, W, C] -> [B, H, W, C] module called as `unit(x, train)`.
    p: pre- and post-processing units.
    t: trunk units.
    r: units between adjacent pooling / upsampling steps of the mask branch.
    shortcuts: nested down-up levels inside the mask branch (Wang et al. use 2, 1, 0 by stage).
    attention_function: 'mixed' (sigmoid), 'channel' (L2 norm over channels) or 'spatial' (per-channel
      z-score over H*W, then sigmoid).
    variant: 'paper' or 'thesis'.
    bn_axis_name: mapped axis (e.g. `nn.vmap`'s time axis) whose elements share BatchNorm batch statistics.
    dtype: compute dtype.
    param_dtype: parameter dtype.
  """
  placement: ClassVar[str] = "trunk"
  # The thesis code's MobileNetV2 model replaces blocks 2, 5 and 9 (56x56x24, 28x28x32, 14x14x64) by t=1, p=0
  # modules; on ResNet it inserts t=2, p=0 modules after the backbone's default trunk positions.
  family_positions: ClassVar[Mapping[str, tuple[str, ...]]] = {"mobilenet": ("block_2", "block_5", "block_9")}
  replaces_block: ClassVar[Mapping[str, tuple[str, ...]]] = {"mobilenet": ("thesis",)}
  family_defaults: ClassVar[Mapping[tuple, Mapping[str, Any]]] = {
      ("mobilenet", "thesis"): {"p": 0, "t": 1}, ("resnet", "thesis"): {"p": 0, "t": 2}}
  unit: Callable[..., nn.Module] | None = None
  p: int = 1
  t: int = 2
  r: int = 1
  shortcuts: int = 1
  attention_function: str = "mixed"
  variant: str = "paper"
  bn_axis_name: str | None = None
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @staticmethod
  def at_level(settings: dict, level: int, num_levels: int) -> dict:
    """Per attachment point: `shortcuts` = num_levels - 1 - level (Wang et al.'s 2, 1, 0) unless set; a tuple
    `shortcuts` is read per level."""
    shortcuts = settings.get("shortcuts", num_levels - 1 - level)
    return {**settings, "shortcuts": shortcuts[level] if isinstance(shortcuts, (tuple, list)) else shortcuts}

  def _units(self, x: jax.Array, n: int, prefix: str, train: bool) -> jax.Array:
    for i in range(n):
      x = self.unit(name=f"{prefix}{i}")(x, train)
    return x

  def _pool(self, x: jax.Array) -> jax.Array:
    if self.variant == "thesis":
      return nn.max_pool(x, (2, 2), (2, 2), padding="SAME")
    return nn.max_pool(x, (3, 3), (2, 2), padding="SAME")

  def _down_up(self, x: jax.Array, level: int, train: bool) -> jax.Array:
    """Nested level `level` (>= 1) of the mask branch at the resolution of x; level 0 is the identity."""
    if level == 0:
      return x
    if self.variant == "thesis":
      skip = x
    else:
      skip = self.unit(name=f"mask_skip{level}")(x, train)
    y = self._units(self._pool(x), self.r, f"mask_down{level}_", train)
    y = self._down_up(y, level - 1, train)
    y = self._units(y, self.r, f"mask_up{level}_", train)
    return _upsample_to(y, x.shape) + skip

  def mask(self, x: jax.Array, train: bool) -> jax.Array:
    """The mask branch M(x) in float32, [B, H, W, C]."""
    c = x.shape[-1]
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    y = self._units(self._pool(x), self.r, "mask_down0_", train)
    y = self._down_up(y, self.shortcuts, train)
    y = self._units(y, self.r, "mask_up0_", train)
    y = _upsample_to(y, x.shape)
    if self.variant == "thesis":
      y = keras.Conv(c, (1, 1), name="mask_conv0", **kw)(y)
      y = keras.Conv(c, (1, 1), name="mask_conv1", **kw)(y)
    else:
      for i in range(2):
        y = nn.relu(keras.batch_norm(train, keras.RESNET_BN, name=f"mask_bn{i}", axis_name=self.bn_axis_name, **kw)(y))
        y = keras.Conv(c, (1, 1), name=f"mask_conv{i}", **kw)(y)
    return ATTENTION_FUNCTIONS[self.attention_function](y)

  def trunk(self, x: jax.Array, train: bool) -> jax.Array:
    """The trunk branch T(x): t units."""
    return self._units(x, self.t, "trunk", train)

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    """[B, H, W, C] -> [B, H, W, C]."""
    if self.unit is None:
      raise ValueError("ResidualAttention needs `unit`, a factory of the host backbone's residual block")
    check_variant("ResidualAttention", self.variant)
    if self.attention_function not in ATTENTION_FUNCTIONS:
      raise ValueError(f"ResidualAttention: unknown attention_function {self.attention_function!r}; valid "
                       f"choices: {', '.join(ATTENTION_FUNCTIONS)}")
    x = self._units(x, self.p, "pre", train)
    m = self.mask(x, train)
    self.sow("intermediates", "attention", m)
    trunk = self.trunk(x, train)
    out = trunk * (1 + m).astype(trunk.dtype)
    return self._units(out, self.p, "post", train)
