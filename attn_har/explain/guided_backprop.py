"""Guided backpropagation (Springenberg et al. 2015, arXiv:1412.6806) for any flax model, without hooks in it.

The forward pass is traced to a jaxpr and re-evaluated by a small interpreter that swaps every ReLU, i.e. every
`max(x, 0)` equation (what `jax.nn.relu`, `nn.relu6` and `jnp.maximum(x, 0)` lower to, inside or outside their
jit / custom_jvp wrappers), for `guided_relu`: the same forward value, but a backward pass that lets a gradient
through only where both the input and the gradient are positive. ReLU6 = min(max(x, 0), 6) is thus guided at its
lower bend and keeps its ordinary gradient (0 above 6) at the upper one. Every other equation is bound unchanged.
ReLUs inside `scan` / `cond` / `while` bodies are not swapped.
"""

import functools
from typing import Any, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.extend import core as jcore

# Sub-jaxpr-carrying primitives whose body the interpreter can enter (same inputs in, same outputs out).
_CALLS = {"jit", "pjit", "closed_call", "core_call", "custom_jvp_call", "custom_vjp_call", "checkpoint", "remat"}


@jax.custom_vjp
def guided_relu(x: jax.Array) -> jax.Array:
  """ReLU whose backward pass passes only positive gradients where the input is positive."""
  return jnp.maximum(x, 0)


def _guided_relu_fwd(x):
  return jnp.maximum(x, 0), x


def _guided_relu_bwd(x, g):
  return (jnp.where((x > 0) & (g > 0), g, jnp.zeros_like(g)),)


guided_relu.defvjp(_guided_relu_fwd, _guided_relu_bwd)


def _is_zero_literal(v) -> bool:
  return isinstance(v, jcore.Literal) and np.ndim(v.val) == 0 and float(v.val) == 0.0


def _relu_operand(eqn) -> Optional[int]:
  """Index of the non-zero operand when `eqn` is max(x, 0) or max(0, x), else None."""
  if eqn.primitive.name != "max" or len(eqn.invars) != 2:
    return None
  a, b = eqn.invars
  if _is_zero_literal(b) and not _is_zero_literal(a):
    return 0
  if _is_zero_literal(a) and not _is_zero_literal(b):
    return 1
  return None


def _sub(eqn) -> Optional[jcore.ClosedJaxpr]:
  """The single callable body of a call-like equation, as a ClosedJaxpr, if it takes the equation's inputs."""
  if eqn.primitive.name not in _CALLS:
    return None
  subs = [p for p in eqn.params.values() if isinstance(p, (jcore.ClosedJaxpr, jcore.Jaxpr))]
  if len(subs) != 1:
    return None
  sub = subs[0] if isinstance(subs[0], jcore.ClosedJaxpr) else jcore.ClosedJaxpr(subs[0], ())
  return sub if len(sub.jaxpr.invars) == len(eqn.invars) else None


def _has_relu(jaxpr: jcore.Jaxpr) -> bool:
  for eqn in jaxpr.eqns:
    if _relu_operand(eqn) is not None:
      return True
    sub = _sub(eqn)
    if sub is not None and _has_relu(sub.jaxpr):
      return True
  return False


def eval_guided(closed: jcore.ClosedJaxpr, *args) -> list:
  """Evaluates `closed` on `args` with every ReLU replaced by `guided_relu`; returns the list of outputs."""
  env = dict(zip(closed.jaxpr.constvars, closed.consts))
  env.update(zip(closed.jaxpr.invars, args))
  read = lambda v: v.val if isinstance(v, jcore.Literal) else env[v]
  for eqn in closed.jaxpr.eqns:
    invals = [read(v) for v in eqn.invars]
    relu = _relu_operand(eqn)
    sub = _sub(eqn)
    if relu is not None:
      x = invals[relu]
      outvals = [guided_relu(jnp.broadcast_to(x, eqn.outvars[0].aval.shape))]
    elif sub is not None and _has_relu(sub.jaxpr):
      outvals = eval_guided(sub, *invals)
    else:
      with eqn.ctx.manager:
        outvals = eqn.primitive.bind(*invals, **eqn.primitive.get_bind_params(eqn.params))
      if not eqn.primitive.multiple_results:
        outvals = [outvals]
    env.update(zip(eqn.outvars, outvals))
  return [read(v) for v in closed.jaxpr.outvars]


def _logits(out: Any) -> jax.Array:
  if not isinstance(out, jax.Array) or out.ndim != 2:
    raise ValueError(f"the model must return logits [B, K]; got {jax.tree.map(jnp.shape, out)}")
  return out


def guided_backprop(model: nn.Module, variables: Any, x: jax.Array, class_idx: Optional[Any] = None, *,
                    apply_args: Sequence[Any] = (False,)) -> jax.Array:
  """Guided-backpropagation gradient of a class logit with respect to the input.

  Args:
    model: a flax module returning logits [B, K] from `model.apply(variables, x, *apply_args)`.
    variables: its variables.
    x: input [B, H, W, C].
    class_idx: an int or [B] ints; by default each sample's arg-max class.
    apply_args: positional arguments after `x` ((False,) = inference).

  Returns:
    [B, H, W, C] float32: d logit[b, class_b] / d x[b] with guided ReLU backward passes.
  """
  cls = None if class_idx is None else jnp.broadcast_to(jnp.asarray(class_idx, jnp.int32), x.shape[:1])
  return _guided_grad(model, tuple(apply_args), variables, x, cls)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _guided_grad(model, apply_args, variables, x, cls):
  closed = jax.make_jaxpr(lambda v, x: model.apply(v, x, *apply_args))(variables, x)
  flat_vars = jax.tree.leaves(variables)
  logits, pullback = jax.vjp(lambda x: _logits(eval_guided(closed, *flat_vars, x)[0]), x)
  if cls is None:
    cls = jnp.argmax(logits, axis=-1)
  (grad,) = pullback(jax.nn.one_hot(cls, logits.shape[-1], dtype=logits.dtype))
  return grad.astype(jnp.float32)
