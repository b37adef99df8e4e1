"""CBAM: Convolutional Block Attention Module (Woo et al., ECCV 2018, arXiv:1807.06521)."""

from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from attn_har.attention import normalize
from attn_har.attention.variant import check_variant
from attn_har.layers import keras
from attn_har.layers.reduce_max import reduce_max


def hidden_width(channels: int, reduction_ratio: float) -> int:
  """Width of the channel MLP: floor(C / r) as Keras truncates it (C = 24, r = 16 -> 1), at least 1."""
  return max(1, int(channels / reduction_ratio))


class CBAM(nn.Module):
  """Channel then spatial attention on a feature map.

  M_c = sigmoid(MLP(GAP F) + MLP(GMP F)) with a shared MLP C -> floor(C/r) (ReLU) -> C (both with bias);
  F' = M_c * F; M_s = sigmoid(conv_kxk([mean_c F'; max_c F'])); F'' = M_s * F'.

  variant='paper' returns F'' (the refined residual branch; the backbone adds the block's shortcut, so CBAM
  sits inside every residual block as in Woo et al.; the spatial conv has no bias and is followed by
  BatchNorm as in their code). variant='thesis' returns F + F'' (the thesis's extra identity skip; the spatial
  conv has a bias and no BatchNorm; the backbone places 3 modules after stages).

  Both max pools use `reduce_max`, whose gradient does not hinge on two copies of x comparing equal.

  Sows the spatial map M_s as 'attention' [B, H, W] and M_c as 'channel_attention' [B, C], both float32.

  Attributes:
    reduction_ratio: r; hidden width floor(C / r), at least 1.
    kernel_size: k of the spatial convolution.
    variant: 'paper' or 'thesis'.
    bn_axis_name: mapped axis (e.g. `nn.vmap`'s time axis) whose elements share BatchNorm batch statistics.
    dtype: compute dtype.
    param_dtype: parameter dtype.
  """
  placement: ClassVar[str] = "trunk"
  inside_block_variants: ClassVar[tuple[str, ...]] = ("paper",)
  reduction_ratio: float = 16.0
  kernel_size: int = 7
  variant: str = "paper"
  bn_axis_name: str | None = None
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    """[B, H, W, C] -> [B, H, W, C]."""
    check_variant("CBAM", self.variant)
    c = x.shape[-1]
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    hidden = keras.Dense(hidden_width(c, self.reduction_ratio), name="mlp_hidden", **kw)
    out = keras.Dense(c, name="mlp_out", **kw)
    mlp = lambda v: out(nn.relu(hidden(v)))
    logits = mlp(jnp.mean(x, axis=(1, 2))) + mlp(reduce_max(x, (1, 2)))
    m_c = normalize.sigmoid(logits)
    self.sow("intermediates", "channel_attention", m_c)
    refined = x * m_c[:, None, None, :].astype(x.dtype)

    pooled = jnp.concatenate(
        [jnp.mean(refined, axis=-1, keepdims=True), reduce_max(refined, -1, keepdims=True)], axis=-1)
    k = (self.kernel_size, self.kernel_size)
    if self.variant == "thesis":
      s = keras.Conv(1, k, padding="SAME", use_bias=True, name="spatial_conv", **kw)(pooled)
    else:
      s = keras.Conv(1, k, padding="SAME", use_bias=False, name="spatial_conv", **kw)(pooled)
      s = keras.batch_norm(train, keras.RESNET_BN, name="spatial_bn", axis_name=self.bn_axis_name, **kw)(s)
    m_s = normalize.sigmoid(s[..., 0])
    self.sow("intermediates", "attention", m_s)
    refined = refined * m_s[..., None].astype(x.dtype)
    return x + refined if self.variant == "thesis" else refined
