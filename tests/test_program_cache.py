"""The program cache (`attn_har.train.program_cache`): exported, then loaded, same outputs; bad entries rebuilt."""

import numpy as np
import jax
import jax.numpy as jnp
import optax
import pytest

from attn_har import compile_cache
from attn_har.train import program_cache


def _step(state, x):
  """A tiny optimiser step over a state with optax namedtuples inside (a custom pytree node in and out)."""
  tx = optax.adam(0.1)
  loss, grads = jax.value_and_grad(lambda p: jnp.sum(jnp.tanh(x @ p["w"]) ** 2))(state["params"])
  updates, opt_state = tx.update(grads, state["opt"], state["params"])
  return {"params": optax.apply_updates(state["params"], updates), "opt": opt_state}, {"loss": loss}


def _args():
  params = {"w": jnp.asarray(np.random.RandomState(0).randn(4, 3), jnp.float32)}
  return {"params": params, "opt": optax.adam(0.1).init(params)}, jnp.arange(8, dtype=jnp.float32).reshape(2, 4)


def _cached(folder, fingerprint="f1", fun=_step):
  return program_cache.CachedJit(fun, name="step", fingerprint=fingerprint, folder=folder)


def _same(a, b):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_exported_then_loaded_gives_the_plain_jit_outputs(tmp_path):
  want = jax.jit(_step)(*_args())
  first = _cached(tmp_path)
  _same(first(*_args()), want)
  assert first.source == "exported"
  [entry] = tmp_path.glob(f"step-*{program_cache.SUFFIX}")
  second = _cached(tmp_path)           # a new process would build it the same way
  _same(second(*_args()), want)
  assert second.source == "loaded"
  _same(second(*second(*_args())[:1], _args()[1]), jax.jit(_step)(*jax.jit(_step)(*_args())[:1], _args()[1]))
  assert list(tmp_path.glob(f"*{program_cache.SUFFIX}")) == [entry]


@pytest.mark.parametrize("use_cache", [True, False])
def test_compiled_ahead_from_shapes_the_first_call_neither_traces_nor_compiles(tmp_path, use_cache):
  state, x = _args()
  x = jax.device_put(x, jax.devices()[0])   # placed, as the loaders place batches
  abstract_x = jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding)
  step = _cached(tmp_path if use_cache else None)
  step.compile_ahead(state, abstract_x)
  assert step.source == ("exported" if use_cache else "jit")
  events = []
  listener = lambda event, seconds, **_: events.append(event)
  jax.monitoring.register_event_duration_secs_listener(listener)
  try:
    out = step(state, x)
  finally:
    jax.monitoring.unregister_event_duration_listener(listener)
  assert not set(events) & set(compile_cache.COMPILE_EVENTS)
  _same(out, jax.jit(_step)(*_args()))


def test_compiled_ahead_for_other_shapes_the_first_call_warns_and_builds_its_own(tmp_path):
  state, x = _args()
  step = _cached(tmp_path)
  step.compile_ahead(state, jax.ShapeDtypeStruct((1, 4), x.dtype))
  with pytest.warns(RuntimeWarning, match="compiled ahead for other input shapes"):
    out = step(state, x)
  _same(out, jax.jit(_step)(*_args()))
  assert len(list(tmp_path.glob(f"*{program_cache.SUFFIX}"))) == 2


def test_key_follows_fingerprint_and_input_types(tmp_path):
  state, x = _args()
  k = program_cache.program_key("step", "f1", (state, x))
  assert k == program_cache.program_key("step", "f1", _args())
  assert k != program_cache.program_key("step", "f2", (state, x))
  assert k != program_cache.program_key("step", "f1", (state, x[:1]))
  assert k != program_cache.program_key("step", "f1", (state, x.astype(jnp.bfloat16)))
  _cached(tmp_path, "f1")(*_args())
  other = _cached(tmp_path, "f2")
  other(*_args())
  assert other.source == "exported" and len(list(tmp_path.glob(f"*{program_cache.SUFFIX}"))) == 2


@pytest.mark.parametrize("damage", [b"not a pickle", None])
def test_unreadable_or_stale_entry_is_rebuilt(tmp_path, damage):
  _cached(tmp_path)(*_args())
  [entry] = tmp_path.glob(f"*{program_cache.SUFFIX}")
  if damage is None:   # a readable entry written under another key (e.g. a hash prefix collision)
    other = tmp_path / "other"
    _cached(other, "f-other")(*_args())
    damage = next(other.glob(f"*{program_cache.SUFFIX}")).read_bytes()
  entry.write_bytes(damage)
  again = _cached(tmp_path)
  with pytest.warns(RuntimeWarning, match="stale program cache entry"):
    out = again(*_args())
  assert again.source == "exported"
  _same(out, jax.jit(_step)(*_args()))
  last = _cached(tmp_path)
  last(*_args())
  assert last.source == "loaded"


def test_unexportable_function_runs_as_plain_jit(tmp_path):
  def with_callback(x):
    return jax.pure_callback(lambda v: np.asarray(v) * 2, jax.ShapeDtypeStruct(x.shape, x.dtype), x) + 1

  f = program_cache.CachedJit(with_callback, name="cb", fingerprint="", folder=tmp_path)
  with pytest.warns(RuntimeWarning, match="plain jax.jit"):
    np.testing.assert_array_equal(f(jnp.arange(3.0)), [1.0, 3.0, 5.0])
  assert f.source == "jit" and not list(tmp_path.glob(f"*{program_cache.SUFFIX}"))


def test_clock_counts_the_program_cache_span_once():
  clock = compile_cache.CompileClock()
  try:
    with compile_cache.counted_as_compiling():
      jax.jit(lambda v: jnp.sin(v) * 3).trace(jnp.arange(5.0)).lower()   # jax's trace and lower events inside
    inside = clock.snapshot()
    jax.jit(lambda v: jnp.cos(v) * 3).trace(jnp.arange(5.0)).lower()
    after = clock.snapshot()
  finally:
    clock.stop()
  assert inside["program_cache_seconds"] > 0
  assert inside["seconds"] == inside["program_cache_seconds"]   # the span alone: its jax events not counted twice
  assert after["seconds"] > inside["seconds"] and after["program_cache_seconds"] == inside["program_cache_seconds"]
