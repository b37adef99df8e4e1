"""Grad-CAM (Selvaraju et al. 2017, arXiv:1610.02391) and Guided Grad-CAM on any named layer of a flax model.

A layer is a module path as the module tree gives it, joined by '/', e.g. 'backbone/block_5'; `gradcam_layers`
lists those whose output is a [B, h, w, c] map. The layer's output A is captured with `nn.intercept_methods`, and a
zero perturbation δ added to it gives dy/dA = dy/dδ in one backward pass. Unlike the thesis (docs/thesis_code.md §5)
y is the class LOGIT, not its probability, and the normalisation is ε-safe:

  w_c = mean_hw dy/dA_hwc,   raw = Σ_c w_c A_c,   heatmap = min-max of ReLU(raw) (`normalize_map`, ε-safe).

`gradcam_multi` explains several layers from one forward and backward pass.
"""

import functools
from typing import Any, NamedTuple, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from attn_har.explain.guided_backprop import guided_backprop


class GradCAM(NamedTuple):
  """Grad-CAM result.

  Attributes:
    heatmap: [B, h, w] float32 in [0, 1], ReLU(raw) min-max normalised per sample.
    raw: [B, h, w] float32, Σ_c w_c A_c before ReLU and normalisation.
    class_idx: [B] int32, the explained class of each sample.
    logits: [B, K], the model's output.
  """
  heatmap: jax.Array
  raw: jax.Array
  class_idx: jax.Array
  logits: jax.Array


def _path(module: nn.Module) -> str:
  return "/".join(module.path)


def gradcam_layers(model: nn.Module, variables: Any, x: Any, *,
                   apply_args: Sequence[Any] = (False,)) -> dict[str, tuple[int, int, int]]:
  """The layers Grad-CAM can use: module paths called once whose output is a [B, h, w, c] array.

  Traced with `jax.eval_shape` (nothing is computed).

  Returns:
    {path: (h, w, c)} in the order the calls return (a block after its layers).
  """
  calls: dict[str, list] = {}

  def record(next_fun, args, kwargs, context):
    out = next_fun(*args, **kwargs)
    if context.method_name == "__call__" and context.module.path:
      calls.setdefault(_path(context.module), []).append(getattr(out, "shape", None))
    return out

  def trace(variables, x):
    with nn.intercept_methods(record):
      return model.apply(variables, x, *apply_args)

  jax.eval_shape(trace, variables, x)
  return {p: tuple(s[0][1:]) for p, s in calls.items() if len(s) == 1 and s[0] is not None and len(s[0]) == 4}


def normalize_map(m: jax.Array, eps: float = 1e-6) -> jax.Array:
  """Per-sample min-max normalisation of [B, h, w] maps to [0, 1], ε-safe and scale-free.

  (m − min) / max(max − min, ε·max|m|, tiny): a constant map (an all-zero gradient included) gives zeros, never
  NaN, while maps of any magnitude (1e-12 at random init is common) still reach 1.
  """
  lo = m.min(axis=(1, 2), keepdims=True)
  hi = m.max(axis=(1, 2), keepdims=True)
  scale = jnp.abs(m).max(axis=(1, 2), keepdims=True)
  span = jnp.maximum(jnp.maximum(hi - lo, eps * scale), jnp.finfo(m.dtype).tiny)
  return (m - lo) / span


def gradcam(model: nn.Module, variables: Any, x: jax.Array, layer: str, class_idx: Optional[Any] = None, *,
            apply_args: Sequence[Any] = (False,), eps: float = 1e-6) -> GradCAM:
  """Grad-CAM of one layer for one class per sample.

  Args:
    model: a flax module returning logits [B, K] from `model.apply(variables, x, *apply_args)`.
    variables: its variables.
    x: input [B, H, W, C].
    layer: a path from `gradcam_layers`, e.g. 'backbone/block_5'.
    class_idx: an int or [B] ints; by default each sample's arg-max class.
    apply_args: positional arguments after `x` ((False,) = inference).
    eps: the relative ε of `normalize_map`.

  Returns:
    A `GradCAM` with the normalised heatmap and the raw map, both [B, h, w] float32.
  """
  return gradcam_multi(model, variables, x, (layer,), class_idx, apply_args=apply_args, eps=eps)[layer]


