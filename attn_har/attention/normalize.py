"""Attention normalisations. Every function computes in float32 and returns float32.

`axes` are the axes normalised jointly (the spatial axes H, W for a [B, H, W] or [B, H, W, F] tensor).
"""

from typing import Callable

import jax
import jax.numpy as jnp

Axes = tuple[int, ...]
SPATIAL = (1, 2)


def softmax(c: jax.Array, axes: Axes = SPATIAL) -> jax.Array:
  """Softmax over `axes` jointly (the spatial softmax of Jetley et al., eq. 2.9): sums to 1 over `axes`."""
  return jax.nn.softmax(c.astype(jnp.float32), axis=axes)


def sigmoid(c: jax.Array, axes: Axes = SPATIAL) -> jax.Array:
  """Elementwise logistic sigmoid, in [0, 1] (`axes` unused; same signature as the others)."""
  del axes
  return jax.nn.sigmoid(c.astype(jnp.float32))


def pseudo_softmax(c: jax.Array, axes: Axes = SPATIAL, eps: float = 1e-6) -> jax.Array:
  """Schlemper et al.'s normalisation (thesis eq. 2.12), (c - min c) / sum(c - min c) over `axes`, made safe:
  (c - min c + eps) / sum(c - min c + eps).

  Non-negative and sums to 1 over `axes`; a constant map (e.g. a 1x1 map, or all-zero ReLU inputs) becomes
  uniform instead of 0/0. The thesis code divided by sum(c) instead, which is neither normalised nor
  non-negative; that bug is deliberately not reproduced.
  """
  c = c.astype(jnp.float32)
  shifted = c - jnp.min(c, axis=axes, keepdims=True) + eps
  return shifted / jnp.sum(shifted, axis=axes, keepdims=True)


def l2_channel(c: jax.Array, axes: Axes = (-1,), eps: float = 1e-6) -> jax.Array:
  """Wang et al.'s channel attention: each position's channel vector divided by its L2 norm (+eps)."""
  c = c.astype(jnp.float32)
  return c / (jnp.sqrt(jnp.sum(jnp.square(c), axis=axes, keepdims=True)) + eps)


def spatial_zscore_sigmoid(c: jax.Array, axes: Axes = SPATIAL, eps: float = 1e-6) -> jax.Array:
  """Wang et al.'s spatial attention: per-channel z-score over the spatial `axes`, then sigmoid; in [0, 1]."""
  c = c.astype(jnp.float32)
  mean = jnp.mean(c, axis=axes, keepdims=True)
  std = jnp.std(c, axis=axes, keepdims=True)
  return jax.nn.sigmoid((c - mean) / (std + eps))


NORMALIZATIONS: dict[str, Callable[..., jax.Array]] = {
    "softmax": softmax,
    "sigmoid": sigmoid,
    "pseudo_softmax": pseudo_softmax,
    "l2_channel": l2_channel,
    "spatial_zscore_sigmoid": spatial_zscore_sigmoid,
}
