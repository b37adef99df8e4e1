"""Evaluate a jaxpr's equations with NumPy on the host, bit-identical to XLA:CPU, without compiling anything.

The rules for the exactly rounded operations, how values are held (a key array as its raw key data) and where they
follow XLA:CPU rather than NumPy are in `numpy_rules`. `random_bits`, `random_split`, `random_fold_in` and
`random_seed` are evaluated through the jaxpr of jax's own implementation on raw key data
(`prng.random_*_impl_base`, the function their XLA lowering traces), cached per primitive, parameters, input types
and `jax_threefry_partitionable` / `jax_enable_x64` value, so the threefry code path is the one jax itself follows.
Nested jaxprs (jit, closed calls) are evaluated recursively. Every other primitive (approximated functions, float
rem, float reductions, dot products), float types other than float32 / float64, effects and symbolic shapes raise
`Unsupported` from `check`, before anything is evaluated.

Outputs are bit-identical to XLA:CPU at `xla_backend_optimization_level` 0 (tests/test_pruned_eval.py); the
default level contracts a * b + c in a fusion into one FMA, rounding once.
"""

import functools
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import jax
import numpy as np
from jax.extend import core as jcore

from attn_har.train.numpy_rules import (DTYPES, FLOAT_ONLY, NOT_FLOAT, RULES, Unsupported, from_host, is_key,
                                        literal, physical_aval, rule, supported_primitives, to_host)
from attn_har.train.numpy_threefry import threefry2x32

try:
  from jax._src.random import prng as _prng
except ImportError:   # older jax
  from jax._src import prng as _prng

__all__ = ["Unsupported", "check", "equation_key", "evaluate", "evaluate_closed", "supported_primitives",
           "threefry2x32"]

# ----------------------------------------------------------------------------------------------- random primitives

_EXPANSIONS: Dict[Any, Tuple[jcore.Jaxpr, List[np.ndarray]]] = {}


def _hashable(value: Any) -> Any:
  """value when hashable (compared by value), else its identity (the jaxpr keeps it alive while it is used)."""
  try:
    hash(value)
    return value
  except TypeError:
    return ("id", id(value))


def equation_key(eqn: jcore.JaxprEqn) -> tuple:
  """(primitive name, parameters, input types): equal keys compute the same function of the inputs' values."""
  return (eqn.primitive.name, tuple((k, _hashable(v)) for k, v in sorted(eqn.params.items())),
          tuple(str(v.aval) for v in eqn.invars))


def _struct(aval) -> jax.ShapeDtypeStruct:
  phys = physical_aval(aval)
  return jax.ShapeDtypeStruct(phys.shape, phys.dtype)


def _impl_function(eqn) -> Callable:
  """jax's implementation of random primitive `eqn` as a function of its inputs' raw values."""
  name, params, avals = eqn.primitive.name, eqn.params, [v.aval for v in eqn.invars]
  if name == "random_seed":
    return functools.partial(_prng.random_seed_impl_base, impl=params["impl"])
  keys, impl = avals[0], avals[0].dtype._impl
  if name == "random_bits":
    return functools.partial(_prng.random_bits_impl_base, impl, keys_ndim=keys.ndim,
                             bit_width=params["bit_width"], shape=tuple(params["shape"]))
  if name == "random_split":
    return functools.partial(_prng.random_split_impl_base, impl, keys_ndim=keys.ndim, shape=tuple(params["shape"]))
  if name == "random_fold_in":
    return lambda data, msgs: _prng.random_fold_in_impl_base(impl, data, msgs, keys.shape)
  raise Unsupported(f"no NumPy rule for primitive '{name}'")


def expansion(eqn) -> Tuple[jcore.Jaxpr, List[np.ndarray]]:
  """(jaxpr, consts) of jax's implementation of random primitive `eqn` on raw key data (cached)."""
  key = equation_key(eqn) + (bool(jax.config.jax_threefry_partitionable), bool(jax.config.jax_enable_x64))
  hit = _EXPANSIONS.get(key)
  if hit is None:
    closed = jax.make_jaxpr(_impl_function(eqn))(*(_struct(v.aval) for v in eqn.invars))
    hit = _EXPANSIONS[key] = (closed.jaxpr, [to_host(c) for c in closed.consts])
  return hit


@rule("random_bits", "random_split", "random_fold_in", "random_seed", kind="random", multiple=True)
def _random(eqn, *xs):
  jaxpr, consts = expansion(eqn)
  return _eval_jaxpr(jaxpr, consts, xs)


# ----------------------------------------------------------------------------------------------- nested jaxprs

def _callee(eqn) -> Tuple[jcore.Jaxpr, list]:
  """(jaxpr, consts) that call-like equation `eqn` applies to its inputs."""
  sub = eqn.params.get("jaxpr", eqn.params.get("call_jaxpr"))
  if isinstance(sub, jcore.ClosedJaxpr):
    return sub.jaxpr, sub.consts
  if isinstance(sub, jcore.Jaxpr):
    return sub, []
  raise Unsupported(f"primitive '{eqn.primitive.name}': no nested jaxpr to evaluate")


@rule("jit", "pjit", "closed_call", "core_call", "custom_jvp_call", "custom_vjp_call", "checkpoint", "remat",
       kind="call", multiple=True)
