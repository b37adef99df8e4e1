"""Run a function as its pruned jaxpr, evaluated with NumPy (or one small program per distinct equation): fast
start-up on CPU.

`init_state` traces the model's forward pass to find the parameter shapes, but only its random-number code
produces the values. Jitted as one program, XLA:CPU removes the forward pass and still compiles every parameter's
random-number code as its own kernels: for the default two-stream CBAM MobileNetV2, 2,785 fusions and 17.7 s of
XLA compile even at optimisation level 0, a fifth of `python launch.py`'s time to its first step.

`run_pruned(fun, *args)` instead traces `fun` to a jaxpr, drops every equation no output depends on (the forward
pass), and evaluates the rest, 2,773 equations for the default model:
- first with NumPy on the host (`numpy_eval`: no compile; random primitives through jax's own threefry jaxpr):
  default model 1.6-2.2 s with `device_put` on 2 CPU cores, of which 1.2-1.4 s tracing the model, 0.07 s checking
  the equations (tracing the implementations of its 41 distinct random primitives), 0.2 s evaluating 2.5 M values;
- when an equation has no NumPy rule (`numpy_eval.Unsupported`, raised before evaluating), equation by equation
  with XLA, equations that differ only in their arguments' values sharing one compiled program (140 for the
  default model: 39 `uniform` initialisers, one per parameter shape, plus broadcasts and multiplies): 8.3-10.8 s,
  nearly all compiling.

The outputs are bit-identical to `jax.jit(fun, compiler_options={"xla_backend_optimization_level": 0})(*args)`
(train.py's fallback) when every equation is exactly rounded arithmetic (bit operations, the threefry hash, +, -,
*, /, sqrt, comparisons, data movement): uniform, zeros and ones initialisers, every parameter of the default model
(tests/test_pruned_eval.py), by both paths. At the default optimisation level XLA:CPU contracts a fused a * b + c
into one FMA, and at every level its simplifier rewrites (u - 1) * 1 + m into u + (m - 1) (a uniform draw whose
maxval - minval is 1 and minval not 0): such jitted values differ from the equations' in the last bit. Approximated
functions differ too: a normal initialiser's `erf_inv` evaluated in its own program differs from the fused one by
up to 1 ulp (as the jitted init itself does between XLA optimisation levels), enough for a training run to take
another path. So by default `run_pruned` raises `Inexact` when a live equation (or one nested in it) is in
`APPROXIMATED`, and the caller keeps the jitted program; NumPy never evaluates them.
"""

from typing import Any, Callable, Dict, Hashable, List, Optional, Tuple

import jax
import numpy as np
from jax.extend import core as jcore

from attn_har.train import numpy_eval


# Primitives XLA evaluates by approximation (polynomials, range reduction), whose last bit may depend on fusion.
APPROXIMATED = frozenset({
    "erf_inv", "erf", "erfc", "exp", "exp2", "expm1", "log", "log1p", "tanh", "logistic", "sin", "cos", "tan",
    "asin", "acos", "atan", "atan2", "sinh", "cosh", "asinh", "acosh", "atanh", "pow", "rsqrt", "cbrt", "lgamma",
    "digamma", "igamma", "igammac", "random_gamma_grad", "bessel_i0e", "bessel_i1e", "polygamma", "zeta"})


class Inexact(ValueError):
  """The pruned jaxpr holds approximated functions (`APPROXIMATED`): evaluated equation by equation, its outputs
  could differ from the jitted function's in the last bit."""


def primitive_names(eqns: List[jcore.JaxprEqn]) -> set:
  """The names of the primitives of `eqns` and of every jaxpr nested in their parameters."""
  names = set()
  for eqn in eqns:
    names.add(eqn.primitive.name)
    for sub in jcore.jaxprs_in_params(eqn.params):
      names |= primitive_names(sub.eqns)
  return names


def live_equations(jaxpr: jcore.Jaxpr) -> List[jcore.JaxprEqn]:
  """The equations of `jaxpr` that an output depends on, or that have effects, in order."""
  needed = {v for v in jaxpr.outvars if isinstance(v, jcore.Var)}
  keep = []
  for eqn in reversed(jaxpr.eqns):
    if eqn.effects or any(v in needed for v in eqn.outvars if not isinstance(v, jcore.DropVar)):
      keep.append(eqn)
      needed.update(v for v in eqn.invars if isinstance(v, jcore.Var))
  return keep[::-1]


