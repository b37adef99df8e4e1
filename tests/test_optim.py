"""Optimiser options with values: AdamW's first step, weight decay for SGD and AdamW, global-norm clipping, and
`skip_nonfinite_updates` leaving parameters and optimiser state untouched on a NaN gradient."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from attn_har.train.optim import make_optimizer


def _optim(**kw):
  c = ml_collections.ConfigDict(dict(name="sgd", lr=0.1, momentum=0.0, nesterov=False, schedule="constant",
                                     decay_rate=0.0, warmup_steps=0, end_lr_fraction=0.0, weight_decay=0.0,
                                     grad_clip_norm=0.0, skip_nonfinite_updates=False))
  c.update(kw)
  return c


def _step(c, w, g, state=None):
  tx = make_optimizer(c, lambda t: c.lr)
  state = tx.init(w) if state is None else state
  upd, state = tx.update(g, state, w)
  return optax.apply_updates(w, upd), state


def test_sgd_weight_decay_is_an_l2_term_on_the_gradient():
  w, _ = _step(_optim(weight_decay=0.1), jnp.array([1.0, -2.0]), jnp.array([0.0, 1.0]))
  # w - lr (g + wd w)
  np.testing.assert_allclose(w, [1.0 - 0.1 * 0.1, -2.0 - 0.1 * (1.0 - 0.2)], rtol=1e-6)


def test_adamw_first_step_is_lr_times_sign_plus_decoupled_decay():
  c = _optim(name="adamw", lr=0.01, weight_decay=0.5)
  w, _ = _step(c, jnp.array([2.0, -1.0]), jnp.array([0.3, -4.0]))
  # Bias-corrected m / sqrt(v) = sign(g) at step 1; decay lr * wd * w is not scaled by Adam's moments.
  np.testing.assert_allclose(w, [2.0 - 0.01 * (1 + 0.5 * 2.0), -1.0 - 0.01 * (-1 + 0.5 * -1.0)], rtol=1e-5)


@pytest.mark.parametrize("name", ["sgd", "adamw"])
def test_gradients_are_clipped_to_the_global_norm(name):
  g = jnp.array([3.0, 4.0])   # norm 5
  if name == "sgd":
    w, _ = _step(_optim(lr=1.0, grad_clip_norm=1.0), jnp.zeros(2), g)
    np.testing.assert_allclose(w, [-0.6, -0.8], rtol=1e-6)
  else:   # Adam is scale-invariant at step 1, so look at its first moment: (1 - b1) * clipped g
    _, state = _step(_optim(name="adamw", lr=1.0, grad_clip_norm=1.0), jnp.zeros(2), g)
    mu = [s for s in jax.tree.leaves(state) if np.shape(s) == (2,)][0]
    np.testing.assert_allclose(mu, 0.1 * np.array([0.6, 0.8]), rtol=1e-5)
  w, _ = _step(_optim(lr=1.0, grad_clip_norm=10.0), jnp.zeros(2), g)   # below the threshold: unchanged
  np.testing.assert_allclose(w, [-3.0, -4.0], rtol=1e-6)


@pytest.mark.parametrize("name", ["sgd", "adamw"])
def test_skip_nonfinite_updates_leaves_parameters_and_state_unchanged(name):
  c = _optim(name=name, momentum=0.9 if name == "sgd" else 0.0, skip_nonfinite_updates=True)
  w0 = jnp.array([1.0, 2.0])
  w1, s1 = _step(c, w0, jnp.array([0.5, -0.5]))
  w2, s2 = _step(c, w1, jnp.array([np.nan, 1.0]), s1)
  np.testing.assert_array_equal(w2, w1)
  inner = lambda s: [x for x in jax.tree.leaves(s.inner_state) if np.ndim(x) > 0]
  for a, b in zip(inner(s1), inner(s2)):
    np.testing.assert_array_equal(a, b)
  assert int(s2.notfinite_count) == 1 and int(s2.total_notfinite) == 1
  w3, s3 = _step(c, w2, jnp.array([0.5, -0.5]), s2)   # the next finite gradient applies again
  assert np.all(np.isfinite(w3)) and not np.array_equal(w3, w2) and int(s3.notfinite_count) == 0
  # Without the option a NaN gradient poisons the parameters.
  w_bad, _ = _step(_optim(name=name), w0, jnp.array([np.nan, 1.0]))
  assert np.isnan(np.asarray(w_bad)[0])
