"""The model-parameter randomisation test (Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018).

A map that stays the same when the model's weights are destroyed explains nothing about the model (an edge
detector of the input passes every localisation metric). The test re-initialises the layers in a cascade from
the top (the logits) down, recomputes every method's maps after each step, and compares them with the trained
model's maps on the same inputs and for the same classes:

  Spearman rank correlation per map over its pixels, signed ('spearman', the map as given) and of absolute values
      ('spearman_abs'); both of the paper's variants. Ties get average ranks. Two constant maps count as
      identical (1), one constant map against a varying one as unrelated (0).
  SSIM (Wang et al., "Image Quality Assessment: From Error Visibility to Structural Similarity", IEEE TIP 2004)
      between the min-max normalised maps (data range 1): 11 x 11 Gaussian window of std 1.5, K1 = 0.01,
      K2 = 0.03, averaged over the window positions that fit inside the map (no padding).

Flag rule: a method is flagged when its mean 'spearman_abs' over the inputs, after every layer is randomised (the
cascade's last step), stays above `FLAG_THRESHOLD` (0.5): its maps then rank pixels mostly the same way for a
model with no trained weight left. The absolute-value variant is used because it is the stricter one: a signed
map can flip sign with a layer's weights while its structure stays.

Layers and their order: `layer_order` groups the parameter leaves by the module that owns them (or by a path
prefix of `depth` keys, e.g. depth=2 for 'backbone/block_5' of an `ImageClassifier`) and orders the groups by when
the forward pass first calls them, last called first (the classifier, then the deepest block, ...). The call
order is traced (`jax.eval_shape`, nothing computed) because the variable trees themselves come back with sorted
keys (block_10 before block_2). The randomised weights are a fresh `model.init` with another seed: every leaf is
re-drawn with the layer's own initialiser and scale (BatchNorm scale and bias go back to 1 and 0). Only the
'params' collection is re-drawn by default; BatchNorm's running statistics stay the trained ones.
"""

import pathlib
from typing import Any, Callable, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

import flax.linen as nn
import jax
import numpy as np
from flax import traverse_util
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy import stats as scipy_stats

from attn_har.analysis import combine

FLAG_THRESHOLD = 0.5
METRICS = ("spearman", "spearman_abs", "ssim")
# maps_fn(variables, x, labels) -> {method: maps [N, H, W]}
MapsFn = Callable[[Any, np.ndarray, np.ndarray], Mapping[str, np.ndarray]]


class SanityResult(NamedTuple):
  """Similarity of each method's maps to the trained model's maps after each cascade step.

  Attributes:
    steps: ['trained', layer_1, layer_2, ...]: step k > 0 has layers 1..k randomised (top first).
    spearman: {method: [S + 1, N]} signed rank correlation per input (row 0: trained vs itself = 1).
    spearman_abs: {method: [S + 1, N]} rank correlation of absolute values.
    ssim: {method: [S + 1, N]} SSIM of the min-max normalised maps.
    constant: {method: [S + 1, N]} bool, the step's map has no contrast (a constant map, e.g. a saturated
      attention map of an untrained model or the uniform baseline: against a constant trained map it scores 1).
  """
  steps: List[str]
  spearman: Dict[str, np.ndarray]
  spearman_abs: Dict[str, np.ndarray]
  ssim: Dict[str, np.ndarray]
  constant: Dict[str, np.ndarray]


def layer_order(model: nn.Module, variables: Any, x: Any, depth: Optional[int] = None,
                apply_args: Sequence[Any] = (False,)) -> List[str]:
  """The model's parameter groups, top (last called, e.g. the classifier) first.

  Args:
    model: a flax module called as `model.apply(variables, x, *apply_args)`.
    variables: its variables (only the 'params' tree's structure is read).
    x: an input batch (only its shape and dtype are used).
    depth: None groups by the module owning the leaves (e.g. 'backbone/block_5/expand'); an int groups by the
      first `depth` keys of the path (e.g. 2: 'backbone/block_5'; 1: 'backbone', 'predictions').
    apply_args: positional arguments after `x` ((False,) = inference).

  Returns:
    Group paths joined by '/', top first. Groups the forward pass never calls come last.
  """
  if depth is not None and depth < 1:
    raise ValueError(f"depth must be None or >= 1, got {depth}")
  if "params" not in variables:
    raise KeyError(f"variables have no 'params' collection; collections: {sorted(variables)}")
  calls: List[Tuple[str, ...]] = []

  def record(next_fun, args, kwargs, context):
    if context.module.path:
      calls.append(tuple(context.module.path))
    return next_fun(*args, **kwargs)

  def trace(variables, x):
    with nn.intercept_methods(record):
      return model.apply(variables, x, *apply_args)

  jax.eval_shape(trace, variables, x)
  groups = []
  for key in traverse_util.flatten_dict(_as_dict(variables["params"])):
    owner = key[:-1] if depth is None else key[:min(depth, len(key) - 1)]
    if owner and owner not in groups:
      groups.append(owner)

  def first_call(group):
    return next((i for i, c in enumerate(calls) if c[:len(group)] == group), len(calls))

  # Top first: the latest first call comes first; uncalled groups (first_call = len(calls)) go last.
  ranked = sorted(groups, key=lambda g: (first_call(g) == len(calls), -first_call(g)))
  return ["/".join(g) for g in ranked]


