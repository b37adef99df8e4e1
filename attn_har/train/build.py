"""Config -> model: `build_model(config)` and `model_inputs(batch, config)`.

  stream 'image'       the model zoo's image classifier (backbone + attention), input batch['image'] [B, H, W, C].
  stream 'rgb'/'flow'  a per-stream video classifier `VIDEO_MODELS[temporal]` over the lifted image model,
                       input batch['rgb'] [B, T, H, W, 3] or batch['flow'] [B, T, H, W, 2L].
  stream 'two_stream'  `TwoStream` with sub-modules 'rgb', 'flow' (each such a stream classifier) and 'fusion',
                       input {'rgb', 'flow'}.
Every model is called as `model.apply(variables, inputs, train)` (train positional) and returns logits [B, K]
or, for two-stream, {'logits': fused, 'streams': {'rgb': [B, K], 'flow': [B, K]}}.
"""

import dataclasses
import functools
from typing import Any, Dict

import flax.linen as nn
import ml_collections

from attn_har.models.check import DTYPES, attention_name, inputs_of
from attn_har.registry import lookup
from attn_har.video.lifted import LIFT_AXIS
from attn_har.video.lstm import CNNLSTM
from attn_har.video.registry import VIDEO_MODELS
from attn_har.video.temporal_pool import TemporalAttentionPool
from attn_har.video.two_stream import TwoStream

# The model zoo's keyword that sets the BatchNorm reduction axis name, when it has one.
BN_AXIS_KWARG = "bn_axis_name"


def _backbone_accepts(backbone: str, kwarg: str) -> bool:
  from attn_har.backbones import BACKBONES
  cls = lookup(BACKBONES, backbone, "backbone")
  cls = cls.func if isinstance(cls, functools.partial) else cls
  return kwarg in {f.name for f in dataclasses.fields(cls)}


def lift_mode(config: ml_collections.ConfigDict) -> str:
  """'vmap' or 'fold': 'auto' picks 'vmap' when the backbone's BatchNorm can reduce over the vmap axis.

  Every backbone of the zoo has that axis (`bn_axis_name`), so 'auto' means 'vmap'; 'fold' (T folded into the
  batch) gives identical numbers (see `attn_har.video.lifted`).
  """
  if config.model.lift != "auto":
    return config.model.lift
  return "vmap" if _backbone_accepts(config.model.backbone, BN_AXIS_KWARG) else "fold"


def image_model(config: ml_collections.ConfigDict, lifted: bool = False) -> nn.Module:
  """The zoo's per-image classifier for `config.model` (K = config.model.num_classes)."""
  from attn_har.models import build_image_model
  m = config.model
  if m.num_classes < 1:
    raise ValueError("config.model.num_classes is not set (train.py fills it from the data)")
  kwargs: Dict[str, Any] = dict(m.backbone_kwargs.to_dict())
  if _backbone_accepts(m.backbone, "alpha"):
    kwargs.setdefault("alpha", m.alpha)
  if lifted and lift_mode(config) == "vmap":
    kwargs[BN_AXIS_KWARG] = LIFT_AXIS
  return build_image_model(backbone=m.backbone, attention=attention_name(m.attention), num_classes=m.num_classes,
                           variant=m.variant, dtype=lookup(DTYPES, m.dtype, "model.dtype"), **kwargs)


def stream_model(config: ml_collections.ConfigDict) -> nn.Module:
  """One stream's video classifier: the lifted image model + `VIDEO_MODELS[config.model.temporal]`."""
  m = config.model
  cls = lookup(VIDEO_MODELS, m.temporal, "model.temporal")
  frame = image_model(config, lifted=True)
  mode = lift_mode(config)
  dtype = DTYPES[m.dtype]
  if cls is CNNLSTM:
    return cls(frame=frame, num_classes=m.num_classes, hidden=m.lstm.hidden, num_layers=m.lstm.num_layers,
               dropout_rate=m.lstm.dropout, readout=m.lstm.readout, lift_mode=mode, dtype=dtype)
  if cls is TemporalAttentionPool:
    return cls(frame=frame, num_classes=m.num_classes, hidden=m.pool.hidden, dropout_rate=m.pool.dropout,
               lift_mode=mode, dtype=dtype)
  return cls(frame=frame, lift_mode=mode)


def build_model(config: ml_collections.ConfigDict) -> nn.Module:
  """The model for `config` (see the module docstring); no parameters are created."""
  m = config.model
  if m.stream == "image":
    return image_model(config)
  if m.stream in ("rgb", "flow"):
    return stream_model(config)
  if m.stream == "two_stream":
    return TwoStream(rgb=stream_model(config), flow=stream_model(config), num_classes=m.num_classes,
                     fusion_method=m.fusion, fusion_weights=tuple(m.fusion_weights))
  raise KeyError(f"unknown model.stream {m.stream!r}; valid choices: 'image', 'rgb', 'flow', 'two_stream'")


def input_keys(config: ml_collections.ConfigDict) -> tuple:
  """The batch keys the model reads: ('image',), ('rgb',), ('flow',) or ('rgb', 'flow')."""
  return inputs_of(config.model)


def model_inputs(batch: Dict[str, Any], config: ml_collections.ConfigDict) -> Any:
  """The model's input from a batch dict: an array, or {'rgb', 'flow'} for two-stream (a new dict)."""
  keys = input_keys(config)
  missing = [k for k in keys if k not in batch]
  if missing:
    raise KeyError(f"batch lacks {missing} needed by model.stream={config.model.stream!r}; has {sorted(batch)}")
  if len(keys) == 1:
    return batch[keys[0]]
  return {k: batch[k] for k in keys}
