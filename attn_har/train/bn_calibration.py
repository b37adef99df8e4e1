"""BatchNorm statistics recalibration ("precise BN") with the compiled train step, for short runs.

Keras's MobileNetV2 BatchNorm keeps running averages with momentum 0.999, so after a few hundred steps they still
mostly hold their initial values and inference-mode outputs are meaningless. `recalibrate` replaces the running
averages by the mean of the batch statistics over a few training batches. Running averages are never read in
training mode, so recalibrating changes no gradient: training (and an exact resume) is unaffected.

It reuses the jit-compiled `train_step` (no extra compile) on throw-away copies of the state: a step started from
running stats r returns m*r + (1-m)*s for each statistic s of the batch. Starting from r = 0 gives (1-m)*s; from
r = 1 gives m + (1-m)*s; their difference is m, so s is recovered exactly for any momentum m.
"""

from typing import Any, Callable, Dict, Iterable

import jax
import jax.numpy as jnp


def recalibrate(train_step: Callable, state: Dict[str, Any], batches: Iterable[Dict[str, Any]],
                rng: jax.Array) -> Dict[str, Any]:
  """Returns `state` with batch_stats = the mean of the per-batch statistics over `batches` (params untouched)."""
  stats = state["batch_stats"]
  if not jax.tree.leaves(stats):
    return state

  def run(running, batch):
    s = jax.tree.map(jnp.copy, state)
    s["batch_stats"] = jax.tree.map(jnp.copy, running)  # the step donates its input
    return train_step(s, batch, rng)[0]["batch_stats"]

  zeros = jax.tree.map(jnp.zeros_like, stats)
  total, one_minus_m, n = None, None, 0
  for batch in batches:
    a = run(zeros, batch)
    if one_minus_m is None:
      c = run(jax.tree.map(jnp.ones_like, stats), batch)
      one_minus_m = jax.tree.map(lambda c_, a_: 1.0 - (c_ - a_), c, a)
    s = jax.tree.map(lambda a_, w: a_ / w, a, one_minus_m)
    total = s if total is None else jax.tree.map(jnp.add, total, s)
    n += 1
  if n == 0:
    raise ValueError("recalibrate got no batches")
  new = dict(state)
  new["batch_stats"] = jax.tree.map(lambda t, old: (t / n).astype(old.dtype), total, stats)
  return new
