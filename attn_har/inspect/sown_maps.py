"""Attention maps of any model, read from the 'intermediates' every attention module sows into."""

from typing import Any

import flax.linen as nn
import jax
from flax import traverse_util

SOW_NAME = "attention"


def attention_maps(model: nn.Module, variables: Any, x: jax.Array, train: bool = False) -> dict[str, jax.Array]:
  """Runs `model.apply(variables, x, train, mutable=['intermediates'])` and returns every sown attention map.

  Args:
    model: the model (an `ImageClassifier` or anything whose modules sow 'attention').
    variables: its variables ('intermediates' in them are ignored).
    x: the input batch, e.g. [B, H, W, C].
    train: the train flag (positional second argument of `apply`). With train=True, batch statistics are
      used but their updates are discarded.

  Returns:
    {module path joined by '/': map (float32)}, in network order; e.g. 'backbone/block_2_cbam' -> [B, H, W].
    A module applied more than once gets its maps stacked on a new leading axis.
  """
  variables = {k: v for k, v in variables.items() if k != "intermediates"}
  mutable = ["intermediates", "batch_stats"] if train else ["intermediates"]
  _, state = model.apply(variables, x, train, mutable=mutable)
  flat = traverse_util.flatten_dict(state.get("intermediates", {}))
  maps = {}
  for path, values in flat.items():
    if path[-1] != SOW_NAME:
      continue
    key = "/".join(path[:-1])
    maps[key] = values[0] if len(values) == 1 else jax.numpy.stack(values)
  return maps
