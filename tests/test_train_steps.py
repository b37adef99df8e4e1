"""Training pieces over a tiny model: schedules, Keras-style SGD, pure steps, metrics, checkpoint merging, and
data parallelism on 2 fake CPU devices (in a subprocess)."""

import os
import pathlib
import subprocess
import sys
import textwrap

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from attn_har.train import checkpointing, evaluate, steps
from attn_har.train.optim import make_optimizer
from attn_har.train.schedule import make_schedule

REPO = pathlib.Path(__file__).resolve().parents[1]


def _optim(**kw):
  c = ml_collections.ConfigDict(dict(name="sgd", lr=0.1, momentum=0.9, nesterov=False, schedule="inverse_time",
                                     decay_rate=1e-4, warmup_steps=0, end_lr_fraction=0.0, weight_decay=0.0,
                                     grad_clip_norm=0.0, skip_nonfinite_updates=False))
  c.update(kw)
  return c


def test_thesis_schedule_is_keras_inverse_time_decay():
  s = make_schedule(_optim(), 1000)
  for t in (0, 1, 100, 78200):
    assert float(s(t)) == pytest.approx(0.1 / (1 + 1e-4 * t), rel=1e-6)
  cos = make_schedule(_optim(schedule="cosine", warmup_steps=10, end_lr_fraction=0.1), 110)
  assert float(cos(0)) == pytest.approx(0.01)            # warm-up ramp (t + 1) / w
  assert float(cos(10)) == pytest.approx(0.1)
  assert float(cos(110)) == pytest.approx(0.01, rel=1e-5)  # end_lr_fraction * lr


def test_sgd_has_keras_momentum_semantics():
  tx = make_optimizer(_optim(decay_rate=0.5), make_schedule(_optim(decay_rate=0.5), 10))
  w = jnp.array([1.0])
  state = tx.init(w)
  v, w_ref = 0.0, 1.0
  for t, g in enumerate([0.5, -1.0, 2.0]):
    upd, state = tx.update(jnp.array([g]), state, w)
    w = optax.apply_updates(w, upd)
    v = 0.9 * v - (0.1 / (1 + 0.5 * t)) * g               # v <- m v - lr_t g ; w <- w + v
    w_ref += v
    assert float(w[0]) == pytest.approx(w_ref, rel=1e-6)


class Tiny(nn.Module):
  """The model protocol at toy size: reads batch['image'], returns {'logits', 'features'}."""

  @nn.compact
  def __call__(self, batch, train):
    x = nn.Conv(4, (3, 3))(batch["image"])
    x = nn.BatchNorm(use_running_average=not train)(x)
    x = nn.Dropout(0.3, deterministic=not train)(nn.relu(x))
    return {"logits": nn.Dense(3)(x.mean((1, 2))), "features": x.mean((1, 2))}


def _setup():
  model = Tiny()
  tx = make_optimizer(_optim(lr=0.05), make_schedule(_optim(lr=0.05), 100))
  x = jax.random.normal(jax.random.key(0), (8, 6, 6, 2))
  batch = {"image": x, "label": jnp.arange(8) % 3}
  state = steps.init_state(model, tx, jax.random.key(1), {"image": x[:1]})
  step = jax.jit(steps.make_train_step(model, tx), donate_argnums=0)
  return state, batch, step


def test_train_step_is_pure_deterministic_and_learns():
  state, batch, step = _setup()
  copy = jax.tree.map(jnp.array, state)
  s1, m1 = step(state, batch, jax.random.key(2))
  s2, m2 = step(copy, batch, jax.random.key(2))
  assert int(s1["step"]) == 1 and float(m1["loss"]) == float(m2["loss"])
  jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, b), s1["params"], s2["params"])
  # The running BatchNorm statistics moved; the dropout key depends on the step.
  assert not np.allclose(s1["batch_stats"]["BatchNorm_0"]["mean"], 0)
  first = float(m1["loss"])
  for _ in range(30):
    s1, m1 = step(s1, batch, jax.random.key(2))
  assert float(m1["loss"]) < first
  assert 0.0 <= float(m1["top1"]) <= float(m1["top5"]) <= 1.0


def test_score_metrics_counts():
  logits = np.array([[3, 1, 0], [0, 2, 1], [0, 2, 1], [1, 0, 3]], np.float32)
  labels = np.array([0, 2, 2, 2])
  index = np.array([0, 1, 1, 2])           # video 1 has two clips
  r = evaluate.score_metrics(logits, labels, index, 3)
  assert r["clip"]["top1"] == 0.5 and r["clip"]["count"] == 4
  assert r["video"]["count"] == 3 and r["video"]["top1"] == pytest.approx(2 / 3)
  assert r["clip"]["top5"] == 1.0
  conf = np.array(r["confusion"])
  assert conf.sum() == 3 and conf[2, 1] == 1 and conf[0, 0] == 1 and conf[2, 2] == 1
  assert np.isnan(r["per_class"][1]) and r["per_class"][0] == 1.0 and r["per_class"][2] == 0.5


