"""Registry-name checks run on a loaded config before any work, so a typo fails in milliseconds.

Every check goes through `attn_har.registry.lookup`, whose KeyError lists the valid names.
"""

import ml_collections

from attn_har.registry import lookup

STREAMS = {"image": "image", "rgb": "rgb", "flow": "flow", "two_stream": "two_stream"}
DTYPES = {"float32": "float32", "bfloat16": "bfloat16"}
LIFT_MODES = {"auto": "auto", "vmap": "vmap", "fold": "fold"}
CHECKPOINT_CHOICES = {"best": "best", "latest": "latest"}


def attention_name(name: str):
  """Maps the config's attention string to the model zoo's name ('none' -> None)."""
  return None if name in ("none", "") else name


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises KeyError / ValueError naming the offending key and the valid choices."""
  from attn_har.attention import ATTENTION
  from attn_har.backbones import BACKBONES
  from attn_har.train.optim import OPTIMIZERS
  from attn_har.train.schedule import SCHEDULES

  m = config.model
  lookup(STREAMS, m.stream, "model.stream")
  lookup(BACKBONES, m.backbone, "model.backbone")
  lookup({"none": None, **ATTENTION}, m.attention, "model.attention")
  lookup(DTYPES, m.dtype, "model.dtype")
  lookup(LIFT_MODES, m.lift, "model.lift")
  lookup(OPTIMIZERS, config.optim.name, "optim.name")
  lookup(SCHEDULES, config.optim.schedule, "optim.schedule")
  lookup(CHECKPOINT_CHOICES, config.init_from.which, "init_from.which")
  if m.stream == "image":
    from attn_har.data.images import IMAGE_DATASETS
    lookup(IMAGE_DATASETS, config.data.dataset, "data.dataset (image)")
  else:
    from attn_har.data.datasets import DATASETS
    from attn_har.data.flow import FLOW_METHODS
    from attn_har.data.stacking import STACKING_MODES
    from attn_har.video.fusion import FUSIONS
    from attn_har.video.lstm import READOUTS
    from attn_har.video.registry import VIDEO_MODELS
    lookup(DATASETS, config.data.dataset, "data.dataset (video)")
    lookup(FLOW_METHODS, config.data.flow_method, "data.flow_method")
    lookup({s: s for s in STACKING_MODES}, config.data.stacking, "data.stacking")
    lookup(VIDEO_MODELS, m.temporal, "model.temporal")
    lookup(FUSIONS, m.fusion, "model.fusion")
    lookup({r: r for r in READOUTS}, m.lstm.readout, "model.lstm.readout")
    if config.data.num_frames < 1 or config.data.flow_length < 1:
      raise ValueError(f"data.num_frames and data.flow_length must be >= 1, got {config.data.num_frames}, "
                       f"{config.data.flow_length}")
  for key in ("batch_size", "num_steps", "log_every", "checkpoint_every", "keep_checkpoints"):
    if config.train[key] < 1:
      raise ValueError(f"train.{key} must be >= 1, got {config.train[key]}")
  if not 0.0 <= config.data.val_fraction < 1.0:
    raise ValueError(f"data.val_fraction must lie in [0, 1), got {config.data.val_fraction}")