def _as_dict(tree: Any) -> dict:
  return tree.unfreeze() if hasattr(tree, "unfreeze") else dict(tree)


def fresh_variables(model: nn.Module, x: Any, seed: int, apply_args: Sequence[Any] = (False,)) -> Any:
  """A newly initialised set of the model's variables (`model.init` with PRNG key `seed`).

  Initialisation runs once, so it is compiled without XLA's backend optimisations (as the training start-up does):
  on a CPU that compiles many times faster, and the draws come from the same initialisers.
  """
  init = jax.jit(lambda key, x: model.init(key, x, *apply_args))
  key, x = jax.random.key(seed), jax.numpy.asarray(x)
  return init.lower(key, x).compile({"xla_backend_optimization_level": 0})(key, x)


def cascade(variables: Any, fresh: Any, layers: Sequence[str],
            collections: Sequence[str] = ("params",)) -> List[Tuple[str, Any]]:
  """The cascading randomisation: step k replaces the leaves of layers[0..k] by those of `fresh`.

  Args:
    variables: the trained variables.
    fresh: randomly initialised variables of the same model (`fresh_variables`).
    layers: group paths, top first (`layer_order`).
    collections: the collections re-drawn ('params'; add 'batch_stats' to reset BatchNorm statistics too).

  Returns:
    [(layer, variables after randomising it and every layer before it)], one per layer. Unchanged leaves are
    shared with `variables`, so the list costs little memory.
  """
  flat = {col: traverse_util.flatten_dict(_as_dict(variables[col])) for col in collections if col in variables}
  new = {col: traverse_util.flatten_dict(_as_dict(fresh[col])) for col in flat if col in fresh}
  if "params" not in flat or "params" not in new:
    raise KeyError("variables and fresh must both have a 'params' collection")
  steps, current = [], {col: dict(tree) for col, tree in flat.items()}
  for layer in layers:
    prefix = tuple(layer.split("/"))
    hit = False
    for col, tree in current.items():
      for key in tree:
        if key[:len(prefix)] == prefix:
          if col not in new or key not in new[col] or np.shape(new[col][key]) != np.shape(tree[key]):
            raise ValueError(f"fresh variables lack {col}/{'/'.join(key)} with shape {np.shape(tree[key])}; "
                             "initialise them from the same model and input shape")
          tree[key] = new[col][key]
          hit = True
    if not hit:
      valid = sorted({"/".join(k[:-1]) for k in flat["params"]})
      raise KeyError(f"layer {layer!r} matches no parameter; parameter-owning modules: {', '.join(valid)}")
    snapshot = dict(variables)
    snapshot.update({col: traverse_util.unflatten_dict(dict(tree)) for col, tree in current.items()})
    steps.append((layer, snapshot))
  return steps


def _ranks(m: np.ndarray) -> np.ndarray:
  flat = m.reshape(m.shape[0], -1)
  return scipy_stats.rankdata(flat, method="average", axis=-1)