def test_merge_params_names_what_it_skips():
  target = {"rgb": {"frame": {"conv": {"kernel": np.zeros((3, 3, 3, 4))}, "head": {"kernel": np.zeros((4, 5))}}},
            "flow": {"frame": {"conv": {"kernel": np.zeros((3, 3, 6, 4))}}}}
  source = {"frame": {"conv": {"kernel": np.ones((3, 3, 3, 4))}, "head": {"kernel": np.ones((4, 7))},
                      "extra": {"bias": np.ones(2)}}}
  merged, skipped, unused = checkpointing.merge_params(target, source, ("rgb",))
  assert merged["rgb"]["frame"]["conv"]["kernel"].sum() == 3 * 3 * 3 * 4
  assert merged["flow"]["frame"]["conv"]["kernel"].sum() == 0
  assert skipped == ["rgb/frame/head/kernel"]
  assert sorted(unused) == ["rgb/frame/extra/bias (absent)", "rgb/frame/head/kernel (shape)"]


TWO_DEVICE_SCRIPT = textwrap.dedent("""
    import jax, jax.numpy as jnp, numpy as np
    import sys; sys.path.insert(0, {repo!r}); sys.path.insert(0, {tests!r})
    from test_train_steps import _setup
    from attn_har.train import sharding
    assert len(jax.devices()) == 2, jax.devices()
    out = []
    for devices in (jax.devices()[:1], jax.devices()):
      mesh = sharding.make_mesh(devices)
      state, batch, _ = _setup()
      from attn_har.train import steps
      from test_train_steps import Tiny
      from attn_har.train.optim import make_optimizer
      from attn_har.train.schedule import make_schedule
      from test_train_steps import _optim
      tx = make_optimizer(_optim(lr=0.05), make_schedule(_optim(lr=0.05), 100))
      repl = sharding.replicated(mesh)
      step = jax.jit(steps.make_train_step(Tiny(), tx), donate_argnums=0,
                     out_shardings=(repl, repl))
      state = jax.device_put(state, repl)
      batch = sharding.shard_batch(batch, sharding.data_sharding(mesh))
      assert len(batch["image"].sharding.device_set) == len(devices)
      for _ in range(2):
        state, m = step(state, batch, jax.random.key(2))
      out.append((float(m["loss"]), jax.device_get(state["params"])))
    (l1, p1), (l2, p2) = out
    assert abs(l1 - l2) < 1e-5, (l1, l2)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5), p1, p2)
    print("OK", l1, l2)
""")


def test_two_fake_devices_match_one_device():
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu")
  script = TWO_DEVICE_SCRIPT.format(repo=str(REPO), tests=str(REPO / "tests"))
  r = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
  assert r.returncode == 0, r.stderr[-3000:]
  assert r.stdout.startswith("OK")


def test_bn_recalibration_recovers_batch_statistics_exactly():
  from attn_har.train.bn_calibration import recalibrate
  state, batch, step = _setup()
  batch2 = {"image": batch["image"] * 2.0 + 1.0, "label": batch["label"]}
  new = recalibrate(step, jax.tree.map(jnp.array, state), [batch, batch2], jax.random.key(2))
  jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, b), new["params"], state["params"])

  def batch_stats_of(b):   # flax BatchNorm momentum 0.99: one step from zero running stats gives 0.01 * s
    s = jax.tree.map(jnp.array, state)
    s["batch_stats"] = jax.tree.map(jnp.zeros_like, s["batch_stats"])
    return jax.tree.map(lambda a: a / 0.01, step(s, b, jax.random.key(2))[0]["batch_stats"])

  expected = jax.tree.map(lambda a, b: (a + b) / 2, batch_stats_of(batch), batch_stats_of(batch2))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5), new["batch_stats"], expected)
  assert float(jnp.abs(new["batch_stats"]["BatchNorm_0"]["var"] - 1).max()) > 0.01   # moved from the init


