"""`pruned_eval.run_pruned` and `numpy_eval`: bit-identical to jax.jit, prunes what no output needs, evaluates with
NumPy (falls back to shared compiled programs)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from attn_har.config.loader import load_config
from attn_har.models import build_model, sample_batch
from attn_har.train import numpy_eval, pruned_eval, steps
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


LEVEL0 = {"xla_backend_optimization_level": 0}


def _assert_bit_identical(got, want):
  """Same tree, dtypes, shapes and bytes (so -0.0 != 0.0); key arrays compared by impl and key data."""
  assert jax.tree.structure(got) == jax.tree.structure(want)
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    if jax.dtypes.issubdtype(b.dtype, jax.dtypes.prng_key):
      assert jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key)
      assert str(jax.random.key_impl(a)) == str(jax.random.key_impl(b))
      a, b = jax.random.key_data(a), jax.random.key_data(b)
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape
    assert a.tobytes() == b.tobytes(), (a, b)


@pytest.mark.parametrize("use_numpy", [True, False])
def test_initial_state_is_bit_identical_to_the_jitted_one(use_numpy):
  fn, key = _init_fn(), jax.random.key(3)
  want = jax.jit(fn, compiler_options=LEVEL0)(key)
  got, how = pruned_eval.run_pruned(fn, key, compiler_options=LEVEL0, use_numpy=use_numpy, return_how=True)
  assert how == ("numpy" if use_numpy else "compiled")
  _assert_bit_identical(got, want)
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
  got, want = pruned_eval.run_pruned(fn, jax.random.key(7), use_numpy=False), jax.jit(fn)(jax.random.key(7))
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


def _default_init_fn():
  c = load_config("configs/synthetic_cbam.py")
  c.model.num_classes = 10
  model = build_model(c.model)
  tx = make_optimizer(c.optim, make_schedule(c.optim, c.train.num_steps))
  return lambda r: steps.init_state(model, tx, r, sample_batch(c))


def test_the_default_jobs_initialisers_are_exact():
  """Every parameter of `python launch.py`'s model is initialised by exactly rounded arithmetic, so train.py
  computes its initial state from the pruned jaxpr, bit-identical to the jitted one."""
  closed = jax.make_jaxpr(_default_init_fn())(jax.random.key(0))
  names = pruned_eval.primitive_names(pruned_eval.live_equations(closed.jaxpr))
  assert not names & pruned_eval.APPROXIMATED
  assert "random_bits" in names and "conv_general_dilated" not in names


@pytest.mark.slow     # about 20 s: compiling the jitted reference without the compilation cache
def test_the_default_jobs_initial_state_is_computed_by_numpy_bit_identically():
  fn, key = _default_init_fn(), jax.random.key(0)
  got, how = pruned_eval.run_pruned(fn, key, compiler_options=LEVEL0, return_how=True)
  assert how == "numpy"
  assert all(isinstance(x, np.ndarray) for x in jax.tree.leaves(got))
  _assert_bit_identical(got, jax.jit(fn, compiler_options=LEVEL0)(key))


def _random_draws(key):
  """Random bits, splits, fold_ins and initialisers of several shapes (odd, scalar) drawn from `key`."""
  k1, k2, k3 = jax.random.split(key, 3)
  out = {"split": jax.random.split(k1, (2, 3)), "fold": jax.random.fold_in(k2, 12345),
         "zeros": jnp.zeros((3, 5)), "ones": jnp.ones((7,), jnp.int32), "step": jnp.zeros((), jnp.int32)}
  for shape in [(), (1,), (7,), (3, 5), (2, 3, 5)]:
    name = "x".join(map(str, shape)) or "scalar"
    k = jax.random.fold_in(k3, len(shape))
    out["bits32_" + name] = jax.random.bits(k, shape)
    out["bits8_" + name] = jax.random.bits(k, shape, jnp.uint8)
    out["bits16_" + name] = jax.random.bits(jax.random.fold_in(k, 1), shape, jnp.uint16)
    out["uniform_" + name] = jax.random.uniform(k, shape)
    out["uniform_scaled_" + name] = jax.random.uniform(k, shape, minval=-0.25, maxval=0.5)
    out["randint_" + name] = jax.random.randint(k, shape, -5, 17)
    out["bernoulli_" + name] = jax.random.bernoulli(k, 0.3, shape)
  for name, init in [("lecun", nn.initializers.lecun_uniform()), ("glorot", nn.initializers.glorot_uniform()),
                     ("he", nn.initializers.he_uniform()), ("uniform", nn.initializers.uniform(0.1))]:
    out[name] = init(jax.random.fold_in(k3, 99), (3, 3, 5, 7))
  out["vmapped"] = jax.vmap(lambda k: jax.random.uniform(k, (3,)))(jax.random.split(k2, 5))
  out["legacy"] = jax.random.uniform(jax.random.split(jax.random.PRNGKey(7))[1], (9,))
  out["seeded"] = jax.random.bits(jax.random.key(jax.random.randint(k1, (), 0, 100)), (4,))
  return out


@pytest.mark.parametrize("partitionable", [True, False])
def test_random_primitives_are_bit_identical_under_both_threefry_modes(partitionable):
  key = jax.random.key(11)
  with jax.threefry_partitionable(partitionable):
    fn = lambda k: _random_draws(k)      # a new function: no trace cached under the other mode
    got, how = pruned_eval.run_pruned(fn, key, return_how=True)
    want = jax.jit(fn, compiler_options=LEVEL0)(key)
  assert how == "numpy"
  _assert_bit_identical(got, want)
  assert jax.dtypes.issubdtype(got["split"].dtype, jax.dtypes.prng_key) and got["split"].shape == (2, 3)
  assert np.std(got["uniform_3x5"]) > 0.1 and len(np.unique(got["bits32_2x3x5"])) == 30


def test_the_threefry_modes_differ():
  """The two modes draw different numbers, so the test above checks that each mode's path is followed."""
  fn = lambda k: jax.random.bits(k, (8,))
  with jax.threefry_partitionable(True):
    a = pruned_eval.run_pruned(fn, jax.random.key(1))
  with jax.threefry_partitionable(False):
    b = pruned_eval.run_pruned(fn, jax.random.key(1))
  assert not np.array_equal(a, b)


