"""FLOP counting with the thesis's convention (keras-flops 0.1.2 on the frozen inference graph at batch 1).

The model is traced, never run (`jax.make_jaxpr` of `init_with_output`, or of `apply` over given variables). The
jaxpr is walked, recursing into jit / custom_jvp / custom_vjp / scan / cond bodies, with per-primitive rules that
mirror the TF ops Keras emits (docs/thesis_code.md §4):

  conv 2·Ho·Wo·Co·kh·kw·Ci/groups    dot_general (Dense) 2·in·out    add / sub / mul / div (BiasAdd too) #outputs
  reduce_sum / reduce_max / argmax #in − #out (a mean, reduce_sum + div, costs #inputs; argmax is how
  `layers.reduce_max` takes TF's Max)    pooling windows kh·kw·#outputs
  strided slice x[:, ::s, ::s] (Keras's MaxPooling2D(1, strides=s) shortcut) #outputs
  everything else (ReLU, ReLU6, sigmoid, exp, pad, concat, reshape, min, gather, jax.image.resize) 0.

Layers whose JAX arithmetic differs from the one TF op Keras emits are counted as a whole, by module, through
`nn.intercept_methods`: each call runs inside a `jax.named_scope` marker whose id keys its count (computed at trace
time from the output), and the walker adds that count once (times the number of slices when `nn.vmap` batched the
call) and skips the marked equations. `nn.BatchNorm` costs 2·N + 6·C (keras-flops's FusedBatchNormV3), the
`attn_har.layers.DepthwiseConv` 2·Ho·Wo·C·kh·kw (+ #outputs with a bias) whichever implementation it runs.

Like a frozen TF graph, only arithmetic that depends on the input and reaches the output is counted: weight-only
maths (BN's scale·rsqrt(var + ε), a resize's index maths) folds away, and values computed but never used (sown maps,
the g_a that the thesis's L2PA head ignores) are pruned.

Keras models end in a softmax layer, ours return logits, so the final softmax (5·K) is added unless the traced graph
already exponentiates a tensor of the output's shape (the thesis gate head returns log of averaged softmaxes).
Softmaxes inside a model are counted by their primitives (about 4·N instead of TF's 5·N), the one deviation left:
every thesis model is within 0.0002 % of its thesis count, MobileNetV2, ResNet50V2 and both CBAM models exactly.
"""

import collections
import itertools
import re
from typing import Any, Callable, Mapping, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.extend import core as jcore

LeafRule = Callable[[nn.Module, tuple, Any], int]

_MARKER = re.compile(r"__flops_leaf_(\d+)__")

# Elementwise ops TF counts at one FLOP per output (AddV2 / BiasAdd / Sub / Mul / RealDiv).
_ELEMENTWISE = {"add", "add_any", "sub", "mul", "div"}
# Reductions TF counts at #inputs − #outputs (Sum, Max); Min and ArgMax count 0 there.
_REDUCTIONS = {"reduce_sum", "reduce_max", "argmax"}  # argmax: how `layers.reduce_max` takes a max
_POOLS = {"reduce_window_max", "reduce_window_sum", "reduce_window"}
# Named jit calls that map to a single zero-cost TF op.
_ZERO_CALLS = {"_resize", "resize"}


def _size(aval) -> int:
  return int(np.prod(aval.shape, dtype=np.int64))


def _batchnorm_flops(module: nn.Module, args: tuple, out: Any) -> int:
  """FusedBatchNormV3 in keras-flops 0.1.2: 2·N + 6·C."""
  axes = module.axis if isinstance(module.axis, tuple) else (module.axis,)
  channels = int(np.prod([out.shape[a] for a in axes]))
  return 2 * int(np.prod(out.shape)) + 6 * channels


def _depthwise_flops(module: nn.Module, args: tuple, out: Any) -> int:
  """DepthwiseConv2dNative: 2·Ho·Wo·C·kh·kw, plus BiasAdd (#outputs) when the module has a bias."""
  params = module.variables.get("params", {})
  kernel_size = getattr(module, "kernel_size", None)
  if kernel_size is None:
    if "kernel" not in params:
      raise ValueError(f"depthwise module {module.path} has neither `kernel_size` nor a 'kernel' parameter")
    kernel_size = params["kernel"].shape[:2]
  kernel_size = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
  n = int(np.prod(out.shape))
  return 2 * n * int(np.prod(kernel_size)) + (n if "bias" in params else 0)


def default_leaf_rules() -> dict[type, LeafRule]:
  """Module classes counted as a whole: `nn.BatchNorm` and the model zoo's depthwise convolution."""
  from attn_har.layers import depthwise  # pylint: disable=g-import-not-at-top  (imported late: no cycle)
  return {nn.BatchNorm: _batchnorm_flops, depthwise.DepthwiseConv: _depthwise_flops}


