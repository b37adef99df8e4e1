"""1x1 convolutions as matrix products: same values and gradients as the convolution, same parameters, and the
convolution kept wherever the product form does not apply."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.extend import core as jcore

from attn_har.layers import keras, pointwise
from attn_har.models import build_image_model

NHWC = ("NHWC", "HWIO", "NHWC")


def _primitives(fn, *args) -> list:
  """The primitive names of fn's jaxpr, sub-jaxprs (custom_vjp, pjit) included."""
  def walk(jaxpr):
    for e in jaxpr.eqns:
      yield e.primitive.name
      for p in e.params.values():
        if isinstance(p, (jcore.ClosedJaxpr, jcore.Jaxpr)):
          yield from walk(p.jaxpr if isinstance(p, jcore.ClosedJaxpr) else p)
  return list(walk(jax.make_jaxpr(fn)(*args).jaxpr))


def test_product_equals_convolution_forward_and_gradients():
  kx, kk, kg = jax.random.split(jax.random.key(0), 3)
  x = jax.random.normal(kx, (2, 5, 7, 12))
  kernel = jax.random.normal(kk, (1, 1, 12, 8))
  g = jax.random.normal(kg, (2, 5, 7, 8))

  def loss(conv, x, kernel):
    return jnp.sum(conv(x, kernel, (1, 1), "SAME", dimension_numbers=NHWC) * g)

  by_dot = jax.jit(jax.value_and_grad(lambda x, k: loss(pointwise.conv_general_dilated, x, k), (0, 1)))(x, kernel)
  by_conv = jax.jit(jax.value_and_grad(lambda x, k: loss(lax.conv_general_dilated, x, k), (0, 1)))(x, kernel)
  np.testing.assert_allclose(by_dot[0], by_conv[0], rtol=1e-5)
  for a, b in zip(by_dot[1], by_conv[1]):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
  assert "dot_general" in _primitives(lambda x, k: pointwise.conv_general_dilated(x, k, (1, 1), "VALID",
                                                                                  dimension_numbers=NHWC), x, kernel)


@pytest.mark.parametrize("kernel_shape, kwargs", [
    ((3, 3, 4, 6), dict(window_strides=(1, 1), padding="SAME")),                      # not 1x1
    ((1, 1, 4, 6), dict(window_strides=(2, 2), padding="VALID")),                     # strided
    ((1, 1, 4, 6), dict(window_strides=(1, 1), padding=((1, 1), (0, 0)))),           # padded
    ((1, 1, 2, 6), dict(window_strides=(1, 1), padding="VALID", feature_group_count=2)),  # grouped
    ((1, 1, 4, 6), dict(window_strides=(1, 1), padding="VALID", rhs_dilation=(2, 2))),   # dilated (a no-op, kept)
])
def test_everything_else_stays_a_convolution_with_the_same_result(kernel_shape, kwargs):
  x = jax.random.normal(jax.random.key(1), (2, 6, 6, 4))
  kernel = jax.random.normal(jax.random.key(2), kernel_shape)
  ours = lambda x, k: pointwise.conv_general_dilated(x, k, dimension_numbers=NHWC, **kwargs)
  assert "conv_general_dilated" in _primitives(ours, x, kernel)
  np.testing.assert_array_equal(ours(x, kernel), lax.conv_general_dilated(x, kernel, dimension_numbers=NHWC,
                                                                          **kwargs))


def test_modes_resolve_and_unknown_names_fail():
  assert pointwise.resolve("auto") == ("dot" if jax.default_backend() == "cpu" else "conv")
  assert pointwise.resolve("conv") == "conv" and pointwise.resolve("dot") == "dot"
  assert pointwise.conv_fn("dot") is pointwise.conv_general_dilated
  assert pointwise.conv_fn("conv") is lax.conv_general_dilated
  with pytest.raises(ValueError, match="dot, conv"):
    pointwise.resolve("matmul")


def test_flax_conv_keeps_its_parameters_and_bias():
  x = jax.random.normal(jax.random.key(3), (3, 4, 4, 5))
  plain = keras.Conv(7, (1, 1), bias_init=nn.initializers.normal(1.0))
  ours = keras.Conv(7, (1, 1), bias_init=nn.initializers.normal(1.0),
                    conv_general_dilated=pointwise.conv_general_dilated)
  variables = plain.init(jax.random.key(4), x)
  assert jax.tree.structure(ours.init(jax.random.key(4), x)) == jax.tree.structure(variables)
  np.testing.assert_allclose(ours.apply(variables, x), plain.apply(variables, x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backbone, kwargs", [("mobilenet_v2", dict(alpha=0.35)), ("resnet50_v2", {})])
def test_backbones_compute_the_same_function_either_way(backbone, kwargs):
  """One parameter tree for both modes; logits and the parameter gradient agree up to float rounding (inference
  mode: batch statistics of 2 images at the last stages would amplify the rounding)."""
  x = jax.random.normal(jax.random.key(5), (2, 32, 32, 3))
  dot = build_image_model(backbone, "cbam", 10, pointwise="dot", **kwargs)
  conv = build_image_model(backbone, "cbam", 10, pointwise="conv", **kwargs)
  variables = jax.jit(dot.init, static_argnums=2)(jax.random.key(6), x, False)
  assert jax.tree.structure(jax.eval_shape(lambda k, x: conv.init(k, x, False), jax.random.key(6), x)) == jax.tree.structure(variables)

  def loss(model, params):
    out = model.apply({**variables, "params": params}, x, False)
    return jnp.mean(jax.nn.log_softmax(out)[:, 0]), out

  (_, logits_dot), g_dot = jax.jit(jax.value_and_grad(lambda p: loss(dot, p), has_aux=True))(variables["params"])
  (_, logits_conv), g_conv = jax.jit(jax.value_and_grad(lambda p: loss(conv, p), has_aux=True))(variables["params"])
  np.testing.assert_allclose(logits_dot, logits_conv, rtol=1e-5, atol=1e-5)
  for a, b in zip(jax.tree.leaves(g_dot), jax.tree.leaves(g_conv)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
  count = lambda model: _primitives(lambda v: model.apply(v, x, False), variables).count("conv_general_dilated")
  assert count(dot) < count(conv)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_channel_product_gradient_equals_autodiff(dtype):
  """The written-out gradient of x @ w over the channel axis equals autodiff's, with the primal dtypes."""
  x = jax.random.normal(jax.random.key(7), (3, 4, 5, 6), dtype)
  w = jax.random.normal(jax.random.key(8), (6, 9), dtype)
  g = jax.random.normal(jax.random.key(9), (3, 4, 5, 9), dtype)
  ours = jax.vjp(pointwise.channel_product, x, w)[1](g)
  plain = jax.vjp(lambda x, w: jnp.einsum("bhwi,io->bhwo", x, w), x, w)[1](g)
  tol = 1e-5 if dtype == jnp.float32 else 2e-2
  for a, b in zip(ours, plain):
    assert a.dtype == b.dtype == dtype
    np.testing.assert_allclose(np.asarray(a, np.float32), np.asarray(b, np.float32), rtol=tol, atol=tol)
