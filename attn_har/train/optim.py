"""Optimisers: `OPTIMIZERS` maps a name to `f(optim_config, schedule) -> optax.GradientTransformation`.

  'sgd'    Keras SGD semantics, as the thesis trained: v <- m v - lr_t g, w <- w + v (momentum applied to the
           already-scaled step, so a changing lr_t does not rescale past steps), optional Nesterov.
  'adamw'  optax.adamw.
Both take weight decay (`weight_decay`: for SGD an L2 term added to the gradient before the learning rate, as
in PyTorch; for AdamW decoupled) and global-norm clipping.
"""

import math

import ml_collections
import optax


def sgd(c: ml_collections.ConfigDict, schedule: optax.Schedule) -> optax.GradientTransformation:
  parts = []
  if c.grad_clip_norm > 0:
    parts.append(optax.clip_by_global_norm(c.grad_clip_norm))
  if c.weight_decay > 0:
    parts.append(optax.add_decayed_weights(c.weight_decay))
  parts.append(optax.scale_by_learning_rate(schedule))
  if c.momentum > 0:
    parts.append(optax.trace(decay=c.momentum, nesterov=c.nesterov))
  return optax.chain(*parts)


def adamw(c: ml_collections.ConfigDict, schedule: optax.Schedule) -> optax.GradientTransformation:
  parts = [optax.clip_by_global_norm(c.grad_clip_norm)] if c.grad_clip_norm > 0 else []
  parts.append(optax.adamw(schedule, weight_decay=c.weight_decay))
  return optax.chain(*parts)


OPTIMIZERS = {"sgd": sgd, "adamw": adamw}


def check(c: ml_collections.ConfigDict) -> None:
  """Raises KeyError naming `optim.name` / `optim.schedule` and the valid choices for an unknown name, ValueError
  for a value out of range (lr finite and > 0, momentum in [0, 1), the rest finite and >= 0)."""
  from attn_har.registry import lookup
  from attn_har.train.schedule import SCHEDULES
  lookup(OPTIMIZERS, c.name, "optim.name")
  lookup(SCHEDULES, c.schedule, "optim.schedule")
  if not (math.isfinite(c.lr) and c.lr > 0):
    raise ValueError(f"optim.lr must be a finite number > 0, got {c.lr}")
  if not 0.0 <= c.momentum < 1.0:
    raise ValueError(f"optim.momentum must lie in [0, 1), got {c.momentum}")
  for key in ("weight_decay", "grad_clip_norm", "decay_rate", "warmup_steps", "end_lr_fraction"):
    if not (math.isfinite(c[key]) and c[key] >= 0):
      raise ValueError(f"optim.{key} must be a finite number >= 0, got {c[key]}")


def make_optimizer(c: ml_collections.ConfigDict, schedule: optax.Schedule) -> optax.GradientTransformation:
  """The optax transformation for the `optim` config `c`.

  With `skip_nonfinite_updates`, a step whose gradient is not finite leaves parameters and optimiser state
  unchanged (`optax.apply_if_finite`, at most 10 in a row); the loss check in train.py still stops a run whose
  loss itself becomes NaN.
  """
  from attn_har.registry import lookup
  tx = lookup(OPTIMIZERS, c.name, "optim.name")(c, schedule)
  if c.skip_nonfinite_updates:
    tx = optax.apply_if_finite(tx, max_consecutive_errors=10)
  return tx