def _call(eqn, *xs):
  jaxpr, consts = _callee(eqn)
  return _eval_jaxpr(jaxpr, [to_host(c, v.aval) for c, v in zip(consts, jaxpr.constvars)], xs)


# ----------------------------------------------------------------------------------------------- check / evaluate

def _check_aval(aval, kind: str, name: str) -> None:
  shape, dtype = getattr(aval, "shape", None), getattr(aval, "dtype", None)
  if shape is None or dtype is None or not all(isinstance(d, (int, np.integer)) for d in shape):
    raise Unsupported(f"primitive '{name}': value of type {aval} (not an array of static shape)")
  if is_key(aval):
    if kind not in ("move", "call", "random"):
      raise Unsupported(f"primitive '{name}' on key array {aval}")
    return
  if np.dtype(dtype) not in DTYPES:
    raise Unsupported(f"primitive '{name}' on {aval} (dtype {dtype})")
  if kind == "int" and np.dtype(dtype).kind == "f":
    raise Unsupported(f"primitive '{name}' on floats {aval}")


def _check_eqn(eqn, seen: set) -> None:
  name = eqn.primitive.name
  if name not in RULES:
    raise Unsupported(f"no NumPy rule for primitive '{name}'")
  if eqn.effects:
    raise Unsupported(f"primitive '{name}' has effects {eqn.effects}")
  kind = RULES[name][1]
  for v in list(eqn.invars) + list(eqn.outvars):
    _check_aval(v.aval, kind, name)
    if isinstance(v, jcore.Literal) and is_key(v.aval):
      raise Unsupported(f"primitive '{name}': key literal")
  if kind == "call":
    check(_callee(eqn)[0], _seen=seen)
  elif kind == "random":
    check(expansion(eqn)[0], _seen=seen)
  elif name in FLOAT_ONLY | NOT_FLOAT and (np.dtype(eqn.invars[0].aval.dtype).kind == "f") != (name in FLOAT_ONLY):
    raise Unsupported(f"primitive '{name}' on {eqn.invars[0].aval}")


def check(jaxpr: jcore.Jaxpr, eqns: Optional[Sequence[jcore.JaxprEqn]] = None, _seen: Optional[set] = None) -> None:
  """Raises `Unsupported` unless every equation of `eqns` (default: jaxpr.eqns), nested ones and the random
  primitives' implementations included, has a NumPy rule for its types."""
  seen = set() if _seen is None else _seen
  if eqns is None:
    if id(jaxpr) in seen:
      return
    seen.add(id(jaxpr))   # the jaxprs stay alive (referenced by their equations or the cache) during the check
    eqns = jaxpr.eqns
  for eqn in eqns:
    _check_eqn(eqn, seen)


def _apply(eqn, xs: Sequence[np.ndarray]) -> List[np.ndarray]:
  try:
    outs = RULES[eqn.primitive.name][0](eqn, *xs)
  except (TypeError, ValueError, IndexError, KeyError) as e:   # a form of the primitive no rule handles
    raise Unsupported(f"primitive '{eqn.primitive.name}': {e!r}") from e
  checked = []
  for v, x in zip(eqn.outvars, outs):
    x, want = np.asarray(x), physical_aval(v.aval)
    if x.shape != tuple(want.shape) or x.dtype != want.dtype:
      raise Unsupported(f"primitive '{eqn.primitive.name}': NumPy gave {x.dtype}{list(x.shape)}, expected {want}")
    checked.append(x)
  return checked


def _eval_jaxpr(jaxpr: jcore.Jaxpr, consts: Sequence[np.ndarray], args: Sequence[np.ndarray],
                eqns: Optional[Sequence[jcore.JaxprEqn]] = None) -> List[np.ndarray]:
  env: Dict[jcore.Var, np.ndarray] = dict(zip(jaxpr.constvars, consts))
  env.update(zip(jaxpr.invars, args))
  read = lambda v: literal(v) if isinstance(v, jcore.Literal) else env[v]
  for eqn in jaxpr.eqns if eqns is None else eqns:
    for v, x in zip(eqn.outvars, _apply(eqn, [read(v) for v in eqn.invars])):
      if not isinstance(v, jcore.DropVar):
        env[v] = x
  return [read(v) for v in jaxpr.outvars]


def evaluate(jaxpr: jcore.Jaxpr, consts: Sequence[Any], args: Sequence[Any],
             eqns: Optional[Sequence[jcore.JaxprEqn]] = None) -> list:
  """The outputs of `jaxpr` (only `eqns` evaluated, default all) on `args` (flat arrays or key arrays), computed
  with NumPy: NumPy arrays, key arrays for key outputs. Raises `Unsupported` (before evaluating) as `check` does."""
  check(jaxpr, eqns)
  consts = [to_host(c, v.aval) for c, v in zip(consts, jaxpr.constvars)]
  args = [to_host(x, v.aval) for x, v in zip(args, jaxpr.invars)]
  with np.errstate(all="ignore"):   # uint32 wraparound, NaN / inf as XLA computes them
    outs = _eval_jaxpr(jaxpr, consts, args, eqns)
  return [from_host(x, v.aval) for x, v in zip(outs, jaxpr.outvars)]


def evaluate_closed(closed: jcore.ClosedJaxpr, *args) -> list:
  """`evaluate` of a closed jaxpr on flat arguments."""
  return evaluate(closed.jaxpr, closed.consts, args)