def gradcam_multi(model: nn.Module, variables: Any, x: jax.Array, layers: Sequence[str],
                  class_idx: Optional[Any] = None, *, apply_args: Sequence[Any] = (False,),
                  eps: float = 1e-6) -> dict[str, GradCAM]:
  """Grad-CAM of several layers from one forward and one backward pass (e.g. the thesis's block_5/12/15).

  Each layer gets its own zero perturbation, so each gradient is that layer's own dy/dA. Arguments as `gradcam`.

  Returns:
    {layer: GradCAM}.
  """
  valid = gradcam_layers(model, variables, x, apply_args=apply_args)
  for layer in layers:
    if layer not in valid:
      raise KeyError(f"unknown Grad-CAM layer {layer!r} (called once, output [B, h, w, c]); "
                     f"valid layers: {', '.join(valid)}")
  shapes = tuple((layer, valid[layer]) for layer in layers)
  cls = None if class_idx is None else jnp.broadcast_to(jnp.asarray(class_idx, jnp.int32), x.shape[:1])
  return _gradcam(model, shapes, tuple(apply_args), eps, variables, x, cls)


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3))
def _gradcam(model, shapes, apply_args, eps, variables, x, cls) -> dict[str, GradCAM]:
  def score(deltas):
    captured = {}

    def perturb(next_fun, args, kwargs, context):
      out = next_fun(*args, **kwargs)
      path = _path(context.module)
      if context.method_name == "__call__" and path in deltas:
        captured[path] = out
        out = out + deltas[path].astype(out.dtype)
      return out

    with nn.intercept_methods(perturb):
      logits = model.apply(variables, x, *apply_args)
    if not isinstance(logits, jax.Array) or logits.ndim != 2:
      raise ValueError(f"the model must return logits [B, K]; got {jax.tree.map(jnp.shape, logits)}")
    c = jnp.argmax(jax.lax.stop_gradient(logits), axis=-1) if cls is None else cls
    y = jnp.take_along_axis(logits, c[:, None], axis=-1).sum()
    return y.astype(jnp.float32), (captured, c, logits)

  deltas = {layer: jnp.zeros((x.shape[0],) + shape, jnp.float32) for layer, shape in shapes}
  grads, (acts, c, logits) = jax.grad(score, has_aux=True)(deltas)
  result = {}
  for layer, _ in shapes:
    weights = grads[layer].mean(axis=(1, 2))                                  # [B, c]
    raw = jnp.einsum("bhwc,bc->bhw", acts[layer].astype(jnp.float32), weights)
    result[layer] = GradCAM(heatmap=normalize_map(jax.nn.relu(raw), eps), raw=raw, class_idx=c.astype(jnp.int32),
                            logits=logits)
  return result


def guided_gradcam(model: nn.Module, variables: Any, x: jax.Array, layer: str, class_idx: Optional[Any] = None, *,
                   apply_args: Sequence[Any] = (False,), eps: float = 1e-6) -> jax.Array:
  """Guided Grad-CAM: guided backpropagation times the Grad-CAM heatmap bilinearly upsampled to the input size.

  Args: as `gradcam`.

  Returns:
    [B, H, W, C] float32 (reduce over C, e.g. with abs().max(-1), for a single-channel picture).
  """
  cam = gradcam(model, variables, x, layer, class_idx, apply_args=apply_args, eps=eps)
  guided = guided_backprop(model, variables, x, cam.class_idx, apply_args=apply_args)
  up = jax.image.resize(cam.heatmap, (x.shape[0],) + tuple(x.shape[1:3]), "bilinear")
  return guided * up[..., None]
