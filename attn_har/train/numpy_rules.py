"""NumPy rules for the primitives `numpy_eval` evaluates, bit-identical to XLA:CPU; values and types.

Values are NumPy arrays; a typed PRNG key array of shape S is held as its raw key data, shape (*S, *key_shape)
(uint32 (*S, 2) for threefry). The threefry hash itself is in `numpy_threefry`.

Only exactly rounded operations have rules: integer and bit operations, float +, -, *, /, sqrt, max, min,
comparisons, conversions and data movement. They follow XLA:CPU's semantics where NumPy's differ: float max / min
order -0 < +0 and pass NaNs on with XLA's bits; float -> int conversion saturates (NaN -> 0); integer division by
zero gives -1 and its remainder the dividend; shifts by the bit width or more give 0 (or the sign); float arithmetic
flushes denormal inputs and results to signed zero, as XLA:CPU runs with FTZ / DAZ. Not reproduced: which payload
an arithmetic operation on two NaNs returns, and denormals that an XLA simplification (x * 1 -> x) keeps.

`RULES`: primitive name -> (rule(eqn, *values) -> list of values, kind); `numpy_eval` adds the random primitives
and nested jaxprs and checks each equation against it and `DTYPES` before evaluating.
"""

from typing import Callable, Dict, Sequence, Tuple

import jax
import numpy as np
from jax._src import core as _core
from jax.extend import core as jcore

from attn_har.train.numpy_threefry import iota_2x32_shape, threefry2x32


class Unsupported(NotImplementedError):
  """The jaxpr holds an equation NumPy cannot evaluate bit-identically to XLA (the message names it)."""


