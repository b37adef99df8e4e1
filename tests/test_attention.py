"""Attention modules on their own, at tiny sizes: registry-driven properties plus each mechanism's math."""

import concurrent.futures
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from attn_har.attention import ATTENTION, CBAM, AttentionGate, ResidualAttention, normalize
from attn_har.attention.gate import GateEstimator
from attn_har.backbones import attach
from attn_har.backbones.mobilenet_v2 import InvertedResidual

B = 2
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


# Fast XLA:CPU compilation for tiny test graphs (per call, no global flags), cheap RBG random bits, numpy inputs.
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def _key(seed):
  return jax.random.key(seed, impl="rbg")


def _normal(seed, shape):
  return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def _fast(fn, *args):
  """fn(*args) under jit, compiled with FAST_COMPILE (op-by-op execution compiles every op and is slower)."""
  return jax.jit(fn).lower(*args).compile(FAST_COMPILE)(*args)


def _inputs():
  taps = [_normal(0, (B, 8, 8, 8)), _normal(1, (B, 4, 4, 16)), _normal(2, (B, 2, 2, 24))]
  out = jnp.abs(_normal(3, (B, 2, 2, 32)))
  x = _normal(4, (B, 8, 8, 16))
  return taps, out, x


def _module(name, variant, dtype):
  """The registered module, built as a model would build it (trunk modules through `attach`)."""
  cls = ATTENTION[name]
  if cls.placement == "head":
    return cls(num_classes=5, num_scales=3, variant=variant, dtype=dtype)
  unit = functools.partial(InvertedResidual, 16, 1, 6, depthwise_impl="grouped", dtype=dtype)
  # Last of 3 attachment points (residual attention: 0 shortcuts), the defaults of a MobileNetV2 host.
  return attach.Attachment(cls, variant, label=name).trunk("mobilenet", 2, 3, unit=unit, bn_axis_name=None,
                                                           dtype=dtype, param_dtype=jnp.float32)()


def _maps(intermediates):
  flat = traverse_util.flatten_dict(intermediates)
  return {"/".join(k[:-1]): v[0] for k, v in flat.items() if k[-1] == "attention"}


def _main_output(y):
  """A head's logits (heads return {'logits', 'features'}), or a trunk module's feature map."""
  return y["logits"] if isinstance(y, dict) else y


@functools.lru_cache(maxsize=None)
def _run(name, variant, dtype_name):
  """jit(init + value_and_grad) in train mode (forward only for bfloat16); returns (output, grads, maps)."""
  module = _module(name, variant, DTYPES[dtype_name])
  taps, out, x = _inputs()
  args = (taps, out) if module.placement == "head" else (x,)
  rngs = {"params": _key(1), "dropout": _key(2)}

  def step(args):
    variables = module.init(rngs, *args, False)
    if dtype_name != "float32":  # forward only: gradients are checked in float32
      y, state = module.apply(variables, *args, True, rngs=rngs, mutable=["batch_stats", "intermediates"])
      return _main_output(y), {}, _maps(state["intermediates"])

    def loss(params):
      y, state = module.apply({**variables, "params": params}, *args, True, rngs=rngs,
                              mutable=["batch_stats", "intermediates"])
      y = _main_output(y)
      return jnp.sum(jnp.sin(y.astype(jnp.float32))), (y, state["intermediates"])

    (_, (y, inter)), grads = jax.value_and_grad(loss, has_aux=True)(variables["params"])
    return y, grads, _maps(inter)

  compiled = jax.jit(step).lower(args).compile(FAST_COMPILE)
  return jax.tree_util.tree_map(np.asarray, compiled(args))


REGISTRY_CASES = [(n, v, d) for n in ATTENTION for v in ("paper", "thesis") for d in DTYPES]


@functools.lru_cache(maxsize=None)
def _all_runs():
  """Every registry case, compiled two at a time (XLA compilation releases the GIL)."""
  with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
    list(pool.map(lambda case: _run(*case), REGISTRY_CASES))


