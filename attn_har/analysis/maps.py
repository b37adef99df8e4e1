"""Attention maps per stage and Grad-CAM for images and clips, for image models and both streams of video models.

Every model names its per-frame image models (`frame_models()`, the model protocol of `attn_har.models`): a video
stream's is lifted over time, its parameters under `<stream>/frame`. `stream_views` cuts them out with their
variables, so maps and Grad-CAM of a clip are computed on its T frames as a batch, exactly as the lifted model
computes them (the thesis did the same, docs/thesis_code.md §5).
Grad-CAM then explains the stream's per-frame logit of the class; with frame averaging that is, up to the factor
1/T, the gradient of the stream's clip logit.
"""

import re
from typing import Any, Dict, List, NamedTuple, Optional, Sequence

import flax.linen as nn
import jax
import numpy as np

from attn_har.analysis import combine
from attn_har.backbones.mobilenet_v2 import HEAD_POSITIONS

STAGES = ("early", "medium", "late")


class StreamView(NamedTuple):
  """A per-frame image model and its variables.

  Attributes:
    name: 'image' for an image model, else the stream name ('rgb', 'flow').
    model: the image model: [N, H, W, C] -> logits [N, K], `train` positional.
    variables: its variables ({'params', 'batch_stats'?}).
  """
  name: str
  model: nn.Module
  variables: Any


class Explanation(NamedTuple):
  """Maps of one batch of frames, all numpy float32.

  Attributes:
    attention: {module_path: [N, h, w]} sown attention maps in call order (early to late).
    gradcam: {layer: [N, h, w]} Grad-CAM heatmaps in [0, 1].
    guided: {layer: [N, H, W]} Guided Grad-CAM magnitude (max |.| over channels), empty unless requested.
    logits: [N, K] logits of the frame model.
    class_idx: [N] explained class per frame.
  """
  attention: Dict[str, np.ndarray]
  gradcam: Dict[str, np.ndarray]
  guided: Dict[str, np.ndarray]
  logits: np.ndarray
  class_idx: np.ndarray


def _sub_variables(variables: Any, path: Sequence[str]) -> Dict[str, Any]:
  out = {}
  for col, tree in variables.items():
    node = tree
    for key in path:
      if not hasattr(node, "get") or key not in node:
        node = None
        break
      node = node[key]
    if node is not None:
      out[col] = node
  if "params" not in out:
    raise KeyError(f"no parameters at {'/'.join(path)!r}; top-level params keys: {sorted(variables['params'])}")
  return out


def stream_views(model: nn.Module, variables: Any) -> Dict[str, StreamView]:
  """Per-frame image models of a model, keyed by the batch key each reads.

  Args:
    model: a model following the model protocol (`frame_models()`), e.g. from `attn_har.models.build_model`.
    variables: the model's variables.

  Returns:
    {'image': view} for an image model, {'rgb': view} or {'flow': view} for a single-stream video model,
    {'rgb': .., 'flow': ..} for a two-stream model.
  """
  return {s: StreamView(s, frame, _sub_variables(variables, path)) for s, (path, frame) in model.frame_models().items()}


def _spatial(m: np.ndarray, n: int, path: str) -> np.ndarray:
  """Brings a sown map to [N, h, w]: drops a trailing channel axis of 1, averages any other channel axis."""
  m = np.asarray(m, np.float32)
  if m.ndim == 4:
    m = m[..., 0] if m.shape[-1] == 1 else m.mean(-1)
  if m.ndim != 3 or m.shape[0] != n:
    raise ValueError(f"attention map {path!r} has shape {m.shape}; expected [N={n}, h, w] (or [N, h, w, 1])")
  return m


