"""Attention-gated networks (Schlemper et al., MedIA 2019, arXiv:1808.08114), vector and grid gates."""

from typing import Any, ClassVar, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from attn_har.attention import normalize
from attn_har.attention.variant import check_variant
from attn_har.layers import keras

GATE_NORMALIZATIONS = ("pseudo_softmax", "softmax", "sigmoid")


class GateEstimator(nn.Module):
  """One attention gate: q = psi(ReLU(theta(x) + phi(g))), alpha = mean_channels(normalise_HW(q)).

  theta: 1x1 conv C -> F without bias; phi: Dense D -> F with bias broadcast to every position (vector gate),
  or a 1x1 conv D -> F with bias on the [B, h, w, D] map then nearest-neighbour upsampling to H x W (grid
  gate); psi: 1x1 conv F -> psi_channels with bias. Each psi channel is normalised over H*W (so with softmax or
  pseudo-softmax every channel, and hence their mean, sums to 1; the thesis code normalised jointly over
  H*W*F, giving a sum of 1/F). Sows alpha as 'attention' [B, H, W] float32.

  Attributes:
    inter_channels: F (c_int).
    psi_channels: 1 (Schlemper et al.) or F (thesis code).
    normalization: 'pseudo_softmax', 'softmax' or 'sigmoid'.
    grid: use the grid (spatial) global map instead of the pooled vector.
    dtype: compute dtype.
    param_dtype: parameter dtype.
  """
  inter_channels: int = 32
  psi_channels: int = 1
  normalization: str = "pseudo_softmax"
  grid: bool = False
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, g: jax.Array) -> jax.Array:
    """x: [B, H, W, C]; g: [B, D] (vector) or [B, h, w, D] (grid). Returns alpha [B, H, W] float32."""
    if self.normalization not in GATE_NORMALIZATIONS:
      raise ValueError(f"gate: unknown normalization {self.normalization!r}; valid choices: {GATE_NORMALIZATIONS}")
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    f = self.inter_channels
    theta = keras.Conv(f, (1, 1), use_bias=False, name="theta", **kw)(x)
    if self.grid:
      phi = keras.Conv(f, (1, 1), name="phi", **kw)(g)
      phi = jax.image.resize(phi, (phi.shape[0], *x.shape[1:3], f), "nearest").astype(theta.dtype)
    else:
      phi = keras.Dense(f, name="phi", **kw)(g)[:, None, None, :]
    q = keras.Conv(self.psi_channels, (1, 1), name="psi", **kw)(nn.relu(theta + phi))
    alpha = jnp.mean(normalize.NORMALIZATIONS[self.normalization](q, axes=(1, 2)), axis=-1)
    self.sow("intermediates", "attention", alpha)
    return alpha


class AttentionGate(nn.Module):
  """Multi-scale attention-gated classifier head (vector gates; `GridAttentionGate` for grid gates).

  Local maps x_s are gated by alpha_s from the global features (GAP(out), or out itself for grid gates).
  variant='paper': single-channel psi; g_a^s = sum_i alpha_i x_i; logits = Dense_K(concat(GAP(out), g_a^1..n)).
  variant='thesis': F-channel psi, channel mean; per scale p_s = softmax(Dense_K(ReLU(Dense_hidden(
  GAP(alpha_s * x_s))))), plus p_0 = softmax(Dense_K(GAP(out))); the thesis model outputs the mean of the
  probabilities. Here the output is log(mean_s p_s), so softmax(output) equals the thesis output and the usual
  softmax cross-entropy on it is the thesis loss. `features` returns concat(GAP(out), GAP(alpha_s * x_s)...).
  Thesis widths: F = 32, hidden 1024 (MobileNetV2); F = 64, hidden 2048 (ResNet50V2).

  Attributes:
    num_classes: K.
    num_scales: number of local feature maps (attachment points).
    variant: 'paper' or 'thesis'.
    inter_channels: F (c_int).
    normalization: 'pseudo_softmax' (both variants' default), 'softmax' or 'sigmoid'.
    hidden: width of the thesis per-scale hidden Dense.
    grid: grid gates (phi on the [B, h, w, D] map, nearest-neighbour upsampled).
    dtype: compute dtype.
    param_dtype: parameter dtype.
  """
  placement: ClassVar[str] = "head"
  # The thesis code's ResNet50V2 gates: c_int = 64 and 2048 hidden units (MobileNetV2: the field defaults).
  family_defaults: ClassVar[Mapping[tuple, Mapping[str, Any]]] = {
      ("resnet", None): {"inter_channels": 64, "hidden": 2048}}
  num_classes: int = 1000
  num_scales: int = 3
  variant: str = "paper"
  inter_channels: int = 32
  normalization: str = "pseudo_softmax"
  hidden: int = 1024
  grid: bool = False
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  def setup(self):
    check_variant("gate", self.variant)
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    psi = self.inter_channels if self.variant == "thesis" else 1
    self.gates = [GateEstimator(self.inter_channels, psi, self.normalization, self.grid, **kw)
                  for _ in range(self.num_scales)]
    if self.variant == "thesis":
      self.fcs = [keras.Dense(self.hidden, **kw) for _ in range(self.num_scales)]
      self.heads = [keras.Dense(self.num_classes, **kw) for _ in range(self.num_scales)]
    self.predictions = keras.Dense(self.num_classes, **kw)

  def _parts(self, taps: Sequence[jax.Array], out: jax.Array) -> list[jax.Array]:
    """[GAP(out), pooled gated local features per scale]."""
    if len(taps) != self.num_scales:
      raise ValueError(f"gate expects {self.num_scales} local feature maps, got {len(taps)}")
    pooled = jnp.mean(out, axis=(1, 2))
    g = out if self.grid else pooled
    parts = [pooled]
    for gate, x in zip(self.gates, taps):
      alpha = gate(x, g).astype(x.dtype)[..., None]
      if self.variant == "thesis":
        parts.append(jnp.mean(alpha * x, axis=(1, 2)))
      else:
        parts.append(jnp.sum(alpha * x, axis=(1, 2)))
    return parts

  def features(self, taps: Sequence[jax.Array], out: jax.Array, train: bool = False) -> jax.Array:
    """taps: local maps [B, H_s, W_s, C_s]; out: [B, h, w, D]. Returns [B, D + sum_s C_s]."""
    del train
    return jnp.concatenate(self._parts(taps, out), axis=-1)

  def __call__(self, taps: Sequence[jax.Array], out: jax.Array, train: bool = False) -> dict[str, jax.Array]:
    """taps: local maps [B, H_s, W_s, C_s]; out: [B, h, w, D].

    Returns {'logits': [B, K] float32 (thesis: log of the averaged probabilities), 'features':
    concat(GAP(out), pooled gated local features) [B, D + sum_s C_s]}.
    """
    del train
    parts = self._parts(taps, out)
    features = jnp.concatenate(parts, axis=-1)
    if self.variant == "paper":
      return {"logits": self.predictions(features).astype(jnp.float32), "features": features}
    logits = [self.predictions(parts[0])]
    logits += [head(nn.relu(fc(p))) for fc, head, p in zip(self.fcs, self.heads, parts[1:])]
    log_probs = jnp.stack([jax.nn.log_softmax(z.astype(jnp.float32)) for z in logits])
    return {"logits": jax.scipy.special.logsumexp(log_probs, axis=0) - jnp.log(len(logits)), "features": features}


class GridAttentionGate(AttentionGate):
  """`AttentionGate` with grid gates (Schlemper et al.'s grid attention)."""
  grid: bool = True
