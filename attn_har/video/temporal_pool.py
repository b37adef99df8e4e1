"""Per-stream video classifiers: a per-frame image model lifted over time plus a temporal aggregation.

`FrameAverage` averages per-frame logits over time (the two-stream paper's per-stream score; TSN's average
consensus). `TemporalAttentionPool` learns a softmax weighting of the frames' pooled features (the thesis's outlook,
§7: attention over time as well as space) and sows the weights as 'temporal_attention' [B, T].

Every video classifier here maps a clip [B, T, H, W, C] to logits [B, K] with `train` positional, and has
`features(x, train) -> [B, D]` (pooled clip features, e.g. for the linear-SVM fusion).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from attn_har.video.lifted import lift


class FrameAverage(nn.Module):
  """Clip logits = mean over frames of the frame model's logits.

  Attributes:
    frame: per-frame image classifier (`frame(x [B, H, W, C], train) -> [B, K]`, with a `features` method).
    lift_mode: 'vmap' or 'fold' (`attn_har.video.lifted`).
  """
  frame: nn.Module
  lift_mode: str = "fold"

  def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
    """x [B, T, H, W, C] -> logits [B, K] (float32)."""
    return jnp.mean(lift(self.frame, x, train, "__call__", self.lift_mode).astype(jnp.float32), axis=1)

  def features(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
    """x [B, T, H, W, C] -> mean over frames of the pooled frame features [B, D]."""
    return jnp.mean(lift(self.frame, x, train, "features", self.lift_mode).astype(jnp.float32), axis=1)


class TemporalAttentionPool(nn.Module):
  """Soft attention over frames: a_t = softmax_t(w^T tanh(W h_t + b)), clip feature = sum_t a_t h_t.

  Attributes:
    frame: per-frame image model with `features(x, train) -> [B, D]`; its own classifier head is not used.
    num_classes: K.
    hidden: width of the scoring MLP.
    dropout_rate: dropout on the pooled feature before the classifier.
    lift_mode: 'vmap' or 'fold'.
    dtype: compute dtype of the scoring MLP and classifier (the softmax runs in float32).
  """
  frame: nn.Module
  num_classes: int
  hidden: int = 128
  dropout_rate: float = 0.0
  lift_mode: str = "fold"
  dtype: jnp.dtype = jnp.float32

  def setup(self):
    self.score_hidden = nn.Dense(self.hidden, dtype=self.dtype, name="score_hidden")
    self.score = nn.Dense(1, dtype=self.dtype, name="score")
    self.dropout = nn.Dropout(self.dropout_rate)
    self.head = nn.Dense(self.num_classes, dtype=self.dtype, name="head")

  def features(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
    """x [B, T, H, W, C] -> attention-pooled clip features [B, D] (float32)."""
    h = lift(self.frame, x, train, "features", self.lift_mode)             # [B, T, D]
    e = self.score(jnp.tanh(self.score_hidden(h)))[..., 0]                 # [B, T]
    a = jax.nn.softmax(e.astype(jnp.float32), axis=1)
    self.sow("intermediates", "temporal_attention", a)
    return jnp.einsum("bt,btd->bd", a, h.astype(jnp.float32))

  def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
    """x [B, T, H, W, C] -> logits [B, K] (float32)."""
    f = self.dropout(self.features(x, train), deterministic=not train)
    return self.head(f).astype(jnp.float32)