def by_stage(maps: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
  """Renames maps in call order to stage names; with more than three maps, first/middle/last become the stages.

  1 x 1 maps are left out (no location).

  Returns:
    {'early': .., 'medium': .., 'late': ..} (fewer keys when there are fewer than three maps).
  """
  items = list(_spatial_only(maps).values())
  if not items:
    return {}
  if len(items) >= 3:
    picks = [0, len(items) // 2, len(items) - 1]
    return dict(zip(STAGES, (items[i] for i in picks)))
  return dict(zip(STAGES[-len(items):], items)) if len(items) == 1 else {"early": items[0], "late": items[1]}


def default_gradcam_layers(view: StreamView, x: jax.Array, count: int = 3) -> List[str]:
  """Grad-CAM layers at block outputs, as the thesis's: MobileNetV2's head attachment blocks (5, 12, 15), or the
  last block of conv2..conv4 of a ResNet-V2 (the same attachment points); else `count` layers spread evenly over
  the model's [N, h, w, c] outputs (early to late, the last included)."""
  from attn_har.explain import gradcam_layers  # pylint: disable=import-outside-toplevel
  layers = list(gradcam_layers(view.model, view.variables, x))
  if not layers:
    raise ValueError(f"{type(view.model).__name__} has no layer with a [N, h, w, c] output for Grad-CAM")
  if count == 3:
    wanted = [hits[0] for block in HEAD_POSITIONS if (hits := [p for p in layers if p.split("/")[-1] == block])]
    if len(wanted) == 3:
      return wanted
    ends = {}
    for p in layers:
      m = re.fullmatch(r"conv([2-4])_block(\d+)", p.split("/")[-1])
      if m and int(m.group(2)) > ends.get(m.group(1), (0, ""))[0]:
        ends[m.group(1)] = (int(m.group(2)), p)
    if len(ends) == 3:
      return [ends[stage][1] for stage in sorted(ends)]
  idx = np.unique(np.round(np.linspace(0, len(layers) - 1, count + 1)[1:]).astype(int))
  return [layers[i] for i in idx]


def _spatial_only(attention: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
  """Drops 1 x 1 maps (after the last downsampling of a small input): they carry no location."""
  return {k: m for k, m in attention.items() if m.shape[-2] * m.shape[-1] > 1}


class Explainer:
  """Jitted attention maps + Grad-CAM (+ Guided Grad-CAM) of one stream, compiled once per input shape.

  Attributes:
    view: the stream's per-frame model.
    layers: Grad-CAM layers (None: `default_gradcam_layers` at the first call; []: no Grad-CAM).
    guided: also compute Guided Grad-CAM at each layer.
  """

  def __init__(self, view: StreamView, layers: Optional[Sequence[str]] = None, guided: bool = False):
    self.view, self.guided = view, guided
    self.layers = None if layers is None else list(layers)
    self._fn = None
    self._attention_order: List[str] = []
    model = view.model
    self._probs = jax.jit(lambda v, x: jax.nn.softmax(model.apply(v, x, False).astype(jax.numpy.float32), -1))

  def probabilities(self, x: Any) -> np.ndarray:
    """Softmax class probabilities [N, K] of the frame model for frames x [N, H, W, C] (jitted)."""
    return np.asarray(self._probs(self.view.variables, jax.numpy.asarray(x, jax.numpy.float32)))

  def _build(self, x: jax.Array):
    from attn_har.explain import gradcam, guided_gradcam  # pylint: disable=import-outside-toplevel
    from attn_har.inspect import attention_maps  # pylint: disable=import-outside-toplevel
    if self.layers is None:
      self.layers = default_gradcam_layers(self.view, x)
    model, layers, guided = self.view.model, tuple(self.layers), self.guided

    def fn(variables, x, cls):
      logits = model.apply(variables, x, False).astype(jax.numpy.float32)
      cls = jax.numpy.where(cls < 0, jax.numpy.argmax(logits, -1), cls).astype(jax.numpy.int32)
      attention = attention_maps(model, variables, x)
      self._attention_order = list(attention)   # call order: jit returns dicts with sorted keys
      cams = {l: gradcam(model, variables, x, l, cls).heatmap for l in layers}
      guides = {}
      if guided:
        guides = {l: jax.numpy.abs(guided_gradcam(model, variables, x, l, cls)).max(-1) for l in layers}
      return attention, cams, guides, logits, cls
    return jax.jit(fn)

  def __call__(self, x: Any, class_idx: Optional[Any] = None) -> Explanation:
    """Maps of frames x [N, H, W, C] for `class_idx` (an int or [N] ints; default each frame's arg-max)."""
    x = jax.numpy.asarray(x, jax.numpy.float32)
    if x.ndim != 4:
      raise ValueError(f"frames must be [N, H, W, C], got shape {x.shape}")
    if self._fn is None:
      self._fn = self._build(x)
    cls = -1 if class_idx is None else class_idx
    cls = jax.numpy.broadcast_to(jax.numpy.asarray(cls, jax.numpy.int32), x.shape[:1])
    attention, cams, guides, logits, cls = jax.device_get(self._fn(self.view.variables, x, cls))
    # jit hands dicts back with sorted keys ('block_12' < 'block_5'): restore call order (attention) and layer order
    attention = {p: _spatial(attention[p], x.shape[0], p) for p in self._attention_order
                 if np.ndim(attention[p]) >= 3}
    to_np = lambda d: {k: np.asarray(d[k], np.float32) for k in self.layers if k in d}
    return Explanation(attention, to_np(cams), to_np(guides), np.asarray(logits, np.float32),
                       np.asarray(cls, np.int32))


def explain(view: StreamView, x: Any, class_idx: Optional[Any] = None, layers: Optional[Sequence[str]] = None,
            guided: bool = False) -> Explanation:
  """Attention maps, Grad-CAM (and optionally Guided Grad-CAM) of frames x [N, H, W, C] for one stream.

  One-off convenience around `Explainer` (which compiles once and is the one to reuse over many inputs).

  Args:
    view: from `stream_views`.
    x: frames [N, H, W, C] as the model reads them (pre-processed).
    class_idx: an int or [N] ints; default the frame model's arg-max per frame.
    layers: Grad-CAM layers (default `default_gradcam_layers`); [] skips Grad-CAM.
    guided: also compute Guided Grad-CAM at each layer.
  """
  return Explainer(view, layers, guided)(x, class_idx)


def combined_attention(e: Explanation, size) -> Optional[np.ndarray]:
  """Combined attention-module map [N, H, W] (`combine.combine`), or None without attention modules."""
  attention = _spatial_only(e.attention)
  return combine.combine(attention, size) if attention else None


def combined_gradcam(e: Explanation, size) -> Optional[np.ndarray]:
  """Combined Grad-CAM map [N, H, W] over the explained layers, or None without layers."""
  cams = _spatial_only(e.gradcam)
  return combine.combine(cams, size) if cams else None