def test_video_scores_average_stream_softmax_per_video_and_drop_padding():
  from attn_har.train import evaluate
  rgb = np.log(np.array([[0.2, 0.8], [0.6, 0.4], [0.5, 0.5], [0.1, 0.9], [0.9, 0.1], [1.0, 1e-9]]))
  batch = {"label": np.array([1, 1, 0, 0, 0, 0]), "index": np.array([3, 3, 1, 1, 1, 1]),
           "valid": np.array([1, 1, 1, 1, 1, 0])}
  collected = evaluate.collect(lambda v, b: {"logits": rgb, "streams": {"rgb": rgb, "flow": rgb[:, ::-1]}}, None,
                               [batch])
  out = evaluate.video_scores(collected)
  # video 1 = rows 2, 3, 4 (row 5 is padding), video 3 = rows 0, 1
  np.testing.assert_allclose(out["streams"]["rgb"], [[0.5, 0.5], [0.4, 0.6]], atol=1e-7)
  np.testing.assert_allclose(out["streams"]["flow"], [[0.5, 0.5], [0.6, 0.4]], atol=1e-7)
  np.testing.assert_array_equal(out["label"], [0, 1])
  np.testing.assert_array_equal(out["index"], [1, 3])


class DropoutOnly(nn.Module):
  """Logits = Dense(dropout(x)): the loss on a fixed batch changes only with the dropout mask."""

  @nn.compact
  def __call__(self, batch, train):
    return {"logits": nn.Dense(3)(nn.Dropout(0.5, deterministic=not train)(batch["x"]))}


def test_consecutive_steps_on_one_batch_use_different_dropout_masks():
  model, tx = DropoutOnly(), optax.sgd(0.0)   # lr 0: parameters never change, only the dropout key does
  x = jax.random.normal(jax.random.key(0), (16, 32))
  batch = {"x": x, "label": jnp.arange(16) % 3}
  state = steps.init_state(model, tx, jax.random.key(1), {"x": x[:1]})
  step = jax.jit(steps.make_train_step(model, tx))
  s1, m1 = step(state, batch, jax.random.key(2))
  s2, m2 = step(s1, batch, jax.random.key(2))
  jax.tree.map(np.testing.assert_array_equal, s1["params"], s2["params"])
  assert float(m1["loss"]) != float(m2["loss"])
  _, again = step(state, batch, jax.random.key(2))   # ... and step t's mask is a function of (rng, t) alone
  assert float(again["loss"]) == float(m1["loss"])


class TwoHeads(nn.Module):
  """A two-stream-shaped model: {'logits': fused, 'streams': {'rgb', 'flow'}} from two linear streams."""

  @nn.compact
  def __call__(self, batch, train):
    x = batch["x"]
    rgb, flow = nn.Dense(3, name="rgb")(x), nn.Dense(3, name="flow")(x)
    return {"logits": 0.5 * (rgb + flow), "streams": {"rgb": rgb, "flow": flow}}


def _ce(logits, labels, smoothing=0.0):
  logits = np.asarray(logits, np.float64)
  logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  target = np.eye(logits.shape[-1])[labels] * (1 - smoothing) + smoothing / logits.shape[-1]
  return float(-(target * logp).sum(-1).mean())


@pytest.mark.parametrize("weight,smoothing", [(1.0, 0.0), (0.5, 0.1), (0.0, 0.0)])
def test_two_stream_loss_adds_the_weighted_mean_stream_loss(weight, smoothing):
  model, tx = TwoHeads(), optax.sgd(0.0)
  x = jax.random.normal(jax.random.key(0), (6, 4))
  labels = jnp.array([0, 1, 2, 2, 1, 0])
  state = steps.init_state(model, tx, jax.random.key(1), {"x": x[:1]})
  step = jax.jit(steps.make_train_step(model, tx, stream_loss_weight=weight,
                                       label_smoothing=smoothing))
  _, m = step(state, {"x": x, "label": labels}, jax.random.key(2))
  out = model.apply({"params": state["params"]}, {"x": x}, False)
  lab = np.asarray(labels)
  fused, rgb, flow = (_ce(out["logits"], lab, smoothing), _ce(out["streams"]["rgb"], lab, smoothing),
                      _ce(out["streams"]["flow"], lab, smoothing))
  assert float(m["loss"]) == pytest.approx(fused + weight * (rgb + flow) / 2, rel=1e-5)
  assert float(m["rgb_loss"]) == pytest.approx(rgb, rel=1e-5)
  assert float(m["flow_loss"]) == pytest.approx(flow, rel=1e-5)


def test_label_smoothing_values():
  logits = jnp.array([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
  labels = jnp.array([0, 2])
  for smoothing in (0.0, 0.1, 0.5):
    got = np.asarray(steps.cross_entropy(logits, labels, smoothing))
    for row in range(2):
      assert got[row] == pytest.approx(_ce(logits[row:row + 1], np.asarray(labels[row:row + 1]), smoothing), rel=1e-6)
  # Uniform logits: the loss is log K whatever the smoothing; confident logits pay more with smoothing.
  assert np.asarray(steps.cross_entropy(logits, labels, 0.3))[1] == pytest.approx(np.log(3), rel=1e-6)
  assert float(steps.cross_entropy(logits, labels, 0.3)[0]) > float(steps.cross_entropy(logits, labels, 0.0)[0])