_FLOATS = frozenset(map(np.dtype, ("float32", "float64")))
DTYPES = _FLOATS | frozenset(map(np.dtype, (
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")))


# ----------------------------------------------------------------------------------------------- values and types

def is_key(aval) -> bool:
  """Whether `aval` is a typed PRNG key array."""
  return jax.dtypes.issubdtype(aval.dtype, jax.dtypes.prng_key)


def physical_aval(aval):
  """The aval of `aval`'s NumPy value: a key array's raw data, else `aval` itself."""
  return _core.physical_aval(aval) if is_key(aval) else aval


def _key_ndim(aval) -> int:
  """Number of trailing key-data dimensions of `aval`'s value (0 unless a key array)."""
  return len(aval.dtype._impl.key_shape) if is_key(aval) else 0


def to_host(x, aval=None) -> np.ndarray:
  """NumPy value of an array or key array `x` (keys as their raw data)."""
  dtype = getattr(x, "dtype", None) if aval is None else aval.dtype
  if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
    return np.asarray(jax.random.key_data(x))
  return np.asarray(x) if aval is None else np.asarray(x, physical_aval(aval).dtype)


def from_host(x: np.ndarray, aval):
  """`x` as a value of type `aval`: key arrays wrapped with their impl, else a C-contiguous NumPy array."""
  if is_key(aval):
    return jax.random.wrap_key_data(np.asarray(x), impl=aval.dtype._impl.name)
  return np.asarray(x, order="C")


def literal(v: jcore.Literal) -> np.ndarray:
  return np.asarray(v.val, physical_aval(v.aval).dtype)


def _flush(x: np.ndarray) -> np.ndarray:
  """Denormal floats of `x` replaced by zeros of their sign (XLA:CPU's FTZ / DAZ); other arrays unchanged."""
  x = np.asarray(x)
  if x.dtype.kind != "f":
    return x
  small = np.abs(x) < np.finfo(x.dtype).tiny   # zeros and denormals (NaN compares false)
  return np.where(small, np.copysign(np.zeros((), x.dtype), x), x) if small.any() else x


# ----------------------------------------------------------------------------------------------- rules

# name -> (rule(eqn, *values) -> list of values, kind); kinds: "move" (any type, keys included), "num" (bool, int,
# float32 / float64), "int" (bool and integers), "call" (a nested jaxpr), "random" (jax's implementation's jaxpr).
RULES: Dict[str, Tuple[Callable, str]] = {}


def rule(*names: str, kind: str, multiple: bool = False):
  """Registers f(eqn, *values) under `names`; a single-result f returns its value."""
  def register(f):
    g = f if multiple else (lambda eqn, *xs: [f(eqn, *xs)])
    for name in names:
      RULES[name] = (g, kind)
    return f
  return register


def supported_primitives() -> frozenset:
  """Names of the primitives with a NumPy rule."""
  return frozenset(RULES)


def _elementwise(names: Sequence[str], kind: str, on_float: Callable, on_int: Callable, flush: bool = True):
  """Rules for elementwise ops: floats through `on_float` (with FTZ / DAZ if `flush`), others through `on_int`."""
  def f(eqn, *xs):
    xs = [np.asarray(x) for x in xs]
    if xs[0].dtype.kind == "f":
      return _flush(on_float(*map(_flush, xs))) if flush else on_float(*xs)
    return on_int(*xs)
  rule(*names, kind=kind)(f)


def _extreme(a, b, wins: Callable, tie_sign: Callable) -> np.ndarray:
  """XLA:CPU's float max / min bit for bit: a if a is NaN or wins over b, b if b wins, else (a tie, or b NaN) b
  with the sign bit tie_sign(a's, b's), so that max(-0, +0) = +0 and min(-0, +0) = -0."""
  a, b = np.broadcast_arrays(a, b)
  bits = np.dtype(f"uint{a.dtype.itemsize * 8}")
  sign = bits.type(1 << (a.dtype.itemsize * 8 - 1))
  ua, ub = a.view(bits), b.view(bits)
  tie = (ub & ~sign) | tie_sign(ua & sign, ub & sign)
  out = np.where(wins(a, b) | np.isnan(a), ua, np.where(wins(b, a), ub, tie))
  return out.view(a.dtype)


def _fmax(a, b):
  return _extreme(a, b, np.greater, np.bitwise_and)


def _fmin(a, b):
  return _extreme(a, b, np.less, np.bitwise_or)


def _safe_divisor(a, b):
  """(b with 0 and, for INT_MIN / -1, -1 replaced by 1, mask of b == 0)."""
  zero = b == 0
  bad = zero
  if b.dtype.kind == "i":
    bad = zero | ((a == np.iinfo(a.dtype).min) & (b == -1))
  return np.where(bad, np.ones((), b.dtype), b), zero


def _int_div(a, b):
  """XLA's integer division: truncates; x / 0 = -1 (all ones), INT_MIN / -1 = INT_MIN."""
  d, zero = _safe_divisor(a, b)
  q = a // d
  if a.dtype.kind == "i":
    q = q + ((q * d != a) & ((a < 0) != (d < 0))).astype(a.dtype)   # floor -> truncation
  return np.where(zero, ~np.zeros((), a.dtype), q)


def _int_rem(a, b):
  """XLA's integer remainder: the dividend's sign; x % 0 = x, INT_MIN % -1 = 0."""
  d, zero = _safe_divisor(a, b)
  return np.where(zero, a, np.fmod(a, d))


# XLA:CPU's float rem flushes a denormal divisor but not the dividend: no rule
FLOAT_ONLY, NOT_FLOAT = frozenset({"sqrt"}), frozenset({"rem"})
_elementwise(["add"], "num", np.add, np.add)
_elementwise(["sub"], "num", np.subtract, np.subtract)
_elementwise(["mul"], "num", np.multiply, np.multiply)
_elementwise(["div"], "num", np.divide, _int_div)
_elementwise(["rem"], "num", None, _int_rem)
_elementwise(["max"], "num", _fmax, np.maximum)
_elementwise(["min"], "num", _fmin, np.minimum)
_elementwise(["neg"], "num", np.negative, np.negative, flush=False)
_elementwise(["abs"], "num", np.abs, np.abs, flush=False)
_elementwise(["sqrt"], "num", np.sqrt, None)
_elementwise(["square"], "num", lambda x: x * x, lambda x: x * x)
_elementwise(["clamp"], "num", lambda lo, x, hi: _fmin(_fmax(x, lo), hi),
             lambda lo, x, hi: np.minimum(np.maximum(x, lo), hi))
for _name, _op in [("eq", np.equal), ("ne", np.not_equal), ("lt", np.less), ("le", np.less_equal),
                   ("gt", np.greater), ("ge", np.greater_equal)]:
  _elementwise([_name], "num", _op, _op)
for _name, _op in [("and", np.bitwise_and), ("or", np.bitwise_or), ("xor", np.bitwise_xor), ("not", np.invert)]:
  _elementwise([_name], "int", None, _op)


def _shift(kind: str):
  """Shift rule: amounts are read as unsigned; >= the bit width gives 0 (left, logical) or the sign (arithmetic)."""
  def f(eqn, x, s):
    x, s = np.asarray(x), np.asarray(s)
    bits = x.dtype.itemsize * 8
    signed, unsigned = np.dtype(f"int{bits}"), np.dtype(f"uint{bits}")
    u = s.view(unsigned)
    if kind == "arithmetic":
      return (x.view(signed) >> np.minimum(u, bits - 1).astype(signed)).view(x.dtype)
    xs = x.view(unsigned)
    if u.ndim == 0 and u < bits:   # the common case: a literal shift
      out = xs << u if kind == "left" else xs >> u
    else:
      out = xs << np.minimum(u, bits - 1) if kind == "left" else xs >> np.minimum(u, bits - 1)
      out = np.where(u >= bits, np.zeros((), unsigned), out)
    return np.asarray(out).view(x.dtype)
  return f


rule("shift_left", kind="int")(_shift("left"))
rule("shift_right_logical", kind="int")(_shift("logical"))
rule("shift_right_arithmetic", kind="int")(_shift("arithmetic"))


def _float_to_int(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
  """XLA's float -> int conversion: truncation, saturating at the type's bounds, NaN -> 0."""
  info = np.iinfo(dtype)
  t = np.trunc(x)
  over = t >= np.asarray(2.0 ** (info.bits - (info.min < 0)), x.dtype)   # 2^31 (int32), 2^32 (uint32): exact
  under = t <= np.asarray(float(info.min), x.dtype)
  mid = np.where(over | under | np.isnan(t), np.zeros((), x.dtype), t).astype(dtype)
  return np.where(over, dtype.type(info.max), np.where(under, dtype.type(info.min), mid))


@rule("convert_element_type", kind="num")
def _convert(eqn, x):
  x, dtype = np.asarray(x), np.dtype(eqn.outvars[0].aval.dtype)
  if x.dtype == dtype:
    return x
  if x.dtype.kind == "f":
    x = _flush(x)
    if dtype == np.bool_:
      return x != 0
    return _float_to_int(x, dtype) if dtype.kind in "iu" else _flush(x.astype(dtype))
  return x != 0 if dtype == np.bool_ else x.astype(dtype)


@rule("bitcast_convert_type", kind="num")
def _bitcast(eqn, x):
  out = eqn.outvars[0].aval
  return np.ascontiguousarray(x).view(out.dtype).reshape(out.shape)


@rule("iota", kind="num")
def _iota(eqn):
  p = eqn.params
  shape, dim = tuple(p["shape"]), p["dimension"]
  line = np.arange(shape[dim], dtype=np.dtype(p["dtype"]))
  return np.broadcast_to(line.reshape([-1 if i == dim else 1 for i in range(len(shape))]), shape)


def _trailing(eqn, i: int = 0) -> tuple:
  """Indices of the key-data dimensions of equation `eqn`'s output i: () unless it is a key array."""
  aval = eqn.outvars[i].aval
  return tuple(range(aval.ndim, aval.ndim + _key_ndim(aval)))


def _out_shape(eqn, i: int = 0) -> tuple:
  return tuple(physical_aval(eqn.outvars[i].aval).shape)


@rule("broadcast_in_dim", kind="move")
def _broadcast_in_dim(eqn, x):
  out = _out_shape(eqn)
  dims = tuple(eqn.params["broadcast_dimensions"]) + _trailing(eqn)
  shape = [1] * len(out)
  for i, d in enumerate(dims):
    shape[d] = np.shape(x)[i]
  return np.broadcast_to(np.reshape(x, shape), out)


@rule("reshape", kind="move")
def _reshape(eqn, x):
  dims = eqn.params.get("dimensions")
  if dims is not None:
    x = np.transpose(x, tuple(dims) + tuple(range(len(dims), np.ndim(x))))
  return np.reshape(x, _out_shape(eqn))


@rule("squeeze", kind="move")
def _squeeze(eqn, x):
  return np.reshape(x, _out_shape(eqn))


@rule("transpose", kind="move")
def _transpose(eqn, x):
  return np.transpose(x, tuple(eqn.params["permutation"]) + _trailing(eqn))


@rule("slice", kind="move")
def _slice(eqn, x):
  p = eqn.params
  strides = p["strides"] or (1,) * len(p["start_indices"])
  return np.asarray(x)[tuple(map(slice, p["start_indices"], p["limit_indices"], strides))]


@rule("rev", kind="move")
def _rev(eqn, x):
  return np.flip(x, tuple(eqn.params["dimensions"]))


@rule("concatenate", kind="move")
def _concatenate(eqn, *xs):
  return np.concatenate(xs, axis=eqn.params["dimension"])


@rule("stack", kind="move")
def _stack(eqn, *xs):
  return np.stack(xs, axis=eqn.params["axis"])


@rule("split", kind="move", multiple=True)
def _split(eqn, x):
  p = eqn.params
  return np.split(x, np.cumsum(p["sizes"])[:-1], axis=p["axis"])


@rule("select_n", kind="move")
def _select_n(eqn, which, *cases):
  which = np.asarray(which)
  if which.ndim:
    which = which.reshape(which.shape + (1,) * len(_trailing(eqn)))
  if len(cases) == 1:
    return np.broadcast_to(cases[0], _out_shape(eqn))
  if which.dtype == np.bool_:
    return np.where(which, cases[1], cases[0])
  return np.choose(which, cases)


def _clamped_starts(x, starts, sizes) -> tuple:
  """dynamic_slice's start indices, clamped so that the window lies in x, as slices."""
  return tuple(slice(s, s + n) for s, n in
               ((int(min(max(int(s), 0), d - n)), n) for s, d, n in zip(starts, np.shape(x), sizes)))


@rule("dynamic_slice", kind="move")
def _dynamic_slice(eqn, x, *starts):
  return np.asarray(x)[_clamped_starts(x, starts, eqn.params["slice_sizes"])]


@rule("dynamic_update_slice", kind="move")
def _dynamic_update_slice(eqn, x, update, *starts):
  out = np.array(x)
  out[_clamped_starts(x, starts, np.shape(update)[:len(starts)])] = update
  return out


@rule("copy", "copy_p", "sharding_constraint", "random_wrap", "random_unwrap", kind="move")
def _identity(eqn, x):
  return x


@rule("optimization_barrier", kind="move", multiple=True)
def _identity_n(eqn, *xs):
  return list(xs)


def _reduction(ufunc, initial: Callable):
  def f(eqn, x):
    x = np.asarray(x)
    return ufunc.reduce(x, axis=tuple(eqn.params["axes"]), dtype=x.dtype, initial=initial(x.dtype))
  return f


_iinfo = lambda dt: np.iinfo(dt) if dt.kind != "b" else None
rule("reduce_sum", kind="int")(_reduction(np.add, lambda dt: dt.type(0)))
rule("reduce_max", kind="int")(_reduction(np.maximum, lambda dt: dt.type(_iinfo(dt).min if _iinfo(dt) else 0)))
rule("reduce_min", kind="int")(_reduction(np.minimum, lambda dt: dt.type(_iinfo(dt).max if _iinfo(dt) else 1)))
rule("reduce_and", kind="int")(_reduction(np.bitwise_and, lambda dt: ~dt.type(0)))
rule("reduce_or", kind="int")(_reduction(np.bitwise_or, lambda dt: dt.type(0)))
rule("reduce_xor", kind="int")(_reduction(np.bitwise_xor, lambda dt: dt.type(0)))


# ----------------------------------------------------------------------------------------------- threefry

@rule("threefry2x32", kind="int", multiple=True)
def _threefry2x32(eqn, k1, k2, x1, x2):
  return list(threefry2x32(k1, k2, x1, x2))


@rule("iota_2x32_shape", kind="int", multiple=True)
def _iota_2x32_shape(eqn):
  return list(iota_2x32_shape(eqn.params["shape"]))
