"""Whole image models: every attention on both backbones (and in its thesis variant on MobileNetV2) jits and
takes a finite gradient that reaches nearly every weight; public API."""

import concurrent.futures
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from attn_har.attention import ATTENTION, CBAM
from attn_har.inspect import attention_maps
from attn_har.models import ImageClassifier, build_image_model

FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}
TINY = {"mobilenet_v2": dict(alpha=0.35, depthwise_impl="grouped"), "resnet18_v2": {}}
K = 5


def _x(shape=(2, 32, 32, 3), seed=0):
  return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def _cheap_init(model, x):
  """Variables without compiling `init`: shapes from eval_shape, values from numpy (fan-in scaled normals)."""
  shapes = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, False), x)
  rng = np.random.default_rng(0)

  def fill(path, leaf):
    name = path[-1].key
    if name in ("scale", "var"):
      return jnp.ones(leaf.shape, leaf.dtype)
    if name in ("bias", "mean"):
      return jnp.zeros(leaf.shape, leaf.dtype)
    fan_in = int(np.prod(leaf.shape[:-1])) or 1
    return jnp.asarray(rng.standard_normal(leaf.shape) / np.sqrt(fan_in), leaf.dtype)

  return jax.tree_util.tree_map_with_path(fill, shapes)


@functools.lru_cache(maxsize=None)
def _step(backbone, attention, variant, dtype=jnp.float32, train=False):
  """One compile of a forward and backward pass; returns (logits, grads, sown attention maps)."""
  model = build_image_model(backbone, attention, K, variant, dtype=dtype, **TINY[backbone])
  x = _x()
  variables = _cheap_init(model, x)

  def run(params, x):
    def loss(params):
      logits, state = model.apply({**variables, "params": params}, x, train, rngs={"dropout": jax.random.key(
          1, impl="rbg")}, mutable=["batch_stats", "intermediates"])
      return jnp.mean(jax.nn.logsumexp(logits, -1) - logits[:, 0]), (logits, state.get("intermediates", {}))

    (_, (logits, inter)), grads = jax.value_and_grad(loss, has_aux=True)(params)
    flat = traverse_util.flatten_dict(inter)
    return logits, grads, {"/".join(k[:-1]): v[0] for k, v in flat.items() if k[-1] == "attention"}

  out = jax.jit(run).lower(variables["params"], x).compile(FAST_COMPILE)(variables["params"], x)
  return jax.tree_util.tree_map(np.asarray, out)


# What whole models add over tests/test_attention.py (each module alone) is the wiring: every attention attached
# to both backbone families (ResNet-V2 at depth 18 keeps the XLA:CPU compiles short) and the thesis variants'
# own attachment and classifiers on MobileNetV2, the thesis's backbone. Registry-driven, plus the vanilla
# backbones. (The thesis variants on ResNet-V2 are covered at shape level by test_backbones and the parameter
# counts of test_param_counts.)
MATRIX = [(b, None, "paper") for b in TINY] + [(b, a, "paper") for a in ATTENTION for b in TINY] + [
    ("mobilenet_v2", a, "thesis") for a in ATTENTION]


@functools.lru_cache(maxsize=None)
def _compiled_matrix():
  """All MATRIX models, compiled two at a time: XLA compilation releases the GIL, so both cores work."""
  with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
    return dict(zip(MATRIX, pool.map(lambda key: _step(*key), MATRIX)))


@pytest.mark.parametrize("backbone,attention,variant", MATRIX)
def test_model_jits_with_finite_gradient_and_float32_maps(backbone, attention, variant):
  logits, grads, maps = _compiled_matrix()[backbone, attention, variant]
  assert logits.shape == (2, K) and logits.dtype == np.float32 and np.all(np.isfinite(logits))
  leaves = jax.tree_util.tree_leaves(grads)
  assert all(np.all(np.isfinite(g)) for g in leaves)
  assert np.mean([np.any(g != 0) for g in leaves]) > 0.9  # gradients reach (nearly) every weight
  if attention is None:
    assert maps == {}
  else:
    assert len(maps) >= 3 and all(a.dtype == np.float32 and np.all(np.isfinite(a)) for a in maps.values())


