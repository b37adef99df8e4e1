"""CNN + LSTM video classifier (Yue-Hei Ng et al., "Beyond Short Snippets", CVPR 2015, arXiv:1503.08909).

A per-frame CNN (lifted over time) embeds each frame into its pooled features; a stack of LSTM layers reads the
sequence; a linear classifier reads the last step (the thesis's code: 3 x LSTM(512), dropout 0.5) or the mean of the
per-step logits (Yue-Hei Ng et al. average the per-step predictions).
"""

import flax.linen as nn
import jax.numpy as jnp

from attn_har.video.lifted import lift

READOUTS = ("last", "mean")


class CNNLSTM(nn.Module):
  """Frame CNN features -> `num_layers` x LSTM(hidden) -> Dense(K).

  Attributes:
    frame: per-frame image model with `features(x, train) -> [B, D]`; its own classifier head is not used.
    num_classes: K.
    hidden: LSTM units per layer.
    num_layers: stacked LSTM layers.
    dropout_rate: dropout after every LSTM layer.
    readout: 'last' (logits of the last step) or 'mean' (mean of the per-step logits).
    lift_mode: 'vmap' or 'fold'.
    dtype: compute dtype of the LSTM and classifier.
  """
  frame: nn.Module
  num_classes: int
  hidden: int = 512
  num_layers: int = 3
  dropout_rate: float = 0.5
  readout: str = "last"
  lift_mode: str = "fold"
  dtype: jnp.dtype = jnp.float32

  def setup(self):
    if self.readout not in READOUTS:
      raise ValueError(f"unknown LSTM readout {self.readout!r}; valid choices: {', '.join(map(repr, READOUTS))}")
    self.layers = [nn.RNN(nn.OptimizedLSTMCell(self.hidden, dtype=self.dtype), name=f"lstm_{i}")
                   for i in range(self.num_layers)]
    self.dropout = nn.Dropout(self.dropout_rate)
    self.head = nn.Dense(self.num_classes, dtype=self.dtype, name="head")

  def sequence(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
    """x [B, T, H, W, C] -> LSTM outputs [B, T, hidden]."""
    h = lift(self.frame, x, train, "features", self.lift_mode)
    for layer in self.layers:
      h = self.dropout(layer(h), deterministic=not train)
    return h

  def features(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
    """x [B, T, H, W, C] -> the last LSTM output [B, hidden] (float32)."""
    return self.sequence(x, train)[:, -1].astype(jnp.float32)

  def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
    """x [B, T, H, W, C] -> logits [B, K] (float32)."""
    h = self.sequence(x, train)
    if self.readout == "last":
      return self.head(h[:, -1]).astype(jnp.float32)
    return jnp.mean(self.head(h).astype(jnp.float32), axis=1)
