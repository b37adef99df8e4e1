"""`layers.reduce_max`: jnp.max's values; a gradient equal to jnp.max's without ties, to the first maximal element
with ties, and finite where jnp.max's can be 0/0."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attn_har.layers.reduce_max import reduce_max


@pytest.mark.parametrize("axis,keepdims", [((1, 2), False), ((1, 2), True), (-1, True), (-1, False), (0, False),
                                           ((2, 3), False)])
def test_values_and_gradient_equal_jnp_max_without_ties(axis, keepdims):
  x = jnp.asarray(np.random.default_rng(0).standard_normal((2, 3, 4, 5)), jnp.float32)
  ref = jnp.max(x, axis=axis, keepdims=keepdims)
  np.testing.assert_array_equal(reduce_max(x, axis, keepdims), ref)
  w = jnp.asarray(np.random.default_rng(1).standard_normal(ref.shape), jnp.float32)
  got = jax.grad(lambda x: (reduce_max(x, axis, keepdims) * w).sum())(x)
  want = jax.grad(lambda x: (jnp.max(x, axis=axis, keepdims=keepdims) * w).sum())(x)
  np.testing.assert_array_equal(got, want)


def test_ties_send_the_gradient_to_the_first_maximal_element():
  x = jnp.array([[1.0, 3.0, 3.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
  g = jax.grad(lambda x: (reduce_max(x, -1) * jnp.array([2.0, 5.0])).sum())(x)
  np.testing.assert_array_equal(g, [[0, 2, 0, 0], [5, 0, 0, 0]])


def test_non_contiguous_axes_are_refused():
  with pytest.raises(ValueError, match="contiguous"):
    reduce_max(jnp.zeros((2, 3, 4)), (0, 2))
