"""CBAM with hand-set weights against a numpy reference of Woo et al.'s equations (both variants).

M_c = sigmoid(MLP(mean_hw F) + MLP(max_hw F)), F' = M_c * F, M_s = sigmoid(conv([mean_c F'; max_c F']) (+ BN)),
F'' = M_s * F'; 'thesis' returns F + F'' (conv with bias, no BN), 'paper' returns F'' (conv without bias, then
BatchNorm). The input has a few large spikes so that mean and max pooling differ a lot: dropping either max branch
changes the output far beyond the tolerance. The sown maps must equal the reference's M_s and M_c.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attn_har.attention import CBAM
from attn_har.layers import keras

B, H, W, C = 2, 5, 6, 8
R, K = 4, 3          # hidden width 8 / 4 = 2; a 3 x 3 spatial kernel
EPS = keras.RESNET_BN["epsilon"]
MOMENTUM = keras.RESNET_BN["momentum"]


def _sigmoid(v):
  return 1.0 / (1.0 + np.exp(-v))


def _inputs(seed=0):
  """Small noise plus a few large positive spikes: max pooling (over space or channels) is far from the mean."""
  rng = np.random.default_rng(seed)
  x = rng.normal(0.0, 0.5, (B, H, W, C))
  for b, i, j, c, v in [(0, 1, 2, 0, 6.0), (0, 3, 4, 5, 5.0), (1, 0, 0, 3, 7.0), (1, 4, 1, 6, 4.0),
                        (1, 2, 5, 1, 5.5), (0, 4, 0, 7, 4.5)]:
    x[b, i, j, c] = v
  return x.astype(np.float32)


def _weights(variant, seed=1):
  """Hand-set parameters (and BN statistics for 'paper'), float32 numpy, in the module's own tree layout."""
  rng = np.random.default_rng(seed)
  hidden = C // R
  params = {
      "mlp_hidden": {"kernel": rng.normal(0, 0.6, (C, hidden)), "bias": np.array([0.1, -0.2])},
      "mlp_out": {"kernel": rng.normal(0, 0.6, (hidden, C)), "bias": rng.normal(0, 0.1, (C,))},
      # asymmetric kernel: a flipped (true) convolution or swapped input channels would give other numbers
      "spatial_conv": {"kernel": rng.normal(0, 0.5, (K, K, 2, 1))},
  }
  stats = {}
  if variant == "thesis":
    params["spatial_conv"]["bias"] = np.array([0.3])
  else:
    params["spatial_bn"] = {"scale": np.array([1.7]), "bias": np.array([-0.4])}
    stats = {"spatial_bn": {"mean": np.array([0.25]), "var": np.array([2.5])}}
  cast = lambda t: jax.tree_util.tree_map(lambda a: np.asarray(a, np.float32), t)
  return cast(params), cast(stats)


def _mlp(p, v):
  h = np.maximum(v @ p["mlp_hidden"]["kernel"] + p["mlp_hidden"]["bias"], 0.0)
  return h @ p["mlp_out"]["kernel"] + p["mlp_out"]["bias"]


def _conv_same(x, kernel, bias=None):
  """Cross-correlation with 'SAME' zero padding: x [B, H, W, Ci], kernel [k, k, Ci, Co] (Flax's nn.Conv)."""
  k = kernel.shape[0]
  pad = k // 2
  xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
  out = np.zeros(x.shape[:3] + (kernel.shape[-1],))
  for di in range(k):
    for dj in range(k):
      out += xp[:, di:di + x.shape[1], dj:dj + x.shape[2], :] @ kernel[di, dj]
  return out if bias is None else out + bias


def _reference(x, params, stats, variant, train=False):
  """(output, M_s [B, H, W], M_c [B, C], spatial-conv output before any BN [B, H, W, 1]) in float64."""
  x = x.astype(np.float64)
  p = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), params)
  m_c = _sigmoid(_mlp(p, x.mean(axis=(1, 2))) + _mlp(p, x.max(axis=(1, 2))))
  refined = x * m_c[:, None, None, :]
  pooled = np.concatenate([refined.mean(-1, keepdims=True), refined.max(-1, keepdims=True)], axis=-1)
  conv = s = _conv_same(pooled, p["spatial_conv"]["kernel"], p["spatial_conv"].get("bias"))
  if variant == "paper":
    if train:
      mean, var = s.mean(axis=(0, 1, 2)), s.var(axis=(0, 1, 2))
    else:
      mean, var = stats["spatial_bn"]["mean"], stats["spatial_bn"]["var"]
    s = (s - mean) / np.sqrt(var + EPS) * p["spatial_bn"]["scale"] + p["spatial_bn"]["bias"]
  m_s = _sigmoid(s[..., 0])
  out = refined * m_s[..., None]
  return (x + out if variant == "thesis" else out), m_s, m_c, conv