def _rule(eqn) -> int:
  """FLOPs of one data-dependent primitive equation."""
  name = eqn.primitive.name
  out = eqn.outvars[0].aval
  if name == "conv_general_dilated":
    rhs = eqn.invars[1].aval
    out_features = rhs.shape[eqn.params["dimension_numbers"].rhs_spec[0]]
    return 2 * _size(out) * (_size(rhs) // out_features)
  if name == "dot_general":
    (lhs_contract, _), _ = eqn.params["dimension_numbers"]
    lhs = eqn.invars[0].aval
    return 2 * _size(out) * int(np.prod([lhs.shape[d] for d in lhs_contract], dtype=np.int64))
  if name in _ELEMENTWISE:
    return _size(out)
  if name in _REDUCTIONS:
    return _size(eqn.invars[0].aval) - _size(out)
  if name in _POOLS:
    return int(np.prod(eqn.params["window_dimensions"])) * _size(out)
  if name == "slice" and any(s > 1 for s in (eqn.params.get("strides") or ())):
    return _size(out)  # x[:, ::s, ::s] is Keras's MaxPooling2D(1, strides=s) shortcut: 1·#outputs
  return 0


def _subjaxprs(eqn) -> list:
  return [p for p in eqn.params.values() if isinstance(p, (jcore.ClosedJaxpr, jcore.Jaxpr))]


def _as_jaxpr(j):
  return j.jaxpr if isinstance(j, jcore.ClosedJaxpr) else j


def _used_eqns(jaxpr: jcore.Jaxpr, needed: Optional[list[bool]]) -> list[list[bool]]:
  """Dead-code elimination: for each equation, which of its outputs reach a needed output of `jaxpr`.

  A frozen TF graph holds only the ops the output depends on, so values computed and dropped (e.g. a sown map, or
  g_a that the thesis's L2PA head never reads) cost nothing.
  """
  needed = [True] * len(jaxpr.outvars) if needed is None else needed
  wanted = {v for v, n in zip(jaxpr.outvars, needed) if n and isinstance(v, jcore.Var)}
  used = []
  for eqn in reversed(jaxpr.eqns):
    out_needed = [v in wanted for v in eqn.outvars]
    if any(out_needed):
      wanted.update(v for v in eqn.invars if isinstance(v, jcore.Var))
    used.append(out_needed)
  return used[::-1]


class _Walk:
  """Counts FLOPs over a jaxpr per name scope; also records the shapes of data-dependent `exp` outputs."""

  def __init__(self, leaf_counts: Mapping[str, tuple[int, int]]):
    self.leaf_counts = leaf_counts
    self.exp_shapes: set[tuple] = set()

  def __call__(self, jaxpr: jcore.Jaxpr, live: list[bool], scope: str = "",
               needed: Optional[list[bool]] = None) -> collections.Counter:
    """Counts `jaxpr` whose inputs depend on the data where `live`, for the outputs marked `needed` (all if None)."""
    used = _used_eqns(jaxpr, needed)
    dep = dict(zip(jaxpr.invars, live))
    leaf_outputs = {}  # leaf id -> (scope, size of its last equation's output)
    counts = collections.Counter()
    for eqn, out_needed in zip(jaxpr.eqns, used):
      in_dep = [isinstance(v, jcore.Var) and dep.get(v, False) for v in eqn.invars]
      for v in eqn.outvars:
        dep[v] = any(in_dep)
      if not any(out_needed):
        continue
      name_stack = str(eqn.source_info.name_stack)
      eqn_scope = re.sub("/+", "/", "/".join(p for p in (scope, _MARKER.sub("", name_stack).strip("/")) if p))
      marker = _MARKER.search(name_stack)
      if marker:
        leaf_outputs[marker.group(1)] = (eqn_scope, _size(eqn.outvars[0].aval))
      elif any(in_dep):
        counts.update(self._eqn(eqn, in_dep, eqn_scope, out_needed))
    for leaf_id, (eqn_scope, size) in leaf_outputs.items():
      # Under nn.vmap the leaf saw one slice; its output here is batched: scale by the number of slices.
      flops, traced_size = self.leaf_counts[leaf_id]
      counts[eqn_scope] += flops * (size // traced_size if size % traced_size == 0 and size > traced_size else 1)
    return counts

  def _eqn(self, eqn, in_dep: list[bool], scope: str, needed: list[bool]) -> collections.Counter:
    name = eqn.primitive.name
    if name == "exp":
      self.exp_shapes.add(tuple(eqn.outvars[0].aval.shape))
    if name in ("jit", "pjit") and eqn.params.get("name") in _ZERO_CALLS:
      return collections.Counter()
    if name == "while":
      raise ValueError("count_flops cannot count a `while` loop (its trip count is unknown at trace time)")
    if name == "cond":
      branches = [self(_as_jaxpr(b), in_dep[1:], scope) for b in eqn.params["branches"]]
      return max(branches, key=lambda c: sum(c.values()))
    if name == "scan":
      body = _as_jaxpr(eqn.params["jaxpr"])
      inner = self(body, [any(in_dep)] * len(body.invars), scope)
      return collections.Counter({k: v * eqn.params["length"] for k, v in inner.items()})
    subs = _subjaxprs(eqn)
    if subs:
      counts = collections.Counter()
      for sub in map(_as_jaxpr, subs):
        live = in_dep if len(sub.invars) == len(in_dep) else [any(in_dep)] * len(sub.invars)
        counts.update(self(sub, live, scope, needed if len(sub.outvars) == len(needed) else None))
      return counts
    return collections.Counter({scope: _rule(eqn)})


def _marking_interceptor(rules: Mapping[type, LeafRule], counts: dict[str, tuple[int, int]]):
  """An `nn.intercept_methods` interceptor that runs every leaf-module call inside a marker scope.

  The leaf's count and output size are stored in `counts` under the marker's id (at trace time, from the output).
  """
  ids = itertools.count()

  def interceptor(next_fun, args, kwargs, context):
    rule = next((r for cls, r in rules.items() if isinstance(context.module, cls)), None)
    if rule is None or context.method_name != "__call__":
      return next_fun(*args, **kwargs)
    leaf_id = str(next(ids))
    with jax.named_scope(f"__flops_leaf_{leaf_id}__"):
      out = next_fun(*args, **kwargs)
    counts[leaf_id] = (rule(context.module, args, out), int(np.prod(out.shape)))
    return out

  return interceptor


def _trace(model, input_shape, variables, apply_args, leaf_rules, dtype):
  """Traces the forward pass; returns (per-scope Counter, output aval, walker).

  Without `variables`, `model.init_with_output` is traced once (its weight initialisation does not depend on the
  input, so costs nothing, and only the output's equations are kept); with them, `model.apply`.
  """
  is_shape = lambda s: isinstance(s, tuple) and all(isinstance(d, (int, np.integer)) for d in s)
  x = jax.tree.map(lambda s: jax.ShapeDtypeStruct(tuple(s), dtype), input_shape, is_leaf=is_shape)
  rules = default_leaf_rules() if leaf_rules is None else leaf_rules
  leaf_counts: dict[str, tuple[int, int]] = {}

  def forward(variables, x):
    with nn.intercept_methods(_marking_interceptor(rules, leaf_counts)):
      if variables is None:
        return model.init_with_output(jax.random.key(0), x, *apply_args)[0]
      return model.apply(variables, x, *apply_args)

  closed, out_shape = jax.make_jaxpr(forward, return_shape=True)(variables, x)
  n_var = len(jax.tree.leaves(variables))
  live = [False] * n_var + [True] * (len(closed.jaxpr.invars) - n_var)
  walk = _Walk(leaf_counts)
  counts = walk(closed.jaxpr, live)
  return counts, jax.tree.leaves(out_shape)[0], walk


def flops_breakdown(model: nn.Module, input_shape: Any, *, variables: Any = None, apply_args: tuple = (False,),
                    final_softmax: Optional[bool] = None, leaf_rules: Optional[Mapping[type, LeafRule]] = None,
                    dtype=jnp.float32) -> dict[str, int]:
  """`count_flops` split by name scope (the flax module path, e.g. 'backbone/block_5/expand'); same arguments.

  The final softmax, when added, is keyed 'softmax (Keras top)'. The values sum to `count_flops`.
  """
  counts, out, walk = _trace(model, input_shape, variables, apply_args, leaf_rules, dtype)
  if final_softmax is None:
    final_softmax = tuple(out.shape) not in walk.exp_shapes
  if final_softmax:
    counts["softmax (Keras top)"] += 5 * _size(out)
  return {k: int(v) for k, v in counts.items() if v}


def count_flops(model: nn.Module, input_shape: Any, *, variables: Any = None, apply_args: tuple = (False,),
                final_softmax: Optional[bool] = None, leaf_rules: Optional[Mapping[type, LeafRule]] = None,
                dtype=jnp.float32) -> int:
  """FLOPs of one inference forward pass, with the thesis's keras-flops convention.

  Args:
    model: a flax.linen module called as `model.apply(variables, x, *apply_args)`.
    input_shape: the input shape with its batch axis, as for `count_params`: (1, 224, 224, 3) is the thesis's
      convention (batch 1); or a pytree (dict) of such tuples for a model taking a dict.
    variables: the model's variables (arrays or ShapeDtypeStructs); by default none are needed (the forward pass
      is traced inside `model.init_with_output`).
    apply_args: positional arguments after `x`; (False,) is `train=False` (inference).
    final_softmax: add the 5·K of the Keras softmax layer. None: add it unless the graph already exponentiates a
      tensor of the output's shape.
    leaf_rules: module class -> rule(module, args, output) -> FLOPs (output: the traced array), counted as a whole
      instead of by primitives; defaults to `default_leaf_rules()`.
    dtype: input dtype.

  Returns:
    The FLOP count, an int.
  """
  return sum(flops_breakdown(model, input_shape, variables=variables, apply_args=apply_args,
                             final_softmax=final_softmax, leaf_rules=leaf_rules, dtype=dtype).values())
