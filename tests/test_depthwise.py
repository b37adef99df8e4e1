"""The shifted multiply-add depthwise conv equals the feature_group_count conv (forward and gradient)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attn_har.layers import DepthwiseConv
from attn_har.layers.depthwise import depthwise_grouped, depthwise_shifted, resolve_impl


@pytest.mark.parametrize("stride,size", [(1, 7), (2, 8), (2, 7)])
def test_shifted_equals_grouped_forward_and_gradient(stride, size):
  kx, kk = jax.random.split(jax.random.key(0))
  x = jax.random.normal(kx, (2, size, size, 6))
  kernel = jax.random.normal(kk, (3, 3, 1, 6))
  pads = jax.lax.padtype_to_pads((size, size), (3, 3), (stride, stride), "SAME")

  def loss(fn, x, kernel):
    y = fn(x, kernel, (stride, stride), pads)
    return jnp.sum(jnp.sin(y)), y

  (_, y_s), g_s = jax.jit(jax.value_and_grad(lambda x, k: loss(depthwise_shifted, x, k), (0, 1), has_aux=True))(
      x, kernel)
  (_, y_g), g_g = jax.jit(jax.value_and_grad(lambda x, k: loss(depthwise_grouped, x, k), (0, 1), has_aux=True))(
      x, kernel)
  assert y_s.shape == (2, -(-size // stride), -(-size // stride), 6)
  np.testing.assert_allclose(y_s, y_g, atol=1e-5, rtol=1e-5)
  np.testing.assert_allclose(g_s[0], g_g[0], atol=1e-5, rtol=1e-5)
  np.testing.assert_allclose(g_s[1], g_g[1], atol=1e-5, rtol=1e-5)


def test_module_shares_parameters_between_impls():
  x = jax.random.normal(jax.random.key(1), (1, 6, 6, 4))
  shifted = DepthwiseConv(strides=(2, 2), padding=((0, 1), (0, 1)), use_bias=True, impl="shifted")
  variables = shifted.init(jax.random.key(2), x)
  assert variables["params"]["kernel"].shape == (3, 3, 1, 4)
  grouped = DepthwiseConv(strides=(2, 2), padding=((0, 1), (0, 1)), use_bias=True, impl="grouped")
  assert jax.tree_util.tree_structure(grouped.init(jax.random.key(2), x)) == jax.tree_util.tree_structure(variables)
  np.testing.assert_allclose(shifted.apply(variables, x), grouped.apply(variables, x), atol=1e-5)


def test_resolve_impl():
  assert resolve_impl("auto") == ("shifted" if jax.default_backend() == "cpu" else "grouped")
  assert resolve_impl("grouped") == "grouped"
  with pytest.raises(ValueError, match="'fft'.*auto, shifted, grouped"):
    resolve_impl("fft")
