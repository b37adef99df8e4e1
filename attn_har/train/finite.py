"""Non-finite guards: a NaN or infinite model state is never validated, saved, called good or resumed from."""

import jax
import jax.numpy as jnp


class NonFiniteError(FloatingPointError):
  """The training loss or the model state (parameters, optimiser state, BatchNorm statistics) became non-finite."""


def all_finite(tree) -> jax.Array:
  """Scalar bool: every inexact leaf of `tree` is finite (integer leaves, e.g. the step, are skipped)."""
  leaves = [jnp.ravel(x) for x in jax.tree.leaves(tree) if jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact)]
  if not leaves:
    return jnp.asarray(True)
  # One reduction over the concatenated leaves: XLA:CPU compiles it in about 1 s, where one reduction per leaf
  # (about 2000 leaves in the default two-stream state) took 30 s.
  return jnp.all(jnp.isfinite(jnp.concatenate([x.astype(jnp.float32) for x in leaves])))


_all_finite = jax.jit(all_finite)


def state_is_finite(state) -> bool:
  """Host bool: the model state {'params', 'batch_stats', 'opt_state', ...} holds only finite numbers."""
  return bool(_all_finite(state))
