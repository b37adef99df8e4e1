"""Grain input pipelines over a clip store (`attn_har.data.store`).

Training::

  clip = ClipOptions(num_frames=4, flow_length=5, image_size=112)   # or ClipOptions.from_config(config.data)
  it = make_loader(store_dir, clip, split='1', subset='train', batch_size=8, train=True, seed=0)
  batch = next(it)   # {'rgb': [B, T, S, S, 3] f32 in [-1, 1], 'flow': [B, T, S, S, 2L] f32 px / flow_scale,
                     #  'label': [B] i32, 'index': [B] i32 (clip position in store.ids(split, subset)),
                     #  'mask': [B, T, S, S] f32 (when the store has masks), 'flow_mask': [B, T, S, S] f32
                     #  (with masks and flow: the union of the masks of the frames stack t covers)}

  RGB frame t, flow stack t and mask t of an item all come from the same clip and start frame s_t (the stack
  covers frames s_t..s_t+L: consecutive video frames, or stored frames with pairing 'stored_frames'). One random
  crop and one flip per item apply to every frame and both streams; the flip negates the flow's u channels (even
  indices); with `rescale_flow` the vectors follow the resize.
  `streams=('rgb',)` or `('flow',)` reads and returns only that stream.

Evaluation (every clip of a subset, `views` temporal x `crops` spatial views each, nothing dropped)::

  it = make_eval_loader(store_dir, ClipOptions(num_frames=25, flow_length=5, image_size=112), subset='test',
                        batch_size=8, views=1, crops=10)   # S&Z: 25 frames x (4 corners + centre, each flipped)
  len(it)  # number of batches; the last one is padded: 'valid' [B] i32 is 0 on padding rows
           # extra keys: 'view' [B] i32; aggregate predictions per 'index' over rows with valid == 1.

Both return a `DevicePrefetch` iterator (`prefetch` batches ahead, device_put with `sharding`; `prefetch=0,
to_device=False` gives numpy batches synchronously). Its state is checkpointed with Orbax through Grain's
handler::

  mngr = ocp.CheckpointManager(dir, item_names=('state', 'data'))
  mngr.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state), data=iterator_save_args(it)))
  mngr.restore(step, args=ocp.args.Composite(state=..., data=iterator_restore_args(it)))  # `it` repositioned

Determinism: batches depend only on (store, options, seed); per-record random ops use the generator Grain
derives from seed and record position. The order within a batch depends on `workers` (each Grain worker
batches its own records), so changing `workers` changes batch composition but not its determinism.
`num_epochs=None` repeats forever; batches then span epoch boundaries.
"""

from typing import Any, Optional, Sequence, Tuple

import grain
import numpy as np

from attn_har.data import crops as crops_lib
from attn_har.data import flow_mean
from attn_har.data import prefetch as prefetch_lib
from attn_har.data import store as store_lib
from attn_har.data import transforms
from attn_har.data.clip_options import ClipOptions

STREAMS = ("rgb", "flow")