@pytest.mark.parametrize("name,variant,dtype", REGISTRY_CASES)
def test_registered_module_sows_float32_maps_and_has_finite_gradient(name, variant, dtype):
  _all_runs()
  y, grads, maps = _run(name, variant, dtype)
  assert maps, f"{name} sowed no 'attention' map"
  for path, a in maps.items():
    assert a.dtype == np.float32, path
    assert np.all(np.isfinite(a)), path
  if dtype == "float32":
    leaves = jax.tree_util.tree_leaves(grads)
    assert all(np.all(np.isfinite(g)) for g in leaves)
    assert np.mean([np.any(g != 0) for g in leaves]) > 0.9
  assert np.all(np.isfinite(y.astype(np.float32)))
  if ATTENTION[name].placement == "head":
    assert y.shape == (B, 5) and y.dtype == np.float32
  else:
    assert y.shape == (B, 8, 8, 16)


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("variant", ["paper", "thesis"])
def test_l2pa_maps_sum_to_one(variant, dtype):
  _, _, maps = _run("l2pa", variant, dtype)
  assert len(maps) == 3
  for a in maps.values():
    np.testing.assert_allclose(a.sum(axis=(1, 2)), 1.0, atol=1e-5)
    assert np.all(a >= 0)


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("variant", ["paper", "thesis"])
@pytest.mark.parametrize("name", ["gate", "gate_grid"])
def test_gate_maps_nonnegative_and_sum_to_one_under_pseudo_softmax(name, variant, dtype):
  _, _, maps = _run(name, variant, dtype)
  assert len(maps) == 3
  for a in maps.values():
    assert np.all(a >= 0)
    np.testing.assert_allclose(a.sum(axis=(1, 2)), 1.0, atol=1e-5)


def test_thesis_gate_output_is_log_of_averaged_probabilities():
  y, _, _ = _run("gate", "thesis", "float32")
  np.testing.assert_allclose(np.exp(y).sum(-1), 1.0, atol=1e-5)


@pytest.mark.parametrize("normalization,check", [
    ("sigmoid", lambda a: np.all((a >= 0) & (a <= 1))),
    ("softmax", lambda a: np.allclose(a.sum(axis=(1, 2)), 1.0, atol=1e-5)),
    ("pseudo_softmax", lambda a: np.allclose(a.sum(axis=(1, 2)), 1.0, atol=1e-5) and np.all(a >= 0)),
])
@pytest.mark.parametrize("psi_channels", [1, 4])
@pytest.mark.parametrize("grid", [False, True])
def test_gate_estimator_normalisations(normalization, check, psi_channels, grid):
  gate = GateEstimator(inter_channels=4, psi_channels=psi_channels, normalization=normalization, grid=grid)
  x = _normal(3, (B, 4, 4, 3))
  g = _normal(4, (B, 2, 2, 5) if grid else (B, 5))
  a = np.asarray(_fast(lambda x, g: gate.apply(gate.init(_key(5), x, g), x, g), x, g))
  assert a.shape == (B, 4, 4) and a.dtype == np.float32
  assert check(a)


def test_pseudo_softmax_is_correctly_normalised():
  c = jnp.array([[[-3.0, 1.0], [2.0, -1.0]]])
  a = normalize.pseudo_softmax(c, eps=0.0)
  np.testing.assert_allclose(a, np.array([[[0.0, 4.0], [5.0, 2.0]]]) / 11.0, rtol=1e-6)
  # The thesis bug divided by sum(c) = -1: its map would be negative. A constant map becomes uniform.
  np.testing.assert_allclose(normalize.pseudo_softmax(jnp.full((1, 3, 3), 7.0)), 1 / 9, rtol=1e-6)


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("variant", ["paper", "thesis"])
def test_residual_masks_in_unit_interval(variant, dtype):
  _, _, maps = _run("residual", variant, dtype)
  (a,) = maps.values()
  assert a.shape == (B, 8, 8, 16)
  assert np.all((a >= 0) & (a <= 1))


def test_residual_attention_functions():
  c = _normal(6, (B, 4, 4, 3)) * 3
  spatial = np.asarray(normalize.spatial_zscore_sigmoid(c))
  assert np.all((spatial >= 0) & (spatial <= 1))
  np.testing.assert_allclose(np.median(spatial, axis=(1, 2)), 0.5, atol=0.25)
  channel = np.asarray(normalize.l2_channel(c))
  np.testing.assert_allclose(np.linalg.norm(channel, axis=-1), 1.0, atol=1e-5)


