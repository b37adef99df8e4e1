"""Config -> model: `build_model(config.model)` resolves every registry name once; `sample_batch(config)`.

  stream 'image'       `ImageModel` around the image classifier (backbone + attention), reads batch['image'].
  stream 'rgb'/'flow'  a stream model `TEMPORAL_MODELS[temporal]` over the lifted image classifier, reads
                       batch['rgb'] [B, T, H, W, 3] or batch['flow'] [B, T, H, W, 2L].
  stream 'two_stream'  `TwoStream` with sub-modules 'rgb', 'flow' (each such a stream model) and 'fusion'.
Every model follows the model protocol of `attn_har.models`: `model.apply(variables, batch, train)` (train
positional) returns {'logits': [B, K], 'features': [B, D], 'streams'?: {'rgb': [B, K], 'flow': [B, K]}}.
"""

from typing import Any, Callable, Dict

import flax.linen as nn
import jax.numpy as jnp
import ml_collections

from attn_har.backbones import BACKBONES, attach
from attn_har.models.check import DTYPES, STREAM_INPUTS
from attn_har.models.fusion import FUSIONS
from attn_har.models.image import ImageModel, build_image_model
from attn_har.models.lift import LIFT_AXIS
from attn_har.models.lstm import CNNLSTM
from attn_har.models.temporal import FrameAverage, TemporalAttentionPool
from attn_har.models.two_stream import TwoStream
from attn_har.registry import lookup

# Stream models (a lifted per-frame model + temporal aggregation) by `model.temporal`.
TEMPORAL_MODELS = {
    "average": FrameAverage,
    "attention_pool": TemporalAttentionPool,
    "lstm": CNNLSTM,
}


def lift_mode(m: ml_collections.ConfigDict) -> str:
  """'vmap' or 'fold' from `model.lift`: 'auto' is 'fold'. Both compute the same function (every backbone's
  BatchNorm reduces over the vmap axis), up to float rounding; for the default two-stream model 'fold' traces and
  compiles its train step in about 52 s instead of 63 s on a 2-core CPU (3 runs each; docs/speed.md)."""
  return "fold" if m.lift == "auto" else m.lift


def image_classifier(m: ml_collections.ConfigDict, lifted: bool = False) -> nn.Module:
  """The per-image classifier of model section `m` (K = m.num_classes); `lifted` for a video stream's frames."""
  if m.num_classes < 1:
    raise ValueError("config.model.num_classes is not set (train.py fills it from the data)")
  kwargs: Dict[str, Any] = dict(m.backbone_kwargs.to_dict())
  fields = attach.field_names(lookup(BACKBONES, m.backbone, "model.backbone"))
  for key in ("alpha", "pointwise"):
    if key in fields:
      kwargs.setdefault(key, m[key])
  if lifted and lift_mode(m) == "vmap":
    kwargs["bn_axis_name"] = LIFT_AXIS
  return build_image_model(backbone=m.backbone, attention=m.attention, num_classes=m.num_classes,
                           variant=m.variant, dtype=lookup(DTYPES, m.dtype, "model.dtype"), **kwargs)


def stream_model(m: ml_collections.ConfigDict, input_key: str) -> nn.Module:
  """One stream's model reading batch[input_key]: the lifted image classifier + `TEMPORAL_MODELS[m.temporal]`."""
  cls = lookup(TEMPORAL_MODELS, m.temporal, "model.temporal")
  return cls(frame=image_classifier(m, lifted=True), input_key=input_key, lift_mode=lift_mode(m),
             **cls.settings(m))


def _image(m: ml_collections.ConfigDict) -> nn.Module:
  return ImageModel(frame=image_classifier(m))


def _two_stream(m: ml_collections.ConfigDict) -> nn.Module:
  fusion = lookup(FUSIONS, m.fusion, "model.fusion")
  return TwoStream(rgb=stream_model(m, "rgb"), flow=stream_model(m, "flow"), fusion=fusion(**fusion.settings(m)))


# Model builders by `model.stream`; each reads the batch keys `STREAM_INPUTS[stream]`.
STREAM_MODELS: Dict[str, Callable[[ml_collections.ConfigDict], nn.Module]] = {
    "image": _image,
    "rgb": lambda m: stream_model(m, "rgb"),
    "flow": lambda m: stream_model(m, "flow"),
    "two_stream": _two_stream,
}


def build_model(m: ml_collections.ConfigDict) -> nn.Module:
  """The model of model section `m` (see the module docstring); no parameters are created."""
  return lookup(STREAM_MODELS, m.stream, "model.stream")(m)


def sample_batch(config: ml_collections.ConfigDict, batch: int = 1) -> Dict[str, jnp.ndarray]:
  """Zero inputs of the model's input shapes (for initialisation): {key: [batch, ...] float32}."""
  c, s = config.data, config.data.image_size
  shapes = {"image": lambda: (batch, s, s, 3), "rgb": lambda: (batch, c.num_frames, s, s, 3),
            "flow": lambda: (batch, c.num_frames, s, s, 2 * c.flow_length)}   # image configs have no num_frames
  return {k: jnp.zeros(shapes[k](), jnp.float32)
          for k in lookup(STREAM_INPUTS, config.model.stream, "model.stream")}
