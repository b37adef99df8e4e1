"""Image classifier: a registered backbone, optional attention, and a classifier head."""

import dataclasses
import functools
from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.core import FrozenDict

from attn_har.attention import ATTENTION
from attn_har.attention.variant import check_variant
from attn_har.backbones import BACKBONES
from attn_har.layers import keras
from attn_har.registry import lookup


# Head-attention widths by backbone family (docs/thesis_code.md §3): ResNet gates use c_int = 64 and 2048 hidden.
HEAD_DEFAULTS = {
    ("resnet", "gate"): {"inter_channels": 64, "hidden": 2048},
    ("resnet", "gate_grid"): {"inter_channels": 64, "hidden": 2048},
}
# Fields every ImageClassifier sets itself on its sub-modules.
_RESERVED = ("attention", "attention_kwargs", "variant", "dtype", "param_dtype", "num_classes", "num_scales",
             "name", "parent")


def _class_of(factory: Any) -> type:
  return factory.func if isinstance(factory, functools.partial) else factory


def _field_names(factory: Any) -> tuple[str, ...]:
  return tuple(f.name for f in dataclasses.fields(_class_of(factory)) if f.name not in _RESERVED)


class ImageClassifier(nn.Module):
  """Backbone + attention + classifier; `__call__(x, train)` -> logits, `features(x, train)` -> [B, D].

  Without attention, or with a trunk attention (CBAM, residual), features = GAP(last feature map) and logits =
  Dense_K(features) ('predictions', as Keras's top). A head attention (L2PA, gates) replaces the top: it reads
  the backbone's taps and last map, and its `features` is what its classifier consumes. Logits are float32;
  the thesis gate head returns log of its averaged probabilities (softmax(logits) = the thesis output).
  `train` is positional so `nn.vmap` can lift the module over time.

  Attributes:
    backbone: name in `BACKBONES`.
    attention: name in `ATTENTION` or None.
    num_classes: K.
    variant: 'paper' (published designs) or 'thesis' (the thesis code's architecture).
    backbone_kwargs: extra backbone fields (alpha, depthwise_impl, attention_positions, ...).
    attention_kwargs: extra attention fields (reduction_ratio, p, t, r, inter_channels, ...).
    dtype: compute dtype.
    param_dtype: parameter dtype (float32; BatchNorm statistics are always float32).
  """
  backbone: str = "mobilenet_v2"
  attention: str | None = None
  num_classes: int = 1000
  variant: str = "paper"
  backbone_kwargs: Mapping[str, Any] = FrozenDict()
  attention_kwargs: Mapping[str, Any] = FrozenDict()
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def _forward(self, x: jax.Array, train: bool, features_only: bool) -> jax.Array:
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    backbone_cls = lookup(BACKBONES, self.backbone, "backbone")
    attention_cls = None if self.attention is None else lookup(ATTENTION, self.attention, "attention")
    head_attention = attention_cls is not None and attention_cls.placement == "head"
    body = backbone_cls(attention=self.attention, variant=self.variant,
                        attention_kwargs=FrozenDict() if head_attention else self.attention_kwargs,
                        name="backbone", **kw, **self.backbone_kwargs)
    out, taps = body(x, train)
    if head_attention:
      family = _class_of(backbone_cls).family
      head_kw = {**HEAD_DEFAULTS.get((family, self.attention), {}), **self.attention_kwargs}
      head = attention_cls(num_classes=self.num_classes, num_scales=len(taps), variant=self.variant, name="head",
                           **kw, **head_kw)
      locals_ = [taps[p] for p in body.positions()]
      return head.features(locals_, out, train) if features_only else head(locals_, out, train)
    features = jnp.mean(out, axis=(1, 2))
    if features_only:
      return features
    return keras.Dense(self.num_classes, name="predictions", **kw)(features).astype(jnp.float32)

  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    """x: [B, H, W, C] -> logits [B, K] float32."""
    return self._forward(x, train, False)

  def features(self, x: jax.Array, train: bool = False) -> jax.Array:
    """x: [B, H, W, C] -> the classifier's input [B, D]."""
    return self._forward(x, train, True)


def build_image_model(backbone: str = "mobilenet_v2", attention: str | None = None, num_classes: int = 1000,
                      variant: str = "paper", dtype: Any = jnp.float32, param_dtype: Any = jnp.float32,
                      **kwargs) -> ImageClassifier:
  """Builds an `ImageClassifier`, routing each extra keyword to the backbone or the attention module.

  Example: build_image_model('mobilenet_v2', 'cbam', 100, 'thesis', alpha=0.35, depthwise_impl='shifted').

  Args:
    backbone: 'mobilenet_v2', 'resnet18_v2', 'resnet34_v2', 'resnet50_v2' or 'resnet101_v2'.
    attention: None, 'l2pa', 'gate', 'gate_grid', 'residual' or 'cbam'.
    num_classes: K.
    variant: 'paper' or 'thesis'.
    dtype: compute dtype.
    param_dtype: parameter dtype.
    **kwargs: fields of the backbone class (e.g. alpha, depthwise_impl, attention_positions) or of the
      attention class (e.g. reduction_ratio, normalization, p, t, r, shortcuts).

  Raises:
    KeyError: unknown backbone or attention name (lists the valid ones).
    ValueError: unknown variant.
    TypeError: a keyword that neither the backbone nor the attention accepts.
  """
  backbone_fields = _field_names(lookup(BACKBONES, backbone, "backbone"))
  attention_fields = () if attention is None else _field_names(lookup(ATTENTION, attention, "attention"))
  check_variant("build_image_model", variant)
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
  return ImageClassifier(backbone, attention, num_classes, variant, FrozenDict(backbone_kwargs),
                         FrozenDict(attention_kwargs), dtype, param_dtype)
