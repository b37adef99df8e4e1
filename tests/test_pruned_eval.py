"""`pruned_eval.run_pruned`: bit-identical to jax.jit, prunes what no output needs, shares programs."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from attn_har.config.loader import load_config
from attn_har.models import build_model, sample_batch
from attn_har.train import pruned_eval, steps
from attn_har.train.optim import make_optimizer
from attn_har.train.schedule import make_schedule


class _Net(nn.Module):
  """Convs, BatchNorm and Dense layers of several shapes, two of them the same shape; glorot-uniform kernels and
  uniform biases, as the Keras-style layers (a normal initialiser is approximated: see the last tests)."""

  @nn.compact
  def __call__(self, batch, train):
    kw = dict(kernel_init=nn.initializers.glorot_uniform(), bias_init=nn.initializers.uniform(0.1))
    x = batch["image"]
    for width in (8, 8, 16):
      x = nn.Conv(width, (3, 3), **kw)(x)
      x = nn.relu(nn.BatchNorm(use_running_average=not train)(x))
    x = jnp.mean(x, axis=(1, 2))
    return {"logits": nn.Dense(5, **kw)(nn.Dense(16, **kw)(x)), "features": x}


def _init_fn():
  model, tx = _Net(), optax.adamw(1e-3)
  return lambda r: steps.init_state(model, tx, r, {"image": jnp.zeros((2, 12, 12, 3))})


def test_initial_state_is_bit_identical_to_the_jitted_one():
  fn, key = _init_fn(), jax.random.key(3)
  want = jax.jit(fn, compiler_options={"xla_backend_optimization_level": 0})(key)
  got = pruned_eval.run_pruned(fn, key, compiler_options={"xla_backend_optimization_level": 0})
  assert jax.tree.structure(got) == jax.tree.structure(want)
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert np.std(np.asarray(got["params"]["Conv_0"]["kernel"])) > 0.01      # really random, not zeros
  assert np.std(np.asarray(got["params"]["Conv_0"]["bias"])) > 0.01


def test_the_forward_pass_is_pruned():
  closed = jax.make_jaxpr(_init_fn())(jax.random.key(0))
  live = pruned_eval.live_equations(closed.jaxpr)
  names = {e.primitive.name for e in live}
  assert "conv_general_dilated" in {e.primitive.name for e in closed.jaxpr.eqns}
  assert "conv_general_dilated" not in names and len(live) < len(closed.jaxpr.eqns)


def test_equations_differing_in_a_literal_or_a_value_share_one_program():
  def fn(key):
    keys = [jax.random.fold_in(key, i) for i in (11, 22, 33)]
    return [jax.random.uniform(k, (4, 3)) for k in keys] + [jax.random.uniform(keys[0], (5,))]

  closed = jax.make_jaxpr(fn)(jax.random.key(0))
  programs = {pruned_eval._equation_program(e)[0] for e in pruned_eval.live_equations(closed.jaxpr)}
  by_name = [k[0] for k in programs]
  assert by_name.count("random_fold_in") == 1      # three fold_ins, data 11 / 22 / 33 passed as arguments
  assert len(programs) < len(pruned_eval.live_equations(closed.jaxpr))
  got, want = pruned_eval.run_pruned(fn, jax.random.key(7)), jax.jit(fn)(jax.random.key(7))
  for a, b in zip(got, want):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert not np.array_equal(np.asarray(got[0]), np.asarray(got[1]))


def test_pytree_inputs_and_literal_outputs():
  fn = lambda tree: {"sum": tree["a"] + tree["b"], "const": jnp.float32(2.0), "same": tree["a"]}
  tree = {"a": jnp.arange(3.0), "b": jnp.ones(3)}
  got = pruned_eval.run_pruned(fn, tree)
  np.testing.assert_array_equal(got["sum"], [1.0, 2.0, 3.0])
  assert float(got["const"]) == 2.0 and np.array_equal(got["same"], tree["a"])


def test_approximated_initialisers_are_refused_unless_asked_for():
  fn = lambda key: {"w": jax.random.normal(key, (64,)) * 0.05, "b": jnp.zeros(3)}
  key = jax.random.key(5)
  with pytest.raises(pruned_eval.Inexact, match="erf_inv"):
    pruned_eval.run_pruned(fn, key)
  got, want = pruned_eval.run_pruned(fn, key, exact=False), jax.jit(fn)(key)
  np.testing.assert_allclose(got["w"], want["w"], rtol=1e-6, atol=1e-9)


def test_the_default_jobs_initialisers_are_exact():
  """Every parameter of `python launch.py`'s model is initialised by exactly rounded arithmetic, so train.py
  computes its initial state from the pruned jaxpr, bit-identical to the jitted one."""
  c = load_config("configs/synthetic_cbam.py")
  c.model.num_classes = 10
  model = build_model(c.model)
  tx = make_optimizer(c.optim, make_schedule(c.optim, c.train.num_steps))
  closed = jax.make_jaxpr(lambda r: steps.init_state(model, tx, r, sample_batch(c)))(jax.random.key(0))
  names = pruned_eval.primitive_names(pruned_eval.live_equations(closed.jaxpr))
  assert not names & pruned_eval.APPROXIMATED
  assert "random_bits" in names and "conv_general_dilated" not in names