def _variables(module, x, variant):
  """The module's variable tree (from `jax.eval_shape`) filled with `_weights`; the layouts must agree."""
  shapes = jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0), jnp.asarray(x), False))
  params, stats = _weights(variant)
  same_layout = lambda a, b: jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b) and all(
      u.shape == v.shape for u, v in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))
  assert same_layout(shapes["params"], params), jax.tree_util.tree_map(lambda a: a.shape, shapes["params"])
  if variant == "paper":
    assert same_layout(shapes["batch_stats"], stats), shapes["batch_stats"]
    return {"params": params, "batch_stats": stats}
  assert "batch_stats" not in shapes
  return {"params": params}


def _apply(module, variables, x, train=False):
  mutable = ["intermediates", "batch_stats"] if train else ["intermediates"]
  fn = jax.jit(lambda v, x: module.apply(v, x, train, mutable=mutable))
  y, state = fn(variables, jnp.asarray(x))
  return np.asarray(y), jax.tree_util.tree_map(np.asarray, state)


@pytest.mark.parametrize("variant", ["thesis", "paper"])
def test_cbam_matches_numpy_reference(variant):
  x = _inputs()
  module = CBAM(reduction_ratio=R, kernel_size=K, variant=variant)
  variables = _variables(module, x, variant)
  y, state = _apply(module, variables, x)
  want, m_s, m_c, _ = _reference(x, variables["params"], variables.get("batch_stats"), variant)

  # The two max branches matter on this input: without either, the reference output moves by far more than atol.
  assert np.abs(x.max(axis=(1, 2)) - x.mean(axis=(1, 2))).max() > 3.0
  np.testing.assert_allclose(state["intermediates"]["channel_attention"][0], m_c, rtol=1e-5, atol=1e-6,
                             err_msg="channel map M_c")
  np.testing.assert_allclose(state["intermediates"]["attention"][0], m_s, rtol=1e-5, atol=1e-6,
                             err_msg="spatial map M_s")
  np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5, err_msg="CBAM output")


@pytest.mark.parametrize("variant", ["thesis", "paper"])
def test_reference_is_sensitive_to_both_max_branches(variant):
  """Guards the test input: each ablated reference differs from the full one by far more than the tolerance."""
  x = _inputs().astype(np.float64)
  params, stats = _weights(variant)
  full, m_s, m_c, _ = _reference(x, params, stats, variant)
  p = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), params)
  no_max_c = _sigmoid(_mlp(p, x.mean(axis=(1, 2))))  # the channel gate without its max-pool branch
  assert np.abs(no_max_c - m_c).max() > 0.1
  refined = x * m_c[:, None, None, :]
  mean_only = np.concatenate([refined.mean(-1, keepdims=True)] * 2, axis=-1)
  s = _conv_same(mean_only, p["spatial_conv"]["kernel"], p["spatial_conv"].get("bias"))
  if variant == "paper":
    s = (s - stats["spatial_bn"]["mean"]) / np.sqrt(stats["spatial_bn"]["var"] + EPS) * p["spatial_bn"]["scale"] \
        + p["spatial_bn"]["bias"]
  assert np.abs(_sigmoid(s[..., 0]) - m_s).max() > 0.1


def test_cbam_paper_train_mode_uses_batch_statistics_and_updates_running_averages():
  x = _inputs(seed=3)
  module = CBAM(reduction_ratio=R, kernel_size=K, variant="paper")
  variables = _variables(module, x, "paper")
  y, state = _apply(module, variables, x, train=True)
  want, m_s, m_c, s = _reference(x, variables["params"], variables["batch_stats"], "paper", train=True)
  np.testing.assert_allclose(state["intermediates"]["channel_attention"][0], m_c, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(state["intermediates"]["attention"][0], m_s, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-5)
  old = variables["batch_stats"]["spatial_bn"]
  new = state["batch_stats"]["spatial_bn"]
  np.testing.assert_allclose(new["mean"], MOMENTUM * old["mean"] + (1 - MOMENTUM) * s.mean((0, 1, 2)), rtol=1e-5)
  np.testing.assert_allclose(new["var"], MOMENTUM * old["var"] + (1 - MOMENTUM) * s.var((0, 1, 2)), rtol=1e-5)
