"""Parameter counts through `jax.eval_shape` (no compute, no memory for the weights)."""

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

# Keras's `model.count_params()` (the thesis's "Parameters") counts every weight, BatchNorm moving mean and
# variance included; in Flax those live in 'batch_stats'.
KERAS_COLLECTIONS = ("params", "batch_stats")


def count_params(model: nn.Module, input_shape: Sequence[int],
                 collections: Sequence[str] = KERAS_COLLECTIONS) -> int:
  """Number of scalars in `collections` of `model.init(rng, zeros(input_shape), False)`.

  By default counts trainable parameters plus BatchNorm running statistics, which is what Keras's
  `count_params()` (and so the thesis) reports; pass collections=('params',) for trainable weights only.

  Args:
    model: a module whose `init(rng, x, train)` takes an input batch and the train flag positionally.
    input_shape: e.g. (1, 224, 224, 3).
    collections: variable collections to count.
  """
  x = jax.ShapeDtypeStruct(tuple(input_shape), jnp.float32)
  shapes = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, False), x)
  return sum(int(leaf.size) for name in collections if name in shapes
             for leaf in jax.tree_util.tree_leaves(shapes[name]))
