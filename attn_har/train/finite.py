"""Non-finite guards: a NaN or infinite model state is never validated, saved, called good or resumed from."""

import jax
import jax.numpy as jnp


class NonFiniteError(FloatingPointError):
  """The training loss or the model state (parameters, optimiser state, BatchNorm statistics) became non-finite."""


def all_finite(tree) -> jax.Array:
  """Scalar bool: every inexact leaf of `tree` is finite (integer leaves, e.g. the step, are skipped)."""
  leaves = [x for x in jax.tree.leaves(tree) if jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact)]
  if not leaves:
    return jnp.asarray(True)
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def state_is_finite(state) -> bool:
  """Host bool: the model state {'params', 'batch_stats', 'opt_state', ...} holds only finite numbers."""
  return bool(jax.jit(all_finite)(state))