@pytest.mark.parametrize("shape", [(), (1,), (5,), (1000,), (3, 7)])
def test_threefry2x32_matches_jax(shape):
  rng = np.random.default_rng(len(shape) + sum(shape))
  draw = lambda s: rng.integers(0, 2 ** 32, s, dtype=np.uint32)
  k1, k2, x1, x2 = draw(()), draw(()), draw(shape), draw(shape)
  bind = jax.jit(lambda *a: jax.extend.random.threefry2x32_p.bind(*a))
  for keys in [(k1, k2), (draw(shape), draw(shape))]:
    got, want = numpy_eval.threefry2x32(*keys, x1, x2), bind(*keys, x1, x2)
    for a, b in zip(got, want):
      assert a.dtype == np.uint32 and a.shape == shape
      np.testing.assert_array_equal(a, np.asarray(b))
  keypair = (jnp.uint32(k1), jnp.uint32(k2))
  count = np.arange(np.prod(shape, dtype=int), dtype=np.uint32).reshape(shape)
  np.testing.assert_array_equal(np.concatenate(numpy_eval.threefry2x32(k1, k2, *np.split(np.pad(
      count.ravel(), (0, count.size % 2)), 2))).ravel()[:count.size].reshape(shape),
      jax.extend.random.threefry_2x32(keypair, count))


