"""The train step as two programs (`attn_har.train.train_programs`): the same function as the one-program step,
deterministic, compiled ahead without a later trace or compile, through the program cache."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from attn_har import compile_cache
from attn_har.train import program_cache, sharding, steps
from attn_har.train.optim import make_optimizer
from attn_har.train.schedule import make_schedule
from attn_har.train.train_programs import TrainPrograms


class TwoStreamTiny(nn.Module):
  """The model protocol at toy size with BatchNorm, dropout and two streams."""

  @nn.compact
  def __call__(self, batch, train):
    logits = {}
    for name in ("rgb", "flow"):
      x = nn.Conv(4, (3, 3), name=f"{name}_conv")(batch["image"])
      x = nn.BatchNorm(use_running_average=not train, name=f"{name}_bn")(x)
      x = nn.Dropout(0.3, deterministic=not train)(nn.relu(x))
      logits[name] = nn.Dense(3, name=f"{name}_head")(x.mean((1, 2)))
    fused = (logits["rgb"] + logits["flow"]) / 2
    return {"logits": fused, "features": fused, "streams": logits}


def _optim():
  return ml_collections.ConfigDict(dict(name="adamw", lr=0.01, momentum=0.9, nesterov=False, schedule="cosine",
                                        decay_rate=0.0, warmup_steps=2, end_lr_fraction=0.0, weight_decay=0.01,
                                        grad_clip_norm=1.0, skip_nonfinite_updates=False))


def _setup(folder=None):
  model = TwoStreamTiny()
  tx = make_optimizer(_optim(), make_schedule(_optim(), 20))
  x = jax.random.normal(jax.random.key(0), (8, 6, 6, 2))
  batch = {"image": x, "label": jnp.arange(8) % 3}
  repl = sharding.replicated(sharding.make_mesh())
  state = jax.device_put(steps.init_state(model, tx, jax.random.key(1), {"image": x[:1]}), repl)
  programs = TrainPrograms(model, tx, fingerprint="tiny", replicated=repl, stream_loss_weight=0.5,
                           label_smoothing=0.1)
  for p in (programs.grads, programs.update):
    p.folder = folder
  one = jax.jit(steps.make_train_step(model, tx, stream_loss_weight=0.5, label_smoothing=0.1))
  return state, batch, programs, one


def _copy(tree):
  return jax.tree.map(jnp.copy, tree)


def test_two_programs_compute_the_one_program_step():
  state, batch, programs, one = _setup()
  a, b = _copy(state), _copy(state)
  for _ in range(4):
    a, ma = programs(a, batch, jax.random.key(2))
    b, mb = one(b, batch, jax.random.key(2))
  assert jax.tree.structure(a) == jax.tree.structure(b) and set(ma) == set(mb)
  assert int(a["step"]) == 4
  # Equal up to float rounding: XLA fuses each program on its own (a few ulps per step).
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6), a, b)
  for k in ma:
    np.testing.assert_allclose(ma[k], mb[k], rtol=1e-5, atol=1e-6)
  # The steps moved the parameters, the optimiser's moments and the BatchNorm statistics.
  assert not np.allclose(a["params"]["rgb_conv"]["kernel"], state["params"]["rgb_conv"]["kernel"])
  assert not np.allclose(a["batch_stats"]["flow_bn"]["mean"], 0)
  assert float(ma["grad_norm"]) > 0


def test_two_programs_replay_bit_identically():
  state, batch, programs, _ = _setup()
  _, _, again, _ = _setup()
  a, ma = programs(_copy(state), batch, jax.random.key(2))
  b, mb = again(_copy(state), batch, jax.random.key(2))
  jax.tree.map(np.testing.assert_array_equal, (a, ma), (b, mb))


@pytest.mark.parametrize("use_cache", [True, False])
def test_compiled_ahead_the_first_call_neither_traces_nor_compiles(tmp_path, use_cache):
  state, batch, programs, one = _setup(tmp_path if use_cache else None)
  device = jax.devices()[0]
  batch = jax.device_put(batch, device)
  spec = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), batch)
  programs.compile_ahead(state, spec, jax.random.key(2))
  assert programs.source == ("exported" if use_cache else "jit")
  if use_cache:
    names = sorted(p.name.rsplit("-", 1)[0] for p in tmp_path.glob(f"*{program_cache.SUFFIX}"))
    assert names == ["train_grads", "train_update"]
  events = []
  listener = lambda event, seconds, **_: events.append(event)
  jax.monitoring.register_event_duration_secs_listener(listener)
  try:
    out = programs(_copy(state), batch, jax.random.key(2))
  finally:
    jax.monitoring.unregister_event_duration_listener(listener)
  assert not set(events) & set(compile_cache.COMPILE_EVENTS)
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6),
               out, one(_copy(state), batch, jax.random.key(2)))


def test_a_second_process_loads_both_programs(tmp_path):
  state, batch, first, _ = _setup(tmp_path)
  a = first(_copy(state), batch, jax.random.key(2))
  _, _, second, _ = _setup(tmp_path)
  b = second(_copy(state), batch, jax.random.key(2))
  assert first.source == "exported" and second.source == "loaded"
  jax.tree.map(np.testing.assert_array_equal, a, b)
