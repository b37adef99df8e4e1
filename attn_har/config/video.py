"""The shared base of the video configs: `configs/{ucf101,hmdb51,synthetic}_<attention>.py` call `video_config`.

Arguments (comma separated, see `attn_har.config.args`):
  smoke               tiny widths, few frames, a few steps: exercises the whole run in seconds.
  split=N             official split ('1', '2', '3').
  stream=S            'two_stream' (default), 'rgb' or 'flow' (stream-only training).
  temporal=M          per-stream temporal model, a key of `attn_har.models.build.TEMPORAL_MODELS`.
  fusion=F            a key of `attn_har.models.fusion.FUSIONS`.
  backbone=B          a key of `attn_har.backbones.BACKBONES`.
  attention=A         a key of `attn_har.attention.ATTENTION`, or 'none'.
  store=DIR, root=DIR the pre-processed clip store / the raw dataset folder.
  steps=N, batch=N, lr=X, dtype=bfloat16, seed=N, size=N, frames=N, alpha=X
  test_frames=N, crops=1|3|10   the test protocol (eval.frames, eval.crops; defaults 25 x 10)
  any dotted path, e.g. train.checkpoint_every=50 or optim.schedule=cosine.
"""

from typing import Callable, Set

import ml_collections

from attn_har.config import args as args_lib
from attn_har.config.base import base_config

SHORTHANDS = {
    "split": "data.split", "store": "data.store", "root": "data.root", "frames": "data.num_frames",
    "size": "data.image_size", "stream": "model.stream", "temporal": "model.temporal", "fusion": "model.fusion",
    "backbone": "model.backbone", "attention": "model.attention", "alpha": "model.alpha", "dtype": "model.dtype",
    "steps": "train.num_steps", "batch": "train.batch_size", "lr": "optim.lr", "seed": "seed",
    "test_frames": "eval.frames", "crops": "eval.crops",
}
FLAGS = {"smoke"}


def video_config(dataset: str, attention: str, arg: str | None,
                 recipe: Callable[[ml_collections.ConfigDict, Set[str]], None] | None = None
                 ) -> ml_collections.ConfigDict:
  """The full, unlocked video config for `dataset` x `attention` with `arg` applied.

  Args:
    dataset: a key of `attn_har.data.datasets.DATASETS`.
    attention: a key of `attn_har.attention.ATTENTION`, or 'none'.
    arg: the config argument string ('smoke,split=2,...').
    recipe: `recipe(config, flags)` applied after these defaults and before the `smoke` settings and the
      arguments: a dataset's own training recipe (e.g. `configs/_synthetic.py`).
  """
  flags, values = args_lib.parse_arg(arg)
  args_lib.check_flags(flags, FLAGS)
  c = base_config()
  c.name = f"{dataset}_{attention}"   # `load_config` names a run after its config file instead
  c.model.stream = "two_stream"
  c.model.attention = attention
  c.data = ml_collections.ConfigDict(dict(
      dataset=dataset,
      root="",                     # raw dataset folder (only needed to pre-process)
      store="",                    # pre-processed clip store; '' = <cache>/stores/<name>
      split="1",
      val_fraction=0.1,            # held out from train when the store's split has no 'val' subset
      store_frames=25,             # frames sampled per video at pre-processing (synthetic: synthetic.num_frames)
      store_size=128,              # side of stored frames (synthetic: synthetic.size)
      flow_method="dis",
      num_frames=5,                # frames (and flow stacks) per training clip
      flow_length=5,               # L: flow stacks have 2L channels
      stacking="consecutive",
      pairing="video_frames",      # flow over consecutive video frames (S&Z); 'stored_frames': the thesis's spacing
      image_size=112,
      crop_scale=(0.5, 1.0),       # training RandomCrop area range (fraction of the largest centred square)
      flip_prob=0.5,               # horizontal flips (negating u); 0 for data whose labels are directions
      flow_mean_subtraction=True,  # subtract each flow field's spatial mean (S&Z Table 1b); off for synthetic
      workers=0,
  ))
  # Test protocol of real video (S&Z §6): 25 uniformly spaced frames x 10 crops (4 corners + centre, each also
  # flipped with u negated); validation keeps the cheap default (data.num_frames, 1 centre crop).
  c.eval.update(frames=25, crops=10)
  if recipe is not None:
    recipe(c, flags)
  if "smoke" in flags:
    # Mechanics, not learning: a small, clipped step keeps 2-clip batches (4-frame BatchNorm) finite.
    c.optim.update(lr=0.01, grad_clip_norm=1.0, skip_nonfinite_updates=True)
    c.model.alpha = 0.35
    c.model.lstm.hidden, c.model.lstm.num_layers = 16, 1
    c.model.pool.hidden = 8
    # 64x64 keeps a 2x2 final map: BatchNorm over 1x1 maps of 4 near-identical frames overflows the gradient.
    c.data.num_frames, c.data.flow_length, c.data.image_size = 2, 2, 64
    c.train.update(batch_size=2, num_steps=3, log_every=1, checkpoint_every=2, progress=False,
                   bn_recalibration_batches=2)
    c.eval.batch_size = 2
    c.eval.frames = min(c.eval.frames, 3)   # 0 (= data.num_frames) stays 0
  args_lib.apply_values(c, values, SHORTHANDS)
  return c
