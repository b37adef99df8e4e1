"""Per-stream video classifiers: a per-frame image model lifted over time plus a temporal aggregation.

`FrameAverage` averages its frames' scores by `model.frame_consensus`, the same rule in training and evaluation:
'softmax' the mean of the softmax scores (Simonyan & Zisserman's video score), returned as its log so a softmax of
the output gives the averaged scores back and cross-entropy on it is the loss of the averaged prediction; 'logits'
the mean of the logits (TSN's average consensus). Evaluating a 'logits'-trained model by 'softmax' cost the default
synthetic job 0.10 test top-1 (0.70 against 0.80); training it by 'softmax' 0.25 (0.55).
`TemporalAttentionPool` learns a softmax weighting of the frames' pooled features (the
thesis's outlook, §7: attention over time as well as space) and sows the weights as 'temporal_attention' [B, T].
`CNNLSTM` is in `attn_har.models.lstm`.

Every stream model follows the model protocol (`attn_har.models`): it reads its clip [B, T, H, W, C] from
`batch[input_key]` and returns {'logits': [B, K] float32, 'features': [B, D] float32}; its per-frame image model
is the field `frame` (`frame_models()`).
"""

from typing import Any, Dict

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from attn_har.models.check import DTYPES
from attn_har.models.lift import lift
from attn_har.models.one_input import OneInput


class StreamModel(OneInput):
  """What the stream models share: the input key, the frame model and how they read their config section."""

  @classmethod
  def settings(cls, m: ml_collections.ConfigDict) -> Dict[str, Any]:
    """Constructor arguments read from the model config section (beyond frame, input_key, lift_mode)."""
    del m
    return {}


def log_mean_softmax(logits: jax.Array, axis: int = 1) -> jax.Array:
  """log(mean_t softmax(logits_t)) over `axis`: [B, T, K] -> [B, K] log-probabilities (float32, stable)."""
  logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  return jax.nn.logsumexp(logp, axis=axis) - jnp.log(jnp.float32(logits.shape[axis]))


CONSENSUS = ("softmax", "logits")


class FrameAverage(StreamModel):
  """Clip 'logits': log of the mean of the frames' softmax scores ('softmax') or the mean of their logits
  ('logits'); features = mean of the frames' features.

  Attributes:
    frame: per-frame image classifier with `outputs(x [B, H, W, C], train) -> {'logits', 'features'}`.
    input_key: the batch key of the clip ('rgb' or 'flow').
    lift_mode: 'vmap' or 'fold' (`attn_har.models.lift`).
    consensus: 'softmax' or 'logits' (`CONSENSUS`).
  """
  frame: nn.Module
  input_key: str = "rgb"
  lift_mode: str = "fold"
  consensus: str = "softmax"

  @classmethod
  def settings(cls, m: ml_collections.ConfigDict) -> Dict[str, Any]:
    return {"consensus": m.get("frame_consensus", "softmax")}

  def __call__(self, batch: Dict[str, jax.Array], train: bool) -> Dict[str, jax.Array]:
    """batch[input_key] [B, T, H, W, C] -> {'logits': [B, K], 'features': [B, D]} (float32)."""
    out = lift(self.frame, self.input_of(batch), train, "outputs", self.lift_mode)
    if self.consensus not in CONSENSUS:
      raise ValueError(f"model.frame_consensus must be one of {CONSENSUS}, got {self.consensus!r}")
    logits = log_mean_softmax(out["logits"]) if self.consensus == "softmax" else jnp.mean(
        out["logits"].astype(jnp.float32), 1)
    return {"logits": logits, "features": jnp.mean(out["features"].astype(jnp.float32), 1)}


class TemporalAttentionPool(StreamModel):
  """Soft attention over frames: a_t = softmax_t(w^T tanh(W h_t + b)), clip feature = sum_t a_t h_t.

  Attributes:
    frame: per-frame image model with `features(x, train) -> [B, D]`; its own classifier head is not used.
    num_classes: K.
    input_key: the batch key of the clip ('rgb' or 'flow').
    hidden: width of the scoring MLP.
    dropout_rate: dropout on the pooled feature before the classifier.
    lift_mode: 'vmap' or 'fold'.
    dtype: compute dtype of the scoring MLP and classifier (the softmax runs in float32).
  """
  frame: nn.Module
  num_classes: int
  input_key: str = "rgb"
  hidden: int = 128
  dropout_rate: float = 0.0
  lift_mode: str = "fold"
  dtype: Any = jnp.float32

  @classmethod
  def settings(cls, m: ml_collections.ConfigDict) -> Dict[str, Any]:
    return {"num_classes": m.num_classes, "hidden": m.pool.hidden, "dropout_rate": m.pool.dropout,
            "dtype": DTYPES[m.dtype]}

  def setup(self):
    self.score_hidden = nn.Dense(self.hidden, dtype=self.dtype, name="score_hidden")
    self.score = nn.Dense(1, dtype=self.dtype, name="score")
    self.dropout = nn.Dropout(self.dropout_rate)
    self.head = nn.Dense(self.num_classes, dtype=self.dtype, name="head")

  def pooled(self, x: jax.Array, train: bool) -> jax.Array:
    """x [B, T, H, W, C] -> attention-pooled clip features [B, D] (float32)."""
    h = lift(self.frame, x, train, "features", self.lift_mode)             # [B, T, D]
    e = self.score(jnp.tanh(self.score_hidden(h)))[..., 0]                 # [B, T]
    a = jax.nn.softmax(e.astype(jnp.float32), axis=1)
    self.sow("intermediates", "temporal_attention", a)
    return jnp.einsum("bt,btd->bd", a, h.astype(jnp.float32))

  def __call__(self, batch: Dict[str, jax.Array], train: bool) -> Dict[str, jax.Array]:
    """batch[input_key] [B, T, H, W, C] -> {'logits': [B, K], 'features': [B, D]} (float32)."""
    features = self.pooled(self.input_of(batch), train)
    logits = self.head(self.dropout(features, deterministic=not train)).astype(jnp.float32)
    return {"logits": logits, "features": features}