def _equation_program(eqn: jcore.JaxprEqn) -> Tuple[Hashable, Callable, List[Any]]:
  """(key, f, avals): f(*inputs) -> list of outputs, for the equation's inputs (literals included, so that
  equations differing only in a literal, e.g. `fold_in`'s data, share f); equal keys compute the same function."""
  bind_params = eqn.primitive.get_bind_params(eqn.params)   # jax 0.10: the params; older jax: (subfuns, params)
  subfuns, bind_params = bind_params if isinstance(bind_params, tuple) else ((), bind_params)
  prim, ctx = eqn.primitive, eqn.ctx

  def f(*vals):
    with ctx.manager:
      out = prim.bind(*subfuns, *vals, **bind_params)
    return list(out) if prim.multiple_results else [out]

  avals = [v.aval for v in eqn.invars]
  return numpy_eval.equation_key(eqn), f, avals


def _run_compiled(jaxpr: jcore.Jaxpr, consts: List[Any], args: List[Any], eqns: List[jcore.JaxprEqn],
                  compiler_options: Optional[Dict[str, Any]]) -> List[Any]:
  """The outputs of `jaxpr` on flat `args`, evaluating `eqns` with one compiled program per distinct equation."""
  compiled: Dict[Hashable, Any] = {}
  keys = []
  for eqn in eqns:
    key, f, avals = _equation_program(eqn)
    if key not in compiled:
      structs = [jax.ShapeDtypeStruct(a.shape, a.dtype, weak_type=a.weak_type) for a in avals]
      compiled[key] = jax.jit(f, compiler_options=compiler_options).lower(*structs).compile()
    keys.append(key)

  env: Dict[jcore.Var, Any] = dict(zip(jaxpr.constvars, consts))
  env.update(zip(jaxpr.invars, args))
  read = lambda v: np.asarray(v.val, v.aval.dtype) if isinstance(v, jcore.Literal) else env[v]
  for eqn, key in zip(eqns, keys):
    outs = compiled[key](*map(read, eqn.invars))
    for v, x in zip(eqn.outvars, outs):
      if not isinstance(v, jcore.DropVar):
        env[v] = x
  return [read(v) for v in jaxpr.outvars]


def run_pruned(fun: Callable, *args, compiler_options: Optional[Dict[str, Any]] = None, exact: bool = True,
               use_numpy: bool = True, return_how: bool = False):
  """fun(*args) (a pytree of arrays) computed from its pruned jaxpr (see the module docstring).

  Args:
    fun: a pure function of arrays.
    args: its arguments (arrays or pytrees of arrays).
    compiler_options: XLA options of the per-equation programs (`jax.jit`'s `compiler_options`).
    exact: raise `Inexact` (before compiling anything) when the result could differ from `jax.jit(fun)(*args)`.
    use_numpy: try `numpy_eval` first (NumPy arrays, key arrays for key outputs); on `numpy_eval.Unsupported`, or
      when False, compile the distinct equations (jax arrays).
    return_how: return (outputs, how), how = 'numpy' or 'compiled': the path that computed them.
  """
  closed, out_shape = jax.make_jaxpr(fun, return_shape=True)(*args)
  jaxpr = closed.jaxpr
  eqns = live_equations(jaxpr)
  approximated = primitive_names(eqns) & APPROXIMATED
  if exact and approximated:
    raise Inexact(f"the pruned jaxpr holds approximated functions {sorted(approximated)}")
  flat_args = jax.tree.leaves(args)
  outs, how = None, "compiled"
  if use_numpy:
    try:
      outs, how = numpy_eval.evaluate(jaxpr, closed.consts, flat_args, eqns), "numpy"
    except numpy_eval.Unsupported:
      pass
  if outs is None:
    outs = _run_compiled(jaxpr, closed.consts, flat_args, eqns, compiler_options)
  tree = jax.tree.unflatten(jax.tree.structure(out_shape), outs)
  return (tree, how) if return_how else tree
