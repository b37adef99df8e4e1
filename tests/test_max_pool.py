"""The max pool's own gradient equals autodiff's of `nn.max_pool`, ties included; its values are nn.max_pool's."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attn_har.layers.max_pool import max_pool


def _grads(x, window, strides, g):
  ours = jax.grad(lambda x: jnp.sum(max_pool(x, window, strides) * g))(x)
  flax = jax.grad(lambda x: jnp.sum(nn.max_pool(x, window, strides, padding="VALID") * g))(x)
  return ours, flax


@pytest.mark.parametrize("window, strides, size", [((3, 3), (2, 2), 9), ((3, 3), (2, 2), 10), ((2, 2), (2, 2), 6),
                                                   ((3, 3), (1, 1), 5)])
def test_values_and_gradient_equal_autodiff(window, strides, size):
  x = jax.random.normal(jax.random.key(0), (2, size, size, 3))
  y = max_pool(x, window, strides)
  np.testing.assert_array_equal(y, nn.max_pool(x, window, strides, padding="VALID"))
  g = jax.random.normal(jax.random.key(1), y.shape)
  ours, flax = _grads(x, window, strides, g)
  np.testing.assert_allclose(ours, flax, rtol=1e-6, atol=1e-6)


def test_ties_send_each_window_gradient_to_its_first_maximum():
  """0/1 inputs: most windows hold several maxima; the gradient picks the same one as autodiff (the first)."""
  x = jnp.asarray(np.random.default_rng(0).integers(0, 2, (2, 11, 11, 2)), jnp.float32)
  g = jnp.asarray(np.random.default_rng(1).integers(1, 5, (2, 5, 5, 2)), jnp.float32)  # exact sums
  ours, flax = _grads(x, (3, 3), (2, 2), g)
  np.testing.assert_array_equal(ours, flax)
  one = jax.grad(lambda x: jnp.sum(max_pool(x, (3, 3), (2, 2))))(jnp.ones((1, 3, 3, 1)))
  np.testing.assert_array_equal(one[0, :, :, 0], [[1, 0, 0], [0, 0, 0], [0, 0, 0]])