class ClipSource(grain.sources.RandomAccessDataSource):
  """Random access over the clips of one subset (and their eval views), reading only the needed arrays.

  Item k is clip `ids[k // views_per_clip]`, view `k % views_per_clip`. With `pad_to`, the length is rounded up
  to a multiple of it by repeating item 0 with 'valid' = 0.
  """

  def __init__(self, store_dir, ids: Sequence[str], streams: Sequence[str] = STREAMS, with_mask: bool = False,
               views_per_clip: int = 1, pad_to: Optional[int] = None):
    self.store = store_lib.ClipStore(store_dir)
    self.ids = list(ids)
    if not self.ids:
      raise ValueError(f"no clips selected from store {store_dir}")
    for clip_id in self.ids:
      self.store.entry(clip_id)  # KeyError naming the clip
    self.views_per_clip = views_per_clip
    keys = set()
    if "rgb" in streams:
      keys.update(("rgb", "frame_indices"))
    if "flow" in streams:
      keys.update(("flow", "pairs", "frame_indices"))
    if with_mask:
      keys.update(("mask", "frame_indices"))
    self.keys = tuple(sorted(keys))
    self._n = len(self.ids) * views_per_clip
    self._len = self._n if not pad_to else -(-self._n // pad_to) * pad_to

  def __len__(self) -> int:
    return self._len

  def __getitem__(self, k: int) -> dict:
    k = int(k)
    valid = k < self._n
    k = k if valid else 0
    clip_id = self.ids[k // self.views_per_clip]
    out = self.store.read(clip_id, keys=self.keys)
    out.update(id=clip_id, index=np.int32(k // self.views_per_clip), view=np.int32(k % self.views_per_clip),
               valid=np.int32(valid), frames=int(self.store.entry(clip_id)["frames"]))
    return out

  def __repr__(self) -> str:
    return f"ClipSource({self.store.root}, {len(self.ids)} clips, keys={self.keys}, len={self._len})"


def parse_flags_for_workers(workers: int) -> None:
  """Grain's worker start reads an absl flag; outside `absl.app.run` flags are unparsed and that read raises
  UnparsedFlagAccessError. Mark them parsed (defaults) when workers are used and nobody parsed them."""
  if workers:
    from absl import flags  # pylint: disable=g-import-not-at-top
    if not flags.FLAGS.is_parsed():
      flags.FLAGS.mark_as_parsed()


def _image_size(image_size) -> Tuple[int, int]:
  if isinstance(image_size, int):
    return (image_size, image_size)
  return tuple(int(s) for s in image_size)


def _mask_keys(streams) -> Tuple[str, ...]:
  """The ground-truth mask keys of a store with masks: 'mask', and 'flow_mask' when the flow stream is read."""
  return ("mask", "flow_mask") if "flow" in streams else ("mask",)


def _check_streams(streams):
  streams = tuple(streams)
  bad = [s for s in streams if s not in STREAMS]
  if bad or not streams:
    raise ValueError(f"streams must be a non-empty subset of {STREAMS}, got {streams}")
  return streams


def operations(clip: ClipOptions, *, train: bool, views: int = 1, crops: int = 1, crop_fraction: float = 0.875,
               keys: Optional[Sequence[str]] = None, batch_size: Optional[int] = None,
               drop_remainder: bool = True, next_rgb: bool = False) -> list:
  """The Grain operations from a stored clip to model inputs; the one op list of training, evaluation and analysis.

  SampleClip (T frames and their flow stacks) -> RandomCrop (train) or the eval crop (`crops.eval_crop_ops`) ->
  ToFloat -> Resize -> RandomFlip (train, flip_prob > 0) or the 10-crop flips -> SubtractFlowMean (when
  `clip.flow_mean_subtraction`) -> SelectKeys (when `keys`) -> Batch (when `batch_size`).

  Args:
    clip: options with every field set (`ClipOptions.for_store`); scale and flip_prob apply in training only.
    train: random crop/flip and random temporal positions; False = fixed crops and segment centres.
    views, crops, crop_fraction: as in `make_eval_loader`.
    keys: the element keys to keep.
    batch_size, drop_remainder: batch the elements.
    next_rgb: also give 'rgb_next', the video frame after each RGB frame (`transforms.SampleClip`).
  """
  ops = [transforms.SampleClip(clip.num_frames, clip.flow_length, clip.stacking, clip.bidirectional, train, views,
                               crops, pairing=clip.pairing, next_rgb=next_rgb)]
  crop, view_flip = (transforms.RandomCrop(clip.scale), None) if train else crops_lib.eval_crop_ops(crops,
                                                                                                   crop_fraction)
  ops.append(crop)
  ops.append(transforms.ToFloat(clip.clip_px, clip.flow_scale))
  ops.append(transforms.Resize(_image_size(clip.image_size), clip.rescale_flow))
  if train and clip.flip_prob > 0:
    ops.append(transforms.RandomFlip(clip.flip_prob))
  if view_flip is not None:
    ops.append(view_flip)
  if clip.flow_mean_subtraction:
    ops.append(flow_mean.SubtractFlowMean())
  if keys is not None:
    ops.append(transforms.SelectKeys(tuple(keys)))
  if batch_size is not None:
    ops.append(grain.transforms.Batch(batch_size, drop_remainder=drop_remainder))
  return ops


def make_loader(store_dir, clip: ClipOptions, *, split: str = "1", subset: str = "train", batch_size: int,
                train: bool = True, seed: int = 0, num_epochs: Optional[int] = None, workers: int = 0,
                drop_remainder: bool = True, streams: Sequence[str] = STREAMS, with_mask: Optional[bool] = None,
                prefetch: int = 2, sharding: Any = None, to_device: bool = True, shard_options: Optional[Any] = None,
                worker_buffer_size: int = 1) -> prefetch_lib.DevicePrefetch:
  """Shuffled, augmented, batched clips of one subset.

  Args:
    store_dir: a store written by the preprocess command.
    clip: frame sampling, flow stacking and augmentation (`ClipOptions`; None fields take the store's values).
    split: split id of the manifest ('1', '2', '3').
    subset: 'train', 'val' or 'test'.
    batch_size: items per batch.
    train: random crop/flip and random temporal positions; False = centre crop and segment centres.
    seed: shuffling and augmentation seed (32-bit).
    num_epochs: None repeats forever.
    workers: Grain worker processes (0 = in process).
    drop_remainder: drop the last partial batch.
    streams: ('rgb', 'flow'), ('rgb',) or ('flow',).
    with_mask: add 'mask'; None = when the store has masks.
    prefetch: batches read ahead in a thread (0 = none).
    sharding: jax sharding for device_put.
    to_device: False keeps numpy batches.
    shard_options: grain.sharding.ShardOptions for multi-host data parallelism (default: none).
    worker_buffer_size: batches each worker prepares ahead.

  Returns:
    A `DevicePrefetch` iterator with get_state/set_state.
  """
  streams = _check_streams(streams)
  store = store_lib.ClipStore(store_dir)
  ids = store.require_ids(split, subset)
  with_mask = store.has_mask if with_mask is None else with_mask
  clip = clip.for_store(store.manifest, streams)
  source = ClipSource(store_dir, ids, streams, with_mask)
  keys = streams + (_mask_keys(streams) if with_mask else ()) + ("label", "index")
  ops = operations(clip, train=train, keys=keys, batch_size=batch_size, drop_remainder=drop_remainder)
  shard_options = shard_options or grain.sharding.NoSharding()
  sampler = grain.samplers.IndexSampler(len(source), shard_options=shard_options, shuffle=train,
                                        num_epochs=num_epochs, seed=seed)
  parse_flags_for_workers(workers)
  loader = grain.DataLoader(data_source=source, sampler=sampler, operations=ops, worker_count=workers,
                            worker_buffer_size=worker_buffer_size, shard_options=shard_options)
  length = None
  if num_epochs is not None:
    n = num_epochs * len(source)
    length = n // batch_size if drop_remainder else -(-n // batch_size)
  return prefetch_lib.DevicePrefetch(iter(loader), prefetch, sharding, to_device, length)


def make_eval_loader(store_dir, clip: ClipOptions, *, split: str = "1", subset: str = "test", batch_size: int,
                     views: int = 1, crops: int = 1, crop_fraction: float = 0.875, workers: int = 0,
                     streams: Sequence[str] = STREAMS, with_mask: Optional[bool] = None, prefetch: int = 2,
                     sharding: Any = None, to_device: bool = True, shard_options: Optional[Any] = None,
                     next_rgb: bool = False) -> prefetch_lib.DevicePrefetch:
  """One pass over every clip of a subset, `views` x `crops` items per clip, padded to whole batches.

  Item (clip k, view v): `clip.num_frames` frames at temporal view v // crops of `views` (evenly offset TSN
  positions), spatial crop v % crops (1: centre square; 3: left/centre/right squares; 10: corners and centre of a
  `crop_fraction` square, views 5-9 flipped with the flow's u negated; see `attn_har.data.crops`). Batches add
  'view' and 'valid' (0 = padding). `clip.scale` and `clip.flip_prob` are not used. With `next_rgb` batches
  also hold 'rgb_next' (`operations`). Other arguments as in `make_loader`.
  """
  streams = _check_streams(streams)
  store = store_lib.ClipStore(store_dir)
  ids = store.require_ids(split, subset)
  with_mask = store.has_mask if with_mask is None else with_mask
  clip = clip.for_store(store.manifest, streams)
  shard_options = shard_options or grain.sharding.NoSharding()
  pad = batch_size * shard_options.shard_count
  source = ClipSource(store_dir, ids, streams, with_mask, views_per_clip=views * crops, pad_to=pad)
  keys = streams + (_mask_keys(streams) if with_mask else ()) + ("label", "index", "view", "valid")
  keys += ("rgb_next",) if next_rgb and "rgb" in streams else ()
  ops = operations(clip, train=False, views=views, crops=crops, crop_fraction=crop_fraction, keys=keys,
                   batch_size=batch_size, drop_remainder=True, next_rgb=next_rgb and "rgb" in streams)
  sampler = grain.samplers.IndexSampler(len(source), shard_options=shard_options, shuffle=False, num_epochs=1,
                                        seed=0)
  parse_flags_for_workers(workers)
  loader = grain.DataLoader(data_source=source, sampler=sampler, operations=ops, worker_count=workers,
                            shard_options=shard_options)
  return prefetch_lib.DevicePrefetch(iter(loader), prefetch, sharding, to_device,
                                     len(source) // pad)


def iterator_save_args(iterator):
  """Orbax args saving a pipeline iterator inside a CheckpointManager Composite (Grain's handler)."""
  return grain.checkpoint.CheckpointSave(iterator)


def iterator_restore_args(iterator):
  """Orbax args restoring into `iterator` (repositioned in place and returned by the restore)."""
  return grain.checkpoint.CheckpointRestore(iterator)


def save_iterator(directory, iterator) -> None:
  """Saves one iterator's state to `directory` with Orbax (standalone, outside a CheckpointManager)."""
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  with ocp.Checkpointer(grain.checkpoint.CheckpointHandler()) as ckpt:
    ckpt.save(directory, args=iterator_save_args(iterator))


def restore_iterator(directory, iterator):
  """Restores `iterator` in place from `save_iterator`'s directory; returns it."""
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  with ocp.Checkpointer(grain.checkpoint.CheckpointHandler()) as ckpt:
    return ckpt.restore(directory, args=iterator_restore_args(iterator))
