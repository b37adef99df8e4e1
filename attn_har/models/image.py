"""Image classifier: a backbone, an optional attention mechanism, and a classifier head; `build_image_model`."""

import functools
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.core import FrozenDict

from attn_har.attention import ATTENTION
from attn_har.attention.variant import check_variant
from attn_har.backbones import BACKBONES, attach
from attn_har.models.one_input import OneInput
from attn_har.layers import keras
from attn_har.registry import lookup


# Fields every ImageClassifier sets itself on its sub-modules.
_RESERVED = frozenset({"attention", "variant", "dtype", "param_dtype", "num_classes", "num_scales", "name", "parent"})


def settable_fields(cls: Any) -> tuple[str, ...]:
  """The fields of a backbone or attention class a user may set (`build_image_model` keywords), sorted."""
  return tuple(sorted(attach.field_names(cls) - _RESERVED))


class ImageClassifier(nn.Module):
  """Backbone + attention + classifier; `outputs(x, train)` -> {'logits': [B, K] float32, 'features': [B, D]}.

  Without attention, or with a trunk attention (CBAM, residual), features = GAP(last feature map) and logits =
  Dense_K(features) ('predictions', as Keras's top). A head attention (L2PA, gates) replaces the top: it reads
  the backbone's taps and last map and returns both. The thesis gate head's logits are the log of its averaged
  probabilities (softmax(logits) = the thesis output). `train` is positional so `nn.vmap` can lift the module
  over time. `__call__` returns the logits alone (what Grad-CAM differentiates).

  Attributes:
    backbone: the backbone class with its settings (`functools.partial(MobileNetV2, alpha=0.35)`); it receives
      `attention`, `dtype` and `param_dtype` from here.
    attention: the attention mechanism (`attn_har.backbones.attach.Attachment`) or None.
    num_classes: K.
    dtype: compute dtype.
    param_dtype: parameter dtype (float32; BatchNorm statistics are always float32).
  """
  backbone: Callable[..., nn.Module]
  attention: attach.Attachment | None = None
  num_classes: int = 1000
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def _forward(self, x: jax.Array, train: bool, with_logits: bool) -> dict[str, jax.Array]:
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    body = self.backbone(attention=self.attention, name="backbone", **kw)
    out, taps = body(x, train)
    if self.attention is not None and self.attention.placement == "head":
      head = self.attention.head(attach.class_of(self.backbone).family, self.num_classes, len(taps), **kw)
      local = [taps[p] for p in body.positions()]
      return head(local, out, train) if with_logits else {"features": head.features(local, out, train)}
    features = jnp.mean(out, axis=(1, 2))
    if not with_logits:
      return {"features": features}
    logits = keras.Dense(self.num_classes, name="predictions", **kw)(features).astype(jnp.float32)
    return {"logits": logits, "features": features}

  def outputs(self, x: jax.Array, train: bool = False) -> dict[str, jax.Array]:
    """x: [B, H, W, C] -> {'logits': [B, K] float32, 'features': the classifier's input [B, D]}."""
    return self._forward(x, train, True)

  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    """x: [B, H, W, C] -> logits [B, K] float32."""
    return self._forward(x, train, True)["logits"]

  def features(self, x: jax.Array, train: bool = False) -> jax.Array:
    """x: [B, H, W, C] -> the classifier's input [B, D] (the classifier itself is not built)."""
    return self._forward(x, train, False)["features"]


def build_image_model(backbone: str = "mobilenet_v2", attention: str | None = None, num_classes: int = 1000,
                      variant: str = "paper", dtype: Any = jnp.float32, param_dtype: Any = jnp.float32,
                      **kwargs) -> ImageClassifier:
  """Builds an `ImageClassifier` from registry names, routing each extra keyword to the backbone or the attention.

  The names are resolved here, once: the classifier receives the backbone class and the attention `Attachment`.
  Example: build_image_model('mobilenet_v2', 'cbam', 100, 'thesis', alpha=0.35, depthwise_impl='shifted').

  Args:
    backbone: a key of `BACKBONES` ('mobilenet_v2', 'resnet18_v2', 'resnet34_v2', 'resnet50_v2', 'resnet101_v2').
    attention: None, 'none' or a key of `ATTENTION` ('l2pa', 'gate', 'gate_grid', 'residual', 'cbam', or a
      mechanism registered at run time).
    num_classes: K.
    variant: 'paper' or 'thesis'.
    dtype: compute dtype.
    param_dtype: parameter dtype.
    **kwargs: fields of the backbone class (e.g. alpha, depthwise_impl, attention_positions, bn_axis_name) or of
      the attention class (e.g. reduction_ratio, normalization, p, t, r, shortcuts).

  Raises:
    KeyError: unknown backbone or attention name (lists the valid ones).
    ValueError: unknown variant.
    TypeError: a keyword that neither the backbone nor the attention accepts.
  """
  backbone_cls = lookup(BACKBONES, backbone, "backbone")
  attention_cls = lookup({"none": None, **ATTENTION}, attention or "none", "attention")
  check_variant("build_image_model", variant)
  backbone_fields = settable_fields(backbone_cls)
  attention_fields = () if attention_cls is None else settable_fields(attention_cls)
  backbone_kwargs, attention_kwargs = {}, {}
  for key, value in kwargs.items():
    value = tuple(value) if isinstance(value, list) else value
    if key in backbone_fields:
      backbone_kwargs[key] = value
    elif key in attention_fields:
      attention_kwargs[key] = value
    else:
      raise TypeError(f"build_image_model: unexpected keyword {key!r}; backbone {backbone!r} accepts "
                      f"{list(backbone_fields)}, attention {attention!r} accepts {list(attention_fields)}")
  mechanism = None
  if attention_cls is not None:
    mechanism = attach.Attachment(attention_cls, variant, FrozenDict(attention_kwargs), label=attention)
  return ImageClassifier(functools.partial(backbone_cls, **backbone_kwargs), mechanism, num_classes, dtype,
                         param_dtype)


class ImageModel(OneInput):
  """The model protocol (`attn_har.models`) around one image classifier: reads batch['image'] [B, H, W, C].

  Attributes:
    frame: the `ImageClassifier`; its variables sit under 'frame', as a video stream's per-frame model does, so an
      image checkpoint initialises a single-stream video model (`init_from`) path for path.
    input_key: the batch key of the images.
  """
  frame: nn.Module
  input_key: str = "image"

  def __call__(self, batch: dict[str, jax.Array], train: bool) -> dict[str, jax.Array]:
    """batch['image'] [B, H, W, C] -> {'logits': [B, K] float32, 'features': [B, D]}."""
    return self.frame.outputs(self.input_of(batch), train)
