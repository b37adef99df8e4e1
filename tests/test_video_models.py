"""Video models over a tiny per-frame module: lifting, temporal models, two-stream fusion, the linear SVM."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import ml_collections
import pytest

from attn_har.models.build import TEMPORAL_MODELS
from attn_har.models.fusion import FUSIONS
from attn_har.models.lift import LIFT_AXIS, lift
from attn_har.models.two_stream import TwoStream
from attn_har.registry import lookup
from attn_har.train.steps import cross_entropy

K = 4


class TinyFrame(nn.Module):
  """Conv-BN-ReLU-GAP-Dense with a sown map; `features` shares the trunk."""
  axis_name: str | None = None

  def trunk(self, x, train):
    x = nn.Conv(6, (3, 3), name="conv")(x)
    x = nn.BatchNorm(use_running_average=not train, axis_name=self.axis_name, name="bn")(x)
    x = nn.relu(x)
    self.sow("intermediates", "attention", jax.nn.sigmoid(x.mean(-1)))
    return x.mean((1, 2))

  @nn.compact
  def __call__(self, x, train):
    return nn.Dense(K, name="head")(self.trunk(x, train))

  @nn.compact
  def features(self, x, train):
    return self.trunk(x, train)

  @nn.compact
  def outputs(self, x, train):
    f = self.trunk(x, train)
    return {"logits": nn.Dense(K, name="head")(f), "features": f}


def _clip(seed, t=3, c=3, b=2):
  return jax.random.normal(jax.random.key(seed), (b, t, 8, 8, c))


class Lift(nn.Module):
  frame: nn.Module
  mode: str

  def __call__(self, x, train):
    return lift(self.frame, x, train, "__call__", self.mode)


def test_vmap_and_fold_lifts_agree_and_share_2d_parameters():
  x = _clip(0)
  fold = Lift(TinyFrame(), "fold")
  vm = Lift(TinyFrame(axis_name=LIFT_AXIS), "vmap")
  v = fold.init(jax.random.key(1), x, False)
  v_vm = vm.init(jax.random.key(1), x, False)
  assert jax.tree.structure(v) == jax.tree.structure(v_vm)
  frame_vars = TinyFrame().init(jax.random.key(1), x[:, 0], False)
  assert jax.tree.map(jnp.shape, v["params"]["frame"]) == jax.tree.map(jnp.shape, frame_vars["params"])
  # Same numbers in training mode (BatchNorm statistics over B*T) and equal running-stat updates.
  y1, s1 = fold.apply(v, x, True, mutable=["batch_stats", "intermediates"])
  y2, s2 = vm.apply(v, x, True, mutable=["batch_stats", "intermediates"])
  np.testing.assert_allclose(y1, y2, atol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), s1["batch_stats"], s2["batch_stats"])
  # Per-frame outputs equal the 2-D model applied frame by frame (inference mode).
  y = fold.apply(v, x, False)
  for t in range(x.shape[1]):
    np.testing.assert_allclose(y[:, t], TinyFrame().apply({k: v[k]["frame"] for k in v}, x[:, t], False),
                               atol=1e-5)
  # Sown maps stack on the time axis under vmap.
  maps = s2["intermediates"]["frame"]["attention"][0]
  assert maps.shape == (2, 3, 8, 8) and float(maps.min()) >= 0 and float(maps.max()) <= 1


def test_lift_rejects_bad_mode_and_rank():
  with pytest.raises(ValueError, match="fold"):
    Lift(TinyFrame(), "scan").init(jax.random.key(0), _clip(0), False)
  with pytest.raises(ValueError, match="B, T"):
    Lift(TinyFrame(), "fold").init(jax.random.key(0), jnp.zeros((2, 3)), False)


def _stream(name, mode="fold", input_key="rgb"):
  cls = TEMPORAL_MODELS[name]
  kw = dict(frame=TinyFrame(), lift_mode=mode, input_key=input_key)
  if name == "average":
    return cls(**kw)
  if name == "lstm":
    return cls(num_classes=K, hidden=5, num_layers=1, dropout_rate=0.5, **kw)
  return cls(num_classes=K, hidden=7, dropout_rate=0.5, **kw)


@pytest.mark.parametrize("name", sorted(TEMPORAL_MODELS))
def test_video_models_shapes_jit_and_dropout(name):
  m = _stream(name, input_key="flow")
  assert m.inputs == ("flow",) and list(m.frame_models()) == ["flow"]
  x = _clip(2, t=4)
  v = m.init({"params": jax.random.key(0), "dropout": jax.random.key(1)}, {"flow": x}, False)
  out = jax.jit(lambda v, x: m.apply(v, {"flow": x, "label": 0}, False))(v, x)
  y, f = out["logits"], out["features"]
  assert y.shape == (2, K) and y.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(y)))
  assert f.ndim == 2 and f.shape[0] == 2 and f.dtype == jnp.float32
  with pytest.raises(KeyError, match="flow"):
    m.apply(v, {"rgb": x}, False)
  # Clips with permuted frames: the frame average is order-free, the LSTM is not.
  xp = x[:, ::-1]
  yp = m.apply(v, {"flow": xp}, False)["logits"]
  if name in ("average", "attention_pool"):
    np.testing.assert_allclose(y, yp, atol=1e-5)
  else:
    assert not np.allclose(y, yp, atol=1e-5)
  if name == "average":   # S&Z: the clip score is the mean of the frames' softmax scores (log of it is returned)
    per_frame = Lift(TinyFrame(), "fold").apply({k: {"frame": v[k]["frame"]} for k in v}, x, False)
    np.testing.assert_allclose(np.exp(y), jax.nn.softmax(per_frame).mean(1), atol=1e-6)
    np.testing.assert_allclose(np.exp(y).sum(-1), 1.0, atol=1e-6)     # log-probabilities: softmax(y) == exp(y)
    assert not np.allclose(jax.nn.softmax(y), jax.nn.softmax(per_frame.mean(1)), atol=1e-4)  # not mean logits
    # Cross-entropy on it is the negative log of the averaged probability of the label.
    labels = jnp.asarray([1, 3])
    np.testing.assert_allclose(cross_entropy(y, labels), -np.log(np.exp(y)[np.arange(2), labels]), rtol=1e-5)
    # The same rule in training (BatchNorm in training mode); consensus='logits' is TSN's mean of the logits.
    y_train, _ = m.apply(v, {"flow": x}, True, mutable=["batch_stats"])
    per_frame_train, _ = Lift(TinyFrame(), "fold").apply({k: {"frame": v[k]["frame"]} for k in v}, x, True,
                                                         mutable=["batch_stats"])
    np.testing.assert_allclose(np.exp(y_train["logits"]), jax.nn.softmax(per_frame_train).mean(1), atol=1e-6)
    tsn = m.clone(consensus="logits")
    np.testing.assert_allclose(tsn.apply(v, {"flow": x}, False)["logits"], per_frame.mean(1), atol=1e-5)
    assert TEMPORAL_MODELS["average"].settings(ml_collections.ConfigDict({"frame_consensus": "logits"})) == {
        "consensus": "logits"}
    with pytest.raises(ValueError, match="frame_consensus"):
      m.clone(consensus="max").apply(v, {"flow": x}, False)
  if name == "attention_pool":   # the temporal weights are a distribution over the frames
    _, inter = m.apply(v, {"flow": x}, False, mutable=["intermediates"])
    a = inter["intermediates"]["temporal_attention"][0]
    assert a.shape == (2, 4)
    np.testing.assert_allclose(a.sum(1), 1.0, atol=1e-6)
    assert float(a.min()) > 0


def _fusion(name, weights=(1.0, 2.0)):
  """The fusion module of `name`, built as `build_model` builds it from a model config section."""
  cls = lookup(FUSIONS, name, "fusion")
  return cls(**cls.settings(ml_collections.ConfigDict({"num_classes": K, "fusion_weights": weights})))


def _two_stream(fusion, weights=(1.0, 2.0)):
  return TwoStream(rgb=_stream("average"), flow=_stream("average", input_key="flow"), fusion=_fusion(fusion, weights))


@pytest.mark.parametrize("fusion", sorted(FUSIONS))
def test_two_stream_fusions(fusion):
  m = _two_stream(fusion)
  inputs = {"rgb": _clip(4), "flow": _clip(5, c=4)}
  v = m.init(jax.random.key(0), inputs, False)
  assert {"rgb", "flow"} <= set(v["params"])
  assert m.inputs == ("rgb", "flow") and m.post_hoc_svm == (fusion == "svm")
  assert {s: path for s, (path, _) in m.frame_models().items()} == {"rgb": ("rgb", "frame"), "flow": ("flow", "frame")}
  out = m.apply(v, inputs, False)
  assert out["features"].shape == (2, 12)
  p = jax.nn.softmax(out["logits"])
  np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-5)
  pr, pf = jax.nn.softmax(out["streams"]["rgb"]), jax.nn.softmax(out["streams"]["flow"])
  if fusion in ("average", "svm"):
    np.testing.assert_allclose(p, (pr + pf) / 2, atol=1e-5)
  elif fusion == "weighted":
    np.testing.assert_allclose(p, (pr + 2 * pf) / 3, atol=1e-5)
  else:
    assert set(v["params"]["fusion"]) == {"dense"}
    # Initialised to average log-probabilities: same ranking as the mean of the log-softmax scores.
    mean_logp = (jax.nn.log_softmax(out["streams"]["rgb"]) + jax.nn.log_softmax(out["streams"]["flow"])) / 2
    np.testing.assert_allclose(jax.nn.log_softmax(out["logits"]), jax.nn.log_softmax(mean_logp), atol=1e-5)
  # The input dict is not mutated and a missing stream is named.
  assert set(inputs) == {"rgb", "flow"}
  with pytest.raises(KeyError, match="flow"):
    m.apply(v, {"rgb": inputs["rgb"]}, False)


def test_weighted_fusion_rejects_bad_weights():
  with pytest.raises(ValueError, match="weights"):
    _two_stream("weighted", (1.0, -1.0)).init(jax.random.key(0), {"rgb": _clip(0), "flow": _clip(1)}, False)
  with pytest.raises(KeyError, match="average"):
    _fusion("max")
