"""Grad-CAM, guided backpropagation and Guided Grad-CAM: localisation, CAM equivalence, ε-safety, a real model."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attn_har.explain import (eval_guided, gradcam, gradcam_layers, gradcam_multi, guided_backprop, guided_gradcam,
                              normalize_map)

def _random_variables(model, x, seed):
  """Fan-in-scaled normal weights, BN statistics (0, 1), from `jax.eval_shape` and numpy: no init compile."""
  rng = np.random.default_rng(seed)
  shapes = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, False), x)

  def fill(path, s):
    key = jax.tree_util.keystr(path)
    if "batch_stats" in key:
      return jnp.full(s.shape, 1.0 if "var" in key else 0.0, s.dtype)
    fan_in = int(np.prod(s.shape[:-1])) if len(s.shape) > 1 else 1
    return jnp.asarray(rng.normal(0.0, 1.0 / np.sqrt(fan_in), s.shape), s.dtype)

  return jax.tree_util.tree_map_with_path(fill, shapes)


class _Features(nn.Module):
  """Two bias-free 3x3 convs: zero input stays zero, content spreads 2 pixels."""

  @nn.compact
  def __call__(self, x):
    x = nn.relu(nn.Conv(4, (3, 3), use_bias=False, name="conv1")(x))
    return nn.relu(nn.Conv(6, (3, 3), use_bias=False, name="conv2")(x))


class _CamNet(nn.Module):
  """Features -> GAP -> Dense: its Grad-CAM equals CAM, A · W[:, k] / (h·w)."""
  num_classes: int = 3

  @nn.compact
  def __call__(self, x, train):
    return nn.Dense(self.num_classes, name="head")(_Features(name="features")(x).mean((1, 2)))


def _masked_inputs():
  """Two samples, each with content in one 3x3 window only (rows, cols), the rest zero."""
  x = jnp.zeros((2, 16, 16, 3))
  x = x.at[0, 2:5, 10:13].set(1.0).at[1, 9:12, 3:6].set(jnp.linspace(0.5, 1.0, 3)[:, None, None])
  return x, [(slice(2, 5), slice(10, 13)), (slice(9, 12), slice(3, 6))]


@pytest.fixture(scope="module")
def camnet():
  model = _CamNet()
  x, windows = _masked_inputs()
  # Non-negative weights: features are zero exactly where the input is, and every class has positive evidence.
  variables = jax.tree.map(jnp.abs, _random_variables(model, x, 0))  # non-negative convs and head
  return model, variables, x, windows


def test_layers_are_listed_with_their_spatial_shapes(camnet):
  model, variables, x, _ = camnet
  layers = gradcam_layers(model, variables, x)
  assert layers == {"features/conv1": (16, 16, 4), "features/conv2": (16, 16, 6), "features": (16, 16, 6)}


def test_unknown_layer_names_the_valid_ones(camnet):
  model, variables, x, _ = camnet
  with pytest.raises(KeyError, match="features/conv2"):
    gradcam(model, variables, x, "features/conv9")


def test_peak_lies_in_the_only_region_with_content_batched(camnet):
  model, variables, x, windows = camnet
  cam = gradcam(model, variables, x, "features")
  assert cam.heatmap.shape == (2, 16, 16) and cam.heatmap.dtype == jnp.float32
  for b, (rows, cols) in enumerate(windows):
    peak = np.unravel_index(int(jnp.argmax(cam.heatmap[b])), (16, 16))
    assert rows.start <= peak[0] < rows.stop and cols.start <= peak[1] < cols.stop
    assert float(cam.heatmap[b].max()) == pytest.approx(1.0, abs=1e-6)
    # Two 3x3 convs spread the window by 2 pixels; beyond that the map is exactly zero.
    outside = np.ones((16, 16), bool)
    outside[rows.start - 2:rows.stop + 2, cols.start - 2:cols.stop + 2] = False
    assert float(jnp.abs(cam.heatmap[b][outside]).max()) == 0.0


def test_gradcam_equals_cam_for_a_gap_linear_head_any_class(camnet):
  model, variables, x, _ = camnet
  a = _Features().apply({"params": variables["params"]["features"]}, x)
  kernel = variables["params"]["head"]["kernel"]
  for k in (0, 2):
    cam = gradcam(model, variables, x, "features", class_idx=k)
    expected = jnp.einsum("bhwc,c->bhw", a, kernel[:, k]) / (16 * 16)
    np.testing.assert_allclose(cam.raw, expected, rtol=1e-5, atol=1e-7)
    assert (cam.class_idx == k).all()
  default = gradcam(model, variables, x, "features")
  np.testing.assert_array_equal(default.class_idx, jnp.argmax(default.logits, -1))


def test_zero_gradient_gives_a_zero_map_not_nan(camnet):
  model, variables, x, _ = camnet
  zeroed = jax.tree_util.tree_map_with_path(
      lambda p, v: jnp.zeros_like(v) if "head" in jax.tree_util.keystr(p) else v, variables)
  cam = gradcam(model, zeroed, x, "features/conv1")
  assert bool(jnp.isfinite(cam.heatmap).all()) and float(jnp.abs(cam.heatmap).max()) == 0.0
  np.testing.assert_array_equal(normalize_map(jnp.full((1, 3, 3), 2.0)), jnp.zeros((1, 3, 3)))


class _ActNet(nn.Module):
  """h = act(conv1x1(x)) with the three ways models spell a ReLU on channel pairs, logits = GAP(h) @ D."""

  @nn.compact
  def __call__(self, x, train):
    pre = nn.Conv(6, (1, 1), use_bias=False, name="proj")(x)
    h = jnp.concatenate([nn.relu(pre[..., :2]), nn.relu6(pre[..., 2:4]), jnp.maximum(pre[..., 4:], 0.0)], -1)
    return nn.Dense(4, use_bias=False, name="head")(h.mean((1, 2)))


def test_guided_backprop_passes_only_positive_gradients_through_positive_inputs():
  model = _ActNet()
  x = 4.0 * jax.random.normal(jax.random.key(1), (2, 4, 4, 3))
  variables = _random_variables(model, x, 2)
  w = np.asarray(variables["params"]["proj"]["kernel"][0, 0])  # [3, 6]
  d = np.asarray(variables["params"]["head"]["kernel"])        # [6, 4]
  closed = jax.make_jaxpr(lambda v, x: model.apply(v, x, False))(variables, x)
  logits = jax.jit(lambda v, x: eval_guided(closed, *jax.tree.leaves(v), x)[0])(variables, x)
  np.testing.assert_allclose(logits, jax.jit(model.apply, static_argnums=2)(variables, x, False), rtol=1e-5)
  k = 1
  pre = np.asarray(x) @ w                                      # [2, 4, 4, 6]
  g = np.broadcast_to(d[:, k] / 16, pre.shape)                 # d logit / d h, per position
  below_six = np.ones(6, bool)
  below_six[2:4] = False                                       # relu6 channels: also need pre < 6
  mask = (pre > 0) & (g > 0) & ((pre < 6) | below_six)
  assert (pre[..., 2:4] > 6).any() and (g > 0).any() and (g < 0).any()   # every branch of the rule is exercised
  expected = np.where(mask, g, 0.0) @ w.T
  got = guided_backprop(model, variables, x, k)
  np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)


def test_guided_gradcam_is_guided_backprop_times_the_upsampled_map(camnet):
  model, variables, x, windows = camnet
  out = guided_gradcam(model, variables, x, "features/conv2")
  assert out.shape == x.shape and bool(jnp.isfinite(out).all())
  cam = gradcam(model, variables, x, "features/conv2")
  guided = guided_backprop(model, variables, x, cam.class_idx)
  up = jax.image.resize(cam.heatmap, (2, 16, 16), "bilinear")
  np.testing.assert_allclose(out, guided * up[..., None], rtol=1e-6, atol=1e-8)
  assert float(jnp.abs(out).max()) > 0.0


@pytest.mark.slow
def test_real_mobilenet_v2_maps_are_finite_normalised_and_layer_shaped():
  from attn_har.models import build_image_model
  model = build_image_model(backbone="mobilenet_v2", attention="cbam", num_classes=10, variant="thesis")
  x = jax.random.uniform(jax.random.key(3), (2, 64, 64, 3), minval=-1.0, maxval=1.0)
  variables = _random_variables(model, x, 4)
  layers = gradcam_layers(model, variables, x)
  chosen = ["backbone/block_5", "backbone/block_12", "backbone/block_15"]   # the thesis's three layers
  assert set(chosen) <= set(layers)
  cams = gradcam_multi(model, variables, x, chosen)
  for layer in chosen:
    h, w, _ = layers[layer]
    cam = cams[layer]
    assert cam.heatmap.shape == (2, h, w) and cam.raw.shape == (2, h, w)
    assert bool(jnp.isfinite(cam.heatmap).all()) and bool(jnp.isfinite(cam.raw).all())
    assert float(cam.heatmap.min()) >= 0.0 and float(cam.heatmap.max()) <= 1.0
  assert float(cams["backbone/block_5"].heatmap.max()) == pytest.approx(1.0, abs=1e-5)
  assert (layers["backbone/block_5"][0], layers["backbone/block_12"][0], layers["backbone/block_15"][0]) == (8, 4, 2)
