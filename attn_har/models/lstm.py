"""CNN + LSTM video classifier (Yue-Hei Ng et al., "Beyond Short Snippets", CVPR 2015, arXiv:1503.08909).

A per-frame CNN (lifted over time) embeds each frame into its pooled features; a stack of LSTM layers reads the
sequence; a linear classifier reads the last step (the thesis's code: 3 x LSTM(512), dropout 0.5) or the mean of the
per-step logits (Yue-Hei Ng et al. average the per-step predictions).
"""

from typing import Any, Dict

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from attn_har.models.check import DTYPES
from attn_har.models.lift import lift
from attn_har.models.temporal import StreamModel

READOUTS = ("last", "mean")


class CNNLSTM(StreamModel):
  """Frame CNN features -> `num_layers` x LSTM(hidden) -> Dense(K).

  Attributes:
    frame: per-frame image model with `features(x, train) -> [B, D]`; its own classifier head is not used.
    num_classes: K.
    input_key: the batch key of the clip ('rgb' or 'flow').
    hidden: LSTM units per layer.
    num_layers: stacked LSTM layers.
    dropout_rate: dropout after every LSTM layer.
    readout: 'last' (logits of the last step) or 'mean' (mean of the per-step logits).
    lift_mode: 'vmap' or 'fold'.
    dtype: compute dtype of the LSTM and classifier.
  """
  frame: nn.Module
  num_classes: int
  input_key: str = "rgb"
  hidden: int = 512
  num_layers: int = 3
  dropout_rate: float = 0.5
  readout: str = "last"
  lift_mode: str = "fold"
  dtype: Any = jnp.float32

  @classmethod
  def settings(cls, m: ml_collections.ConfigDict) -> Dict[str, Any]:
    return {"num_classes": m.num_classes, "hidden": m.lstm.hidden, "num_layers": m.lstm.num_layers,
            "dropout_rate": m.lstm.dropout, "readout": m.lstm.readout, "dtype": DTYPES[m.dtype]}

  def setup(self):
    if self.readout not in READOUTS:
      raise ValueError(f"unknown LSTM readout {self.readout!r}; valid choices: {', '.join(map(repr, READOUTS))}")
    self.layers = [nn.RNN(nn.OptimizedLSTMCell(self.hidden, dtype=self.dtype), name=f"lstm_{i}")
                   for i in range(self.num_layers)]
    self.dropout = nn.Dropout(self.dropout_rate)
    self.head = nn.Dense(self.num_classes, dtype=self.dtype, name="head")

  def sequence(self, x: jax.Array, train: bool) -> jax.Array:
    """x [B, T, H, W, C] -> LSTM outputs [B, T, hidden]."""
    h = lift(self.frame, x, train, "features", self.lift_mode)
    for layer in self.layers:
      h = self.dropout(layer(h), deterministic=not train)
    return h

  def __call__(self, batch: Dict[str, jax.Array], train: bool) -> Dict[str, jax.Array]:
    """batch[input_key] [B, T, H, W, C] -> {'logits': [B, K], 'features': the last LSTM output [B, hidden]}."""
    h = self.sequence(self.input_of(batch), train)
    features = h[:, -1].astype(jnp.float32)
    if self.readout == "last":
      logits = self.head(h[:, -1]).astype(jnp.float32)
    else:
      logits = jnp.mean(self.head(h).astype(jnp.float32), axis=1)
    return {"logits": logits, "features": features}
