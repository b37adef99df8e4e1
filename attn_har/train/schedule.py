"""Learning-rate schedules: `SCHEDULES` maps a name to `f(optim_config, num_steps) -> optax.Schedule`.

  'inverse_time'  lr_t = lr / (1 + decay_rate * t): Keras-legacy SGD(decay=...) applied per step, the thesis's
                  schedule (lr 0.1, decay 1e-4).
  'cosine'        lr * (end + (1 - end) * (1 + cos(pi * t / T)) / 2) over the steps after warm-up.
  'constant'      lr.
With `warmup_steps > 0` every schedule is preceded by a linear ramp from 0 to its value at the end of warm-up.
"""

import jax.numpy as jnp
import ml_collections
import optax


def inverse_time(c: ml_collections.ConfigDict, num_steps: int) -> optax.Schedule:
  del num_steps
  return lambda t: c.lr / (1.0 + c.decay_rate * t)


def cosine(c: ml_collections.ConfigDict, num_steps: int) -> optax.Schedule:
  span = max(1, num_steps - c.warmup_steps)
  return lambda t: c.lr * (c.end_lr_fraction + (1.0 - c.end_lr_fraction) * 0.5 *
                           (1.0 + jnp.cos(jnp.pi * jnp.minimum(t, span) / span)))


def constant(c: ml_collections.ConfigDict, num_steps: int) -> optax.Schedule:
  del num_steps
  return lambda t: c.lr * jnp.ones_like(jnp.asarray(t, jnp.float32))


SCHEDULES = {"inverse_time": inverse_time, "cosine": cosine, "constant": constant}


def make_schedule(c: ml_collections.ConfigDict, num_steps: int) -> optax.Schedule:
  """The learning rate as a function of the step count t (0-based) for the `optim` config `c`."""
  from attn_har.registry import lookup
  base = lookup(SCHEDULES, c.schedule, "optim.schedule")(c, num_steps)
  if c.warmup_steps <= 0:
    return base
  w = c.warmup_steps
  return lambda t: jnp.where(t < w, base(0) * (t + 1) / w, base(jnp.maximum(t - w, 0)))