def spearman(a: np.ndarray, b: np.ndarray, absolute: bool = False) -> np.ndarray:
  """Spearman rank correlation per map pair of maps [N, H, W] (or [N, ...]); float64 [N].

  `absolute` ranks |a| and |b|. Two constant maps give 1, one constant map gives 0.
  """
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  if a.shape != b.shape or a.ndim < 2:
    raise ValueError(f"maps must share one shape [N, ...], got {a.shape} and {b.shape}")
  if absolute:
    a, b = np.abs(a), np.abs(b)
  ra, rb = _ranks(a), _ranks(b)
  ra -= ra.mean(1, keepdims=True)
  rb -= rb.mean(1, keepdims=True)
  na, nb = np.sqrt((ra * ra).sum(1)), np.sqrt((rb * rb).sum(1))
  rho = (ra * rb).sum(1) / np.where((na > 0) & (nb > 0), na * nb, 1.0)
  return np.where((na > 0) & (nb > 0), rho, np.where((na == 0) & (nb == 0), 1.0, 0.0))


def _gaussian_window(size: int, sigma: float) -> np.ndarray:
  t = np.arange(size) - (size - 1) / 2.0
  g = np.exp(-t * t / (2.0 * sigma * sigma))
  return g / g.sum()


def _filter_valid(m: np.ndarray, g: np.ndarray) -> np.ndarray:
  """Separable 'valid' filtering of [..., H, W] by the 1-D window g on both spatial axes."""
  w = g.size
  rows = sum(g[k] * m[..., k:m.shape[-2] - w + 1 + k, :] for k in range(w))
  return sum(g[k] * rows[..., :, k:m.shape[-1] - w + 1 + k] for k in range(w))


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 1.0, win_size: int = 11, sigma: float = 1.5,
         k1: float = 0.01, k2: float = 0.03) -> np.ndarray:
  """Mean SSIM (Wang et al. 2004) per map pair of maps [..., H, W]; float64 [...].

  SSIM = (2 mu_a mu_b + C1)(2 cov_ab + C2) / ((mu_a^2 + mu_b^2 + C1)(var_a + var_b + C2)) with C1 = (k1 L)^2,
  C2 = (k2 L)^2, L = `data_range`; local statistics under a normalised Gaussian window (population moments),
  averaged over the window positions inside the map.
  """
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  if a.shape != b.shape or a.ndim < 2:
    raise ValueError(f"maps must share one shape [..., H, W], got {a.shape} and {b.shape}")
  if win_size % 2 == 0 or min(a.shape[-2:]) < win_size:
    raise ValueError(f"SSIM needs an odd win_size <= the map's sides; got win_size={win_size} for maps "
                     f"{a.shape[-2:]} (resize the maps to the input, or pass a smaller odd win_size)")
  g = _gaussian_window(win_size, sigma)
  c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
  mu_a, mu_b = _filter_valid(a, g), _filter_valid(b, g)
  var_a = _filter_valid(a * a, g) - mu_a * mu_a
  var_b = _filter_valid(b * b, g) - mu_b * mu_b
  cov = _filter_valid(a * b, g) - mu_a * mu_b
  s = (2 * mu_a * mu_b + c1) * (2 * cov + c2) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
  return s.mean(axis=(-2, -1))


def _compare(trained: np.ndarray, other: np.ndarray, method: str) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
  if trained.shape != other.shape or trained.ndim != 3:
    raise ValueError(f"method {method!r}: maps must be [N, H, W] with the trained model's shape {trained.shape}, "
                     f"got {other.shape}")
  return (spearman(trained, other), spearman(trained, other, absolute=True),
          ssim(combine.normalize(trained), combine.normalize(other)))


def randomization_test(maps_fn: MapsFn, variables: Any, steps: Sequence[Tuple[str, Any]], x: np.ndarray,
                       labels: np.ndarray) -> SanityResult:
  """Compares each method's maps after each randomisation step with the trained model's.

  Args:
    maps_fn: (variables, x, labels) -> {method: maps [N, H, W]}; it must explain `labels` (the same classes at
      every step, not the randomised model's arg-max). A single-method function can be wrapped as
      `lambda v, x, y: {'name': fn(v, x, y)}`.
    variables: the trained variables.
    steps: `cascade(...)` output: [(layer, randomised variables)].
    x: inputs [N, ...] as the model reads them.
    labels: [N] classes to explain.

  Returns:
    `SanityResult`.
  """
  trained = {m: np.asarray(v, np.float64) for m, v in maps_fn(variables, x, labels).items()}
  if not trained:
    raise ValueError("maps_fn returned no method")
  scores = {metric: {m: [] for m in trained} for metric in METRICS + ("constant",)}
  for _, randomised in [("trained", variables)] + list(steps):
    maps = maps_fn(randomised, x, labels)
    for method, reference in trained.items():
      if method not in maps:
        raise KeyError(f"maps_fn left out method {method!r} at a randomisation step; it returned {sorted(maps)}")
      other = np.asarray(maps[method], np.float64)
      for metric, value in zip(METRICS, _compare(reference, other, method)):
        scores[metric][method].append(value)
      scores["constant"][method].append(np.ptp(other.reshape(other.shape[0], -1), axis=1) == 0)
  stacked = {metric: {m: np.stack(v) for m, v in per.items()} for metric, per in scores.items()}
  return SanityResult(["trained"] + [name for name, _ in steps], stacked["spearman"], stacked["spearman_abs"],
                      stacked["ssim"], stacked["constant"])


