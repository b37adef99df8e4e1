"""The shared base of the image-prototype configs: `configs/{cifar100,imagenette}_<attention>.py`.

Arguments: `smoke`, and `root=DIR` (TFDS data dir or image folders, see `attn_har.data.images`), `backbone=`,
`attention=`, `steps=`, `batch=`, `lr=`, `dtype=`, `seed=`, `size=`, `alpha=`, or any dotted config path.
"""

import ml_collections

from attn_har.config import args as args_lib
from attn_har.config.base import base_config

SHORTHANDS = {
    "root": "data.root", "size": "data.image_size", "backbone": "model.backbone", "attention": "model.attention",
    "alpha": "model.alpha", "dtype": "model.dtype", "steps": "train.num_steps", "batch": "train.batch_size",
    "lr": "optim.lr", "seed": "seed",
}
FLAGS = {"smoke"}


def image_config(dataset: str, attention: str, arg: str | None, *, image_size: int = 224,
                 num_steps: int = 10000) -> ml_collections.ConfigDict:
  """The full, unlocked image-classification config for `dataset` x `attention` with `arg` applied."""
  flags, values = args_lib.parse_arg(arg)
  args_lib.check_flags(flags, FLAGS)
  c = base_config()
  c.name = f"{dataset}_{attention}"   # `load_config` names a run after its config file instead
  c.model.stream = "image"
  c.model.attention = attention
  c.data = ml_collections.ConfigDict(dict(
      dataset=dataset,
      root="",                     # image-folder root ('' = <cache>/datasets/<dataset> when present)
      tfds_dir="",                 # or a TFDS data dir with the dataset prepared as array_record
      image_size=image_size,
      val_fraction=0.1,            # held out from train; the test split is only used at the end
      workers=0,
  ))
  c.train.num_steps = num_steps
  if "smoke" in flags:
    # Mechanics, not learning: a small, clipped step keeps 2-clip batches (4-frame BatchNorm) finite.
    c.optim.update(lr=0.01, grad_clip_norm=1.0, skip_nonfinite_updates=True)
    c.model.alpha = 0.35
    c.data.image_size = 32
    c.train.update(batch_size=4, num_steps=3, log_every=1, checkpoint_every=2, progress=False,
                   bn_recalibration_batches=2)
    c.eval.batch_size = 4
  args_lib.apply_values(c, values, SHORTHANDS)
  return c
