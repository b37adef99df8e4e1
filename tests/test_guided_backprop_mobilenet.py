"""Guided backpropagation on the real MobileNetV2: its ReLU6 is recognised; the result equals a float64 reference."""

import jax
import jax.numpy as jnp
import numpy as np


from attn_har.backbones import mobilenet_v2
from attn_har.explain import guided_backprop
from attn_har.models import build_image_model

K = 5
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def _input_grad(model, variables, x, one_hot):
  """d sum(logits * one_hot) / dx, jitted and compiled without XLA's expensive passes (a tiny model)."""
  fn = jax.jit(jax.grad(lambda x: jnp.sum(model.apply(variables, x, False) * one_hot)))
  return np.asarray(fn.lower(x).compile(FAST_COMPILE)(x))


def test_relu6_has_tensorflows_gradient_at_its_kinks():
  x = jnp.array([-1.0, 0.0, 3.0, 6.0, 7.0])
  np.testing.assert_array_equal(jax.grad(lambda v: mobilenet_v2.relu6(v).sum())(x), [0, 0, 1, 0, 0])


@jax.custom_vjp
def _guided_relu6(x):
  return jnp.minimum(jnp.maximum(x, 0), 6)


def _guided_relu6_fwd(x):
  return _guided_relu6(x), x


def _guided_relu6_bwd(x, g):
  # Springenberg et al.: only positive gradients through positive inputs; zero above the upper kink.
  return (jnp.where((x > 0) & (x < 6) & (g > 0), g, jnp.zeros_like(g)),)


_guided_relu6.defvjp(_guided_relu6_fwd, _guided_relu6_bwd)


def test_guided_backprop_on_mobilenet_v2_equals_a_float64_reference_and_differs_from_the_gradient(monkeypatch):
  with jax.enable_x64(True):
    model = build_image_model("mobilenet_v2", None, K, alpha=0.35, depthwise_impl="grouped", dtype=jnp.float64,
                              param_dtype=jnp.float64)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 32, 32, 3)), jnp.float64)
    variables = jax.jit(lambda x: model.init(jax.random.key(0), x, False))(x)
    cls = jnp.array([1, 3])
    got = np.asarray(guided_backprop(model, variables, x, cls), np.float64)
    one_hot = jax.nn.one_hot(cls, K, dtype=jnp.float64)
    plain = _input_grad(model, variables, x, one_hot)
    monkeypatch.setattr(mobilenet_v2, "relu6", _guided_relu6)   # the reference: every ReLU6 guided by hand
    ref = _input_grad(model, variables, x, one_hot)
  assert np.abs(ref).max() > 0
  np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-6 * np.abs(ref).max())
  assert np.linalg.norm(got - plain) > 0.1 * np.linalg.norm(plain)
