"""`check_config(config)`: every section of a run's config checked before any work, by the package it belongs to.

  model      `attn_har.models.check`
  data       `attn_har.data.check`
  optim      `attn_har.train.optim.check`
  train, init_from   here
A misspelt name or a value out of range fails in milliseconds with KeyError / ValueError naming the key and the
valid choices; `launch.py` and `train_and_evaluate` call it first, before any file is written.
"""

import math

import ml_collections

from attn_har.backbones import keras_weights
from attn_har.data import check as data_check
from attn_har.data.crops import check_crops
from attn_har.models import check as model_check
from attn_har.registry import check_choice
from attn_har.train import optim

COUNTS = ("batch_size", "num_steps", "log_every", "checkpoint_every", "keep_checkpoints")


def check_config(config: ml_collections.ConfigDict) -> None:
  """Raises KeyError / ValueError naming the offending key and the valid choices."""
  model_check.check(config.model)
  data_check.check(config.data, config.model.stream)
  optim.check(config.optim)
  check_choice(("best", "latest"), config.init_from.which, "init_from.which")
  if config.init_from.keras:
    keras_file(config)
  for key in COUNTS:
    if config.train[key] < 1:
      raise ValueError(f"train.{key} must be >= 1, got {config.train[key]}")
  for key in ("batch_size", "clips_per_video"):
    if config.eval[key] < 1:
      raise ValueError(f"eval.{key} must be >= 1, got {config.eval[key]}")
  for key in ("frames", "val_frames", "val_clips_per_video"):
    if config.eval.get(key, 0) < 0:
      raise ValueError(f"eval.{key} must be >= 0 (0 = the default named in attn_har/config/base.py), "
                       f"got {config.eval[key]}")
  for key in ("crops", "val_crops"):
    check_crops(config.eval.get(key, 1), f"eval.{key}")
  if not 0 < config.eval.get("crop_fraction", 1.0) <= 1:
    raise ValueError(f"eval.crop_fraction must lie in (0, 1], got {config.eval.crop_fraction}")
  if not 0.0 <= config.train.label_smoothing < 1.0:
    raise ValueError(f"train.label_smoothing must lie in [0, 1), got {config.train.label_smoothing}")
  if not (math.isfinite(config.train.stream_loss_weight) and config.train.stream_loss_weight >= 0):
    raise ValueError(f"train.stream_loss_weight must be a finite number >= 0, got {config.train.stream_loss_weight}")
  if config.train.bn_recalibration_batches < 0:
    raise ValueError(f"train.bn_recalibration_batches must be >= 0, got {config.train.bn_recalibration_batches}")


def keras_file(config: ml_collections.ConfigDict):
  """The Keras weight file of `init_from.keras` (`keras_weights.resolve_file`); FileNotFoundError naming the file
  Keras would use when it is missing, KerasWeightsError (a ValueError) for a backbone or alpha Keras lacks."""
  m = config.model
  alpha = m.backbone_kwargs.get("alpha", m.alpha)
  return keras_weights.resolve_file(config.init_from.keras, m.backbone, alpha, config.data.image_size)
