"""The hand-written gradient of `depthwise_shifted` equals autodiff of the grouped convolution for every padding
and stride MobileNetV2 uses (Keras's `correct_pad` gives asymmetric (0, 1) pads on even sizes)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attn_har.layers.depthwise import depthwise_grouped, depthwise_shifted


@pytest.mark.parametrize("kernel_hw,stride,size,pads", [
    ((3, 3), 2, 8, ((0, 1), (0, 1))), ((3, 3), 2, 7, ((1, 1), (1, 1))), ((3, 3), 1, 5, ((1, 1), (1, 1))),
    ((3, 3), 1, 6, ((0, 0), (2, 1))), ((5, 3), 2, 9, ((2, 2), (0, 1))), ((3, 3), 3, 10, ((1, 0), (0, 2)))])
def test_vjp_equals_grouped(kernel_hw, stride, size, pads):
  kx, kk, kg = jax.random.split(jax.random.key(3), 3)
  x = jax.random.normal(kx, (2, size, size + 1, 5))
  kernel = jax.random.normal(kk, (*kernel_hw, 1, 5))
  y, vjp = jax.vjp(lambda x, k: depthwise_shifted(x, k, (stride, stride), pads), x, kernel)
  y_ref, vjp_ref = jax.vjp(lambda x, k: depthwise_grouped(x, k, (stride, stride), pads), x, kernel)
  np.testing.assert_allclose(y, y_ref, atol=1e-5, rtol=1e-5)
  g = jax.random.normal(kg, y.shape)
  for got, want in zip(jax.jit(vjp)(g), vjp_ref(g)):
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-5)


def test_vjp_under_vmap():
  """The rule composes with vmap (video models map their per-frame model over time)."""
  x = jax.random.normal(jax.random.key(4), (3, 2, 6, 6, 4))
  kernel = jax.random.normal(jax.random.key(5), (3, 3, 1, 4))
  pads = ((1, 1), (1, 1))
  f = lambda fn: lambda k: jnp.sum(jax.vmap(lambda xi: fn(xi, k, (1, 1), pads))(x) ** 2)
  np.testing.assert_allclose(jax.grad(f(depthwise_shifted))(kernel), jax.grad(f(depthwise_grouped))(kernel),
                             atol=1e-3, rtol=1e-5)