def test_model_properties_in_bfloat16_train_mode():
  logits, grads, maps = _step("resnet18_v2", "gate", "paper", jnp.bfloat16, train=True)
  assert logits.dtype == np.float32
  assert all(np.all(np.isfinite(g)) for g in jax.tree_util.tree_leaves(grads))
  assert set(maps) == {"head/gates_0", "head/gates_1", "head/gates_2"}
  for a in maps.values():
    assert a.dtype == np.float32 and np.all(a >= 0)
    np.testing.assert_allclose(a.sum(axis=(1, 2)), 1.0, atol=1e-5)


def test_attention_maps_features_and_eval_logits():
  model = build_image_model("mobilenet_v2", "l2pa", K, "thesis", **TINY["mobilenet_v2"])
  x = _x()
  variables = _cheap_init(model, x)

  def run(variables, x):
    logits = model.apply(variables, x, False)
    feats = model.apply(variables, x, False, method=model.features)
    return logits, feats, attention_maps(model, variables, x)

  logits, feats, maps = jax.jit(run).lower(variables, x).compile(FAST_COMPILE)(variables, x)
  assert logits.shape == (2, K) and logits.dtype == jnp.float32
  assert {k: v.shape for k, v in maps.items()} == {
      "head/estimators_0": (2, 4, 4), "head/estimators_1": (2, 2, 2), "head/estimators_2": (2, 1, 1)}
  for a in maps.values():
    np.testing.assert_allclose(a.sum(axis=(1, 2)), 1.0, atol=1e-5)
  # The thesis L2PA classifier consumes the flattened maps themselves.
  flat = jnp.concatenate([maps[f"head/estimators_{i}"].reshape(2, -1) for i in range(3)], axis=-1)
  np.testing.assert_allclose(feats, flat, atol=1e-6)


def test_thesis_gate_model_returns_log_of_averaged_probabilities():
  logits, _, _ = _compiled_matrix()["mobilenet_v2", "gate", "thesis"]
  np.testing.assert_allclose(np.exp(logits).sum(-1), 1.0, atol=1e-5)


def test_residual_model_map_paths():
  *_, maps = _compiled_matrix()["resnet18_v2", "residual", "paper"]
  assert set(maps) == {"backbone/conv2_block1_residual", "backbone/conv3_block1_residual",
                       "backbone/conv4_block1_residual"}
  assert all(np.all((a >= 0) & (a <= 1)) for a in maps.values())


def test_build_image_model_routes_keywords():
  m = build_image_model("mobilenet_v2", "cbam", 7, "thesis", alpha=0.5, reduction_ratio=8, dtype=jnp.bfloat16)
  assert isinstance(m, ImageClassifier)
  assert m.backbone.keywords == {"alpha": 0.5} and dict(m.attention.kwargs) == {"reduction_ratio": 8}
  assert m.attention.cls is CBAM and m.attention.variant == "thesis" and m.attention.label == "cbam"
  assert m.dtype == jnp.bfloat16 and m.num_classes == 7
  with pytest.raises(TypeError, match="'kernel'.*reduction_ratio"):
    build_image_model("mobilenet_v2", "cbam", kernel=3)


def test_unknown_names_raise_key_error_listing_valid_ones():
  with pytest.raises(KeyError, match="unknown backbone 'vgg16'.*'mobilenet_v2'.*'resnet50_v2'"):
    build_image_model("vgg16")
  with pytest.raises(KeyError, match="unknown attention 'se'.*'cbam'.*'gate_grid'.*'l2pa'.*'residual'"):
    build_image_model("mobilenet_v2", "se")
  with pytest.raises(ValueError, match="variant 'keras'"):
    build_image_model("mobilenet_v2", "cbam", variant="keras")