@pytest.mark.parametrize("variant", ["paper", "thesis"])
def test_residual_zero_mask_returns_trunk_output(variant):
  unit = functools.partial(InvertedResidual, 16, 1, 2, depthwise_impl="grouped")
  module = ResidualAttention(unit=unit, p=0, t=1, r=1, shortcuts=1, variant=variant)
  x = _normal(7, (B, 8, 8, 16))

  def run(x):
    variables = module.init(_key(8), x, False)
    params = dict(variables["params"])
    params["mask_conv1"] = {"kernel": jnp.zeros_like(params["mask_conv1"]["kernel"]),
                            "bias": jnp.full_like(params["mask_conv1"]["bias"], -1e4)}
    y, state = module.apply({**variables, "params": params}, x, False, mutable=["intermediates"])
    trunk_vars = {"params": params["trunk0"], "batch_stats": variables["batch_stats"]["trunk0"]}
    return y, state["intermediates"]["attention"][0], unit().apply(trunk_vars, x, False)

  y, mask, trunk = _fast(run, x)
  assert float(jnp.max(mask)) == 0.0
  np.testing.assert_allclose(y, trunk, atol=1e-6)
  assert float(jnp.max(jnp.abs(y - x))) > 1e-3  # the trunk is not the identity


def _zero_cbam_gates(params, variant):
  params = dict(params)
  params["mlp_out"] = {"kernel": jnp.zeros_like(params["mlp_out"]["kernel"]),
                       "bias": jnp.full_like(params["mlp_out"]["bias"], -1e4)}
  conv = {"kernel": jnp.zeros_like(params["spatial_conv"]["kernel"])}
  if variant == "thesis":
    conv["bias"] = jnp.full_like(params["spatial_conv"]["bias"], -1e4)
  params["spatial_conv"] = conv
  return params


@pytest.mark.parametrize("variant", ["paper", "thesis"])
def test_cbam_with_both_gates_forced_to_zero(variant):
  module = CBAM(reduction_ratio=4, kernel_size=3, variant=variant)
  x = _normal(9, (B, 6, 6, 8))

  def run(x):
    variables = module.init(_key(10), x, False)
    y0 = module.apply(variables, x, False)
    params = _zero_cbam_gates(variables["params"], variant)
    if variant == "paper":  # the spatial BN's shift must not rescue the gate: push it down through the BN bias
      params["spatial_bn"] = {**params["spatial_bn"], "bias": jnp.full((1,), -1e4)}
    y, state = module.apply({**variables, "params": params}, x, False, mutable=["intermediates"])
    return y0, y, state["intermediates"]["attention"][0], state["intermediates"]["channel_attention"][0]

  y0, y, m_s, m_c = _fast(run, x)
  assert float(jnp.max(jnp.abs(y0 - x))) > 1e-3
  assert float(jnp.max(m_s)) == 0.0 and float(jnp.max(m_c)) == 0.0
  np.testing.assert_allclose(y, x if variant == "thesis" else jnp.zeros_like(x), atol=1e-6)


def test_cbam_hidden_width_truncates_like_keras():
  x = jnp.zeros((1, 4, 4, 24))
  params = jax.eval_shape(lambda x: CBAM(variant="thesis").init(_key(0), x), x)["params"]
  assert params["mlp_hidden"]["kernel"].shape == (24, 1)  # floor(24 / 16)
  assert params["spatial_conv"]["kernel"].shape == (7, 7, 2, 1)


def test_unknown_options_raise_with_valid_choices():
  taps, out, _ = _inputs()
  head = AttentionGate(num_classes=3, normalization="relu")
  with pytest.raises(ValueError, match="normalization 'relu'"):
    jax.eval_shape(lambda: head.init(_key(0), taps, out))
  with pytest.raises(ValueError, match="variant 'both'"):
    jax.eval_shape(lambda: CBAM(variant="both").init(_key(0), jnp.zeros((1, 4, 4, 8))))