def flags(result: SanityResult, threshold: float = FLAG_THRESHOLD) -> Dict[str, bool]:
  """{method: True when its mean 'spearman_abs' after the last cascade step (all layers random) > threshold}."""
  if len(result.steps) < 2:
    raise ValueError("the result has no randomisation step; run randomization_test with a non-empty cascade")
  return {m: bool(np.mean(v[-1]) > threshold) for m, v in result.spearman_abs.items()}


def summary(result: SanityResult, threshold: float = FLAG_THRESHOLD) -> dict:
  """JSON-ready summary: {'steps', 'threshold', 'methods': {method: {'spearman', 'spearman_abs', 'ssim', 'constant':
  per-step means over inputs (lists of S + 1 floats), 'final_spearman_abs': float, 'flagged': bool}}}."""
  flagged = flags(result, threshold)
  methods = {}
  for m in result.spearman:
    entry = {metric: [float(v) for v in getattr(result, metric)[m].mean(1)] for metric in METRICS + ("constant",)}
    entry["final_spearman_abs"] = entry["spearman_abs"][-1]
    entry["flagged"] = flagged[m]
    methods[m] = entry
  return {"steps": list(result.steps), "threshold": threshold, "methods": methods}


def plot(result: SanityResult, path: Union[str, pathlib.Path], threshold: float = FLAG_THRESHOLD,
         title: Optional[str] = None) -> pathlib.Path:
  """Writes a PNG: mean |Spearman| and mean SSIM (bands: +-1 std over inputs) against the cascade step, one line
  per method (flagged methods dashed), the flag threshold dotted."""
  flagged = flags(result, threshold)
  steps = np.arange(len(result.steps))
  fig = Figure(figsize=(max(6.0, 0.45 * len(steps) + 3.0) * 2, 4.2))
  axes = fig.subplots(1, 2, squeeze=False)[0]
  for ax, metric, label in ((axes[0], "spearman_abs", "rank correlation (|map|)"), (axes[1], "ssim", "SSIM")):
    for method, values in getattr(result, metric).items():
      mean, std = values.mean(1), values.std(1)
      line, = ax.plot(steps, mean, marker="o", markersize=3, linestyle="--" if flagged[method] else "-",
                      label=method + (" (flagged)" if flagged[method] else ""))
      ax.fill_between(steps, mean - std, mean + std, color=line.get_color(), alpha=0.15)
    if metric == "spearman_abs":
      ax.axhline(threshold, color="grey", linestyle=":", linewidth=1)
    ax.set_xticks(steps)
    ax.set_xticklabels(result.steps, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel(label)
    ax.set_xlabel("randomised down to (top first)")
    lowest = min(float((v.mean(1) - v.std(1)).min()) for v in getattr(result, metric).values())
    ax.set_ylim(min(-0.05, lowest - 0.05), 1.05)
    ax.grid(alpha=0.3)
  axes[0].legend(fontsize=7)
  if title:
    fig.suptitle(title)
  fig.tight_layout()
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  FigureCanvasAgg(fig)
  fig.savefig(path, dpi=100)
  return path


def explainer_maps_fn(explainer: Any, method_maps: Callable[[Any, np.ndarray, np.ndarray], Mapping[str, np.ndarray]]
                      ) -> MapsFn:
  """A `maps_fn` from a `maps.Explainer` and a function of (explainer, x, labels) -> {method: [N, H, W]}
  (e.g. `quality_table.method_maps`): each call swaps the variables into the explainer's view, so its compiled
  function is reused for every randomisation step (same tree structure: no recompilation)."""
  def maps_fn(variables, x, labels):
    view = explainer.view
    explainer.view = view._replace(variables=variables)
    try:
      return method_maps(explainer, x, labels)
    finally:
      explainer.view = view
  return maps_fn
