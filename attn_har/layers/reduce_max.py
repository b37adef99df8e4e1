"""A max reduction whose gradient does not depend on how XLA fuses its input.

`jnp.max`'s gradient finds the maximal elements by comparing x with max(x) and divides by their count. XLA may
compute x twice (once inside the reduction, once for the comparison) in different fusions; where the two copies
round differently no element compares equal and the gradient is 0/0 = NaN. Measured on XLA:CPU with
`xla_backend_optimization_level=0`: every Grad-CAM map and input gradient of a trained CBAM MobileNetV2 was NaN,
while the forward pass was finite. `reduce_max` has jnp.max's forward pass (the same primitive, so FLOP counts
are unchanged) and a custom gradient that sends g to the arg-max element (the first one on ties), found by
index in the forward pass, as max pooling's gradient does.
"""

import functools
import math

import jax
import jax.numpy as jnp


def _flat(x: jax.Array, axes: tuple[int, ...]) -> jax.Array:
  """x with the contiguous `axes` merged into one axis at axes[0]."""
  return x.reshape(x.shape[:axes[0]] + (-1,) + x.shape[axes[-1] + 1:])


def _axes(ndim: int, axis) -> tuple[int, ...]:
  axes = tuple(a % ndim for a in ((axis,) if isinstance(axis, int) else axis))
  if axes != tuple(range(axes[0], axes[-1] + 1)):
    raise ValueError(f"reduce_max: axes {axis} must be contiguous")
  return axes


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def reduce_max(x: jax.Array, axis, keepdims: bool = False) -> jax.Array:
  """max of x over `axis` (an int or a tuple of contiguous axes); the gradient goes to the first maximal element."""
  _axes(x.ndim, axis)
  return jnp.max(x, axis=axis, keepdims=keepdims)


def _forward(x, axis, keepdims):
  axes = _axes(x.ndim, axis)
  index = jnp.argmax(_flat(x, axes), axis=axes[0])
  return jnp.max(x, axis=axis, keepdims=keepdims), (index, x.shape)


def _backward(axis, keepdims, residuals, g):
  index, shape = residuals
  axes = _axes(len(shape), axis)
  size = math.prod(shape[a] for a in axes)
  if keepdims:
    g = g.reshape(tuple(n for i, n in enumerate(g.shape) if i not in axes[1:]))
  else:
    g = jnp.expand_dims(g, axes[0])
  onehot = jax.nn.one_hot(index, size, dtype=g.dtype, axis=axes[0])
  return ((onehot * g).reshape(shape),)


reduce_max.defvjp(_forward, _backward)
