"""Learn to Pay Attention (Jetley et al., ICLR 2018, arXiv:1804.02391)."""

from typing import Any, ClassVar, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from attn_har.attention import normalize
from attn_har.attention.variant import check_variant
from attn_har.layers import keras

COMPATIBILITIES = ("weighted", "dot")


class L2PAEstimator(nn.Module):
  """One attention estimator: compatibility of local features l with the global vector g, spatial softmax.

  variant='paper': l is projected to g's width D by a bias-free 1x1 conv (l' = W l); c_i = <u, l'_i + g>
  ('weighted') or <l'_i, g> ('dot'); g_a = sum_i a_i l'_i, [B, D].
  variant='thesis': g is mapped to l's width C by a Dense with bias (g' = W g + b); c_i = <u, l_i + g'> or
  <l_i, g'>; g_a = sum_i a_i l_i, [B, C] (the thesis head ignores g_a and classifies the maps).
  u is a vector initialised N(0, 0.05^2) as in the thesis. Sows a as 'attention' [B, H, W] float32.

  Attributes:
    compatibility: 'weighted' or 'dot'.
    variant: 'paper' or 'thesis'.
    dtype: compute dtype.
    param_dtype: parameter dtype.
  """
  compatibility: str = "weighted"
  variant: str = "paper"
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, l: jax.Array, g: jax.Array) -> tuple[jax.Array, jax.Array]:
    """l: [B, H, W, C] local features; g: [B, D] global vector. Returns (a [B, H, W] float32, g_a)."""
    if self.compatibility not in COMPATIBILITIES:
      raise ValueError(f"L2PA: unknown compatibility {self.compatibility!r}; valid choices: {COMPATIBILITIES}")
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    if self.variant == "thesis":
      g = keras.Dense(l.shape[-1], name="g_proj", **kw)(g)
    else:
      l = keras.Conv(g.shape[-1], (1, 1), use_bias=False, name="l_proj", **kw)(l)
    g = g[:, None, None, :].astype(l.dtype)
    if self.compatibility == "weighted":
      u = self.param("u", nn.initializers.normal(0.05), (l.shape[-1],), self.param_dtype)
      c = jnp.einsum("bhwc,c->bhw", l + g, u.astype(l.dtype))
    else:
      c = jnp.einsum("bhwc,bhwc->bhw", l, jnp.broadcast_to(g, l.shape))
    a = normalize.softmax(c)
    self.sow("intermediates", "attention", a)
    g_a = jnp.einsum("bhw,bhwc->bc", a.astype(l.dtype), l)
    return a, g_a


class LearnToPayAttention(nn.Module):
  """Multi-scale L2PA classifier head over local feature maps and the backbone's last feature map.

  g = GAP(out). variant='paper': logits = Dense_K(concat_s g_a^s) (Jetley et al.'s concatenation fusion).
  variant='thesis': features = concat_s flatten(a^s) (784 + 196 + 49 = 1029 at 224 input), logits =
  Dense_K(Dropout_0.5(ReLU(Dense_1024(features)))). The thesis head's width therefore depends on the input
  resolution. Dropout needs the 'dropout' rng when train=True.

  Attributes:
    num_classes: K.
    num_scales: number of local feature maps (attachment points).
    variant: 'paper' or 'thesis'.
    compatibility: 'weighted' or 'dot'.
    hidden: width of the thesis head's hidden Dense.
    dropout_rate: dropout of the thesis head.
    dtype: compute dtype.
    param_dtype: parameter dtype.
  """
  placement: ClassVar[str] = "head"
  num_classes: int = 1000
  num_scales: int = 3
  variant: str = "paper"
  compatibility: str = "weighted"
  hidden: int = 1024
  dropout_rate: float = 0.5
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  def setup(self):
    check_variant("L2PA", self.variant)
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    self.estimators = [L2PAEstimator(self.compatibility, self.variant, **kw) for _ in range(self.num_scales)]
    if self.variant == "thesis":
      self.fc = keras.Dense(self.hidden, **kw)
      self.dropout = nn.Dropout(self.dropout_rate)
    self.predictions = keras.Dense(self.num_classes, **kw)

  def features(self, taps: Sequence[jax.Array], out: jax.Array, train: bool = False) -> jax.Array:
    """taps: local maps [B, H_s, W_s, C_s]; out: [B, h, w, D]. Returns the classifier input [B, F]."""
    if len(taps) != len(self.estimators):
      raise ValueError(f"L2PA expects {len(self.estimators)} local feature maps, got {len(taps)}")
    g = jnp.mean(out, axis=(1, 2))
    parts = []
    for est, l in zip(self.estimators, taps):
      a, g_a = est(l, g)
      parts.append(a.reshape(a.shape[0], -1).astype(self.dtype) if self.variant == "thesis" else g_a)
    return jnp.concatenate(parts, axis=-1)

  def __call__(self, taps: Sequence[jax.Array], out: jax.Array, train: bool = False) -> dict[str, jax.Array]:
    """Returns {'logits': [B, K] float32, 'features': the classifier input [B, F]}."""
    features = self.features(taps, out, train)
    f = features
    if self.variant == "thesis":
      f = self.dropout(nn.relu(self.fc(f)), deterministic=not train)
    return {"logits": self.predictions(f).astype(jnp.float32), "features": features}