def test_exactly_rounded_arithmetic_follows_xla_on_special_values():
  """NaN, signed zeros, infinities, denormals (flushed like XLA:CPU), integer extremes, division by zero, long
  shifts, saturating float -> int conversion."""
  special = np.array([np.nan, -0.0, 0.0, 1e-40, -1e-40, 2e-38, np.inf, -np.inf, 1.5, -2.5, 3e9, -3e9, 7.0,
                      np.float32(2 ** 31), -np.float32(2 ** 31), 1e-45, -1e-45], np.float32)
  special = np.concatenate([special, np.array([0xffc12345], np.uint32).view(np.float32)])   # another NaN
  x, y = np.meshgrid(special, special)
  i = np.array([0, 1, -1, 7, -7, 31, 32, 33, 2 ** 31 - 1, -2 ** 31, 100, -100], np.int32)
  a, b = np.meshgrid(i, i)

  def fn(x, y, a, b):
    f = {n: getattr(jax.lax, n)(x, y) for n in ("add", "sub", "mul", "div", "max", "min", "eq", "lt", "ge")}
    f.update(sqrt=jax.lax.sqrt(x), neg=-x, abs=jnp.abs(x), clamp=jax.lax.clamp(np.float32(-1.0), x, y), sq=x * x,
             i32=x.astype(jnp.int32), u32=x.astype(jnp.uint32), u8=x.astype(jnp.uint8), b=x.astype(bool),
             f64=x.astype(jnp.float32) * y, bits=jax.lax.bitcast_convert_type(x, jnp.uint32) >> 1)
    for n in ("add", "sub", "mul", "div", "rem", "max", "min", "shift_left", "shift_right_logical",
              "shift_right_arithmetic", "bitwise_and", "bitwise_or", "bitwise_xor"):
      f["int_" + n] = getattr(jax.lax, n)(a, b)
    u, v = a.astype(jnp.uint32), b.astype(jnp.uint32)
    f.update(udiv=u // jnp.maximum(v, 1), urem=jax.lax.rem(u, v), udiv0=jax.lax.div(u, v), f=a.astype(jnp.float32),
             i8=a.astype(jnp.int8), not_=~a, shl=jax.lax.shift_left(u, v), shr=jax.lax.shift_right_logical(u, v))
    return f

  closed = jax.make_jaxpr(fn)(x, y, a, b)
  got = jax.tree.unflatten(jax.tree.structure(jax.eval_shape(fn, x, y, a, b)),
                           numpy_eval.evaluate_closed(closed, x, y, a, b))
  _assert_bit_identical(got, jax.jit(fn, compiler_options=LEVEL0)(x, y, a, b))


def _with_cumsum(key):
  bits = jax.random.bits(key, (6,))
  return {"cumsum": jax.lax.cumsum(bits), "uniform": jax.random.uniform(key, (4, 3))}


def test_an_unsupported_primitive_falls_back_to_the_compiled_programs(monkeypatch):
  key = jax.random.key(4)
  closed = jax.make_jaxpr(_with_cumsum)(key)
  hashed = []

  def threefry2x32(*args):
    hashed.append(args)
    raise AssertionError("evaluated before the check")

  monkeypatch.setattr(numpy_eval, "threefry2x32", threefry2x32)
  with pytest.raises(numpy_eval.Unsupported, match="'cumsum'"):
    numpy_eval.evaluate_closed(closed, key)
  assert not hashed       # refused before evaluating anything
  monkeypatch.undo()
  got, how = pruned_eval.run_pruned(_with_cumsum, key, compiler_options=LEVEL0, return_how=True)
  assert how == "compiled" and isinstance(got["cumsum"], jax.Array)
  _assert_bit_identical(got, jax.jit(_with_cumsum, compiler_options=LEVEL0)(key))
  _assert_bit_identical(got, pruned_eval.run_pruned(_with_cumsum, key, compiler_options=LEVEL0, use_numpy=False))


def test_approximated_primitives_are_never_evaluated_by_numpy():
  assert not numpy_eval.supported_primitives() & pruned_eval.APPROXIMATED
  fn = lambda key: jax.random.normal(key, (5,))
  with pytest.raises(numpy_eval.Unsupported, match="erf_inv"):
    numpy_eval.evaluate_closed(jax.make_jaxpr(fn)(jax.random.key(0)), jax.random.key(0))
  assert pruned_eval.run_pruned(fn, jax.random.key(0), exact=False, return_how=True)[1] == "compiled"
