"""`OneInput`: the model-protocol parts shared by every model that reads one batch key through a `frame` model."""

from typing import Dict

import flax.linen as nn
import jax


class OneInput(nn.Module):
  """Base of the image model and the stream models: subclasses declare the fields `frame` and `input_key`."""

  def input_of(self, batch: Dict[str, jax.Array]) -> jax.Array:
    """batch[input_key]; a missing key raises KeyError naming it and the batch's keys."""
    if self.input_key not in batch:
      raise KeyError(f"batch lacks {self.input_key!r} needed by {type(self).__name__}; has {sorted(batch)}")
    return batch[self.input_key]

  @property
  def inputs(self) -> tuple[str, ...]:
    """The batch keys this model reads."""
    return (self.input_key,)

  def frame_models(self) -> Dict[str, tuple[tuple[str, ...], nn.Module]]:
    """{input_key: (variable path of the per-frame image model, the module)}."""
    return {self.input_key: (("frame",), self.frame)}
