"""A run's data: find (or generate) its clip store, hold out validation, make the loaders.

  run_data = RunData(config, workdir)        # a run's classes and loaders ('train' infinite, 'val'/'test' once)

  - a run's store (`prepare_store`): `config.data.store`, else `<cache>/stores/<tag>` (`default_store`). A
    generated dataset (synthetic) is built there when missing (`attn_har.data.store_build.build_store`), once;
    later runs reuse it. For a dataset read from raw files the store must exist; otherwise the error names the
    raw-data layout and the preprocess command. Nothing is downloaded.
  - image datasets (cifar100, imagenette): `attn_har.data.images` from `data.root` (image folders) or
    `data.tfds_dir`; validation = a deterministic `val_fraction` of the train images (by sha1 of the index).
  - validation: the store's 'val' subset when its split has one (synthetic), else a split view holding out
    about `val_fraction` of each class's train clips in whole groups (UCF101 groups, HMDB51 source videos: the
    dataset's `group_of`), deterministic by sha1 of the group key: a manifest-only store under
    `<workdir>/split_view/` whose entries point at the original clip files. The test subset is only read at the
    end.
"""

import hashlib
import json
import os
import pathlib
from typing import Any, Callable, Dict, List, Optional

import ml_collections

from attn_har.config.paths import cache_root
from attn_har.data import datasets, store as store_lib
from attn_har.data.store_build import build_store, store_settings
from attn_har.registry import lookup

VIEW_DIR = "split_view"


def default_store(c: ml_collections.ConfigDict) -> pathlib.Path:
  """`<cache>/stores/<tag>` (the dataset source's `store_tag`): the store location when `config.data.store` is
  empty."""
  return cache_root() / "stores" / lookup(datasets.DATASETS, c.dataset, "data.dataset").store_tag(c)


def preprocess_command(c: ml_collections.ConfigDict, store: pathlib.Path) -> str:
  """The shell command that builds the store for a real dataset."""
  root = c.root or f"<{c.dataset} root>"
  return (f"python -m attn_har.data.preprocess --dataset {c.dataset} --root {root} --out {store} "
          f"--flow {c.flow_method} --pairing {datasets.pairing_of(c)} --stacking {c.stacking} "
          f"--length {c.flow_length} --frames {c.store_frames} "
          f"--size {c.store_size} {c.store_size}")


def _store_of(c: ml_collections.ConfigDict) -> pathlib.Path:
  return pathlib.Path(c.store).expanduser() if c.store else default_store(c)


def classes_of_store_to_generate(config: ml_collections.ConfigDict) -> Optional[List[str]]:
  """The class names of the store this run will generate, known from the config before it exists (a generated
  video dataset whose store is missing); None when the store exists, is read from raw files, or for images."""
  c = config.data
  if config.model.stream == "image" or (_store_of(c) / "manifest.json").is_file():
    return None
  cls = lookup(datasets.DATASETS, c.dataset, "data.dataset")
  return list(cls.from_config(c).classes) if cls.generated else None


def train_batch_spec(config: ml_collections.ConfigDict, batch_size: int, sharding: Any = None) -> Dict[str, Any]:
  """`jax.ShapeDtypeStruct`s (with `sharding`) of a video config's training batches (`train_loader`): the model's
  streams [B, T, S, S, C] float32 (`sample_batch`'s shapes), 'label' and 'index' [B] int32."""
  import jax  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  from attn_har.models.build import sample_batch  # pylint: disable=import-outside-toplevel
  streams = jax.eval_shape(lambda: sample_batch(config, batch_size))
  spec = {k: (v.shape, v.dtype) for k, v in streams.items()}
  spec.update(label=((batch_size,), np.int32), index=((batch_size,), np.int32))
  return {k: jax.ShapeDtypeStruct(shape, dtype, sharding=sharding) for k, (shape, dtype) in spec.items()}


def prepare_store(config: ml_collections.ConfigDict, log=print, build_workers: Optional[int] = None) -> pathlib.Path:
  """Returns the clip-store directory for a video config, building it for a generated dataset (`build_workers`
  spawned processes; default `data.workers`, 0 = one per CPU)."""
  c = config.data
  store = _store_of(c)
  if (store / "manifest.json").is_file():
    return store
  cls = lookup(datasets.DATASETS, c.dataset, "data.dataset")
  if cls.generated:
    source = cls.from_config(c)
    settings = store_settings(source, flow_method=c.flow_method, stacking_mode=c.stacking,
                              length=int(c.flow_length), pairing=datasets.pairing_of(c))
    workers = build_workers or c.workers or (os.cpu_count() or 1)
    plural = "s" if workers != 1 else ""
    log(f"generating the {c.dataset} dataset into {store} ({len(source.clips)} clips, {workers} worker{plural})")
    result = build_store(source, settings, store, workers=workers, progress=False)
    if not result.interrupted:
      log(result.summary())
    if result.status() != 0 or not (store / "manifest.json").is_file():
      raise RuntimeError(f"pre-processing the {c.dataset} dataset into {store} failed (exit status "
                         f"{result.status()}; failures: {result.failures[:3]})")
    return store
  raise FileNotFoundError(
      f"no pre-processed {c.dataset} clip store at {store} (config data.store={c.store!r}).\n"
      f"Raw data layout: {cls.help}\n"
      f"Build the store with:\n  {preprocess_command(c, store)}\n"
      f"then pass store={store} (e.g. --config=configs/{config.name}.py:store={store}).")


def _val_of(clip_id: str, fraction: float) -> bool:
  h = int(hashlib.sha1(clip_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
  return h < fraction


def _sha1(text: str) -> str:
  return hashlib.sha1(text.encode()).hexdigest()


def group_holdout(labels: Dict[str, int], group_of: Callable[[str], str], fraction: float) -> List[str]:
  """The validation clips of a group-aware hold-out of the training clips `labels` ({clip id: label}).

  Whole groups (`group_of(clip_id)`, e.g. a UCF101 group or an HMDB51 source video) go to validation, so no group
  has clips on both sides. Groups are visited in the order of the sha1 of their key (deterministic, independent of
  the clip order); a group is taken when most of its clips belong to classes still under `fraction` of their
  clips in validation and when every class it touches keeps at least one training clip.
  """
  groups: Dict[str, List[str]] = {}
  for cid in sorted(labels):
    groups.setdefault(group_of(cid), []).append(cid)
  total: Dict[int, int] = {}
  for label in labels.values():
    total[label] = total.get(label, 0) + 1
  held = {label: 0 for label in total}
  val: List[str] = []
  for key in sorted(groups, key=_sha1):
    counts: Dict[int, int] = {}
    for cid in groups[key]:
      counts[labels[cid]] = counts.get(labels[cid], 0) + 1
    if any(held[c] + n >= total[c] for c, n in counts.items()):
      continue   # a class would lose its last training clip
    wanting = sum(n for c, n in counts.items() if held[c] < fraction * total[c])
    if 2 * wanting <= len(groups[key]):
      continue   # most of its clips belong to classes that already have their share
    for c, n in counts.items():
      held[c] += n
    val += groups[key]
  return sorted(val)


def split_store(store: pathlib.Path, split: str, val_fraction: float, workdir: pathlib.Path) -> pathlib.Path:
  """A store whose split has 'train', 'val' and 'test' subsets: `store` itself or a split view in `workdir`.

  The view holds out about `val_fraction` of each class's training clips by whole groups of the store's dataset
  (`datasets.DATASETS[name].group_of`; clip by clip for datasets without groups), see `group_holdout`.
  """
  src = store_lib.ClipStore(store)
  subsets = src.manifest["splits"].get(str(split))
  if subsets is None:
    raise KeyError(f"split {split!r} not in store {store}; valid splits: {sorted(src.manifest['splits'])}")
  if "val" in subsets or val_fraction <= 0:
    return store
  train = list(subsets["train"])
  source = datasets.DATASETS.get(src.manifest.get("dataset", ""))
  group_of = getattr(source, "group_of", lambda cid: cid)
  val = group_holdout({cid: int(src.entry(cid)["label"]) for cid in train}, group_of, val_fraction)
  val_set = set(val)
  manifest = dict(src.manifest)
  manifest["clips"] = [dict(e, file=str(src.path(e["id"]).absolute())) for e in src.manifest["clips"]]
  manifest["splits"] = {str(split): {"train": [i for i in train if i not in val_set], "val": sorted(val_set),
                                     "test": list(subsets.get("test", []))}}
  manifest["split_view_of"] = str(src.base.absolute())   # a view of a view points at the original store
  view = workdir / VIEW_DIR
  view.mkdir(parents=True, exist_ok=True)
  tmp = view / "manifest.json.tmp"
  tmp.write_text(json.dumps(manifest))
  os.replace(tmp, view / "manifest.json")
  return view


def has_subset(store: pathlib.Path, split: str, subset: str) -> bool:
  """Whether `split` of the store lists clips in `subset`."""
  return bool(store_lib.ClipStore(store).manifest["splits"].get(str(split), {}).get(subset))


def train_loader(config: ml_collections.ConfigDict, store: pathlib.Path, sharding: Any = None,
                 shard_options: Any = None, batch_size: Optional[int] = None, seed: Optional[int] = None):
  """The infinite, shuffled, augmented training iterator (checkpointable)."""
  from attn_har.data.clip_options import ClipOptions  # pylint: disable=import-outside-toplevel
  from attn_har.data.pipeline import make_loader  # pylint: disable=import-outside-toplevel
  from attn_har.models.check import inputs_of  # pylint: disable=import-outside-toplevel
  c = config.data
  return make_loader(store, ClipOptions.from_config(c), split=c.split, subset="train",
                     batch_size=batch_size or config.train.batch_size, train=True,
                     seed=config.seed if seed is None else seed, num_epochs=None, workers=c.workers,
                     streams=inputs_of(config.model), with_mask=False, sharding=sharding, shard_options=shard_options,
                     prefetch=2)


def eval_protocol(config: ml_collections.ConfigDict, subset: str) -> Dict[str, Any]:
  """{'frames', 'views', 'crops', 'crop_fraction'} of evaluating `subset`: 'val' the validation protocol
  (eval.val_*), 'train' and 'test' the test protocol (eval.frames, eval.clips_per_video, eval.crops)."""
  e = config.eval
  frames, views, crops = e.get("frames", 0), e.clips_per_video, e.crops
  if subset == "val":
    frames, views, crops = e.get("val_frames", 0), e.get("val_clips_per_video", 0) or views, e.get("val_crops", 1)
  return {"frames": int(frames or config.data.num_frames), "views": int(views), "crops": int(crops),
          "crop_fraction": float(e.get("crop_fraction", 0.875))}


def eval_loader(config: ml_collections.ConfigDict, store: pathlib.Path, subset: str, sharding: Any = None,
                shard_options: Any = None, batch_size: Optional[int] = None):
  """One pass over `subset` with the `eval_protocol` of the subset: views x crops items of `frames` frames per clip."""
  from attn_har.data.clip_options import ClipOptions  # pylint: disable=import-outside-toplevel
  from attn_har.data.pipeline import make_eval_loader  # pylint: disable=import-outside-toplevel
  from attn_har.models.check import inputs_of  # pylint: disable=import-outside-toplevel
  c = config.data
  p = eval_protocol(config, subset)
  return make_eval_loader(store, ClipOptions.from_config(c, num_frames=p["frames"]), split=c.split, subset=subset,
                          batch_size=batch_size or config.eval.batch_size, views=p["views"], crops=p["crops"],
                          crop_fraction=p["crop_fraction"], workers=c.workers, streams=inputs_of(config.model),
                          with_mask=False, sharding=sharding, shard_options=shard_options, prefetch=1)


class _Subset:
  """A random-access source restricted to `indices` (for the image validation hold-out)."""

  def __init__(self, source, indices: List[int]):
    self.source, self.indices = source, list(indices)

  def __len__(self) -> int:
    return len(self.indices)

  def __getitem__(self, i: int):
    return self.source[self.indices[int(i)]]


class RunData:
  """The data of one run: classes, and loaders for 'train' (infinite) and 'val' / 'test' (one pass).

  Attributes:
    num_classes: K.
    classes: class names.
    has_val: whether a validation subset exists.
    location: the store (video) or dataset root (image), for the record.
  """

  def __init__(self, config: ml_collections.ConfigDict, workdir: pathlib.Path, log=print,
               build_workers: Optional[int] = None):
    self.config = config
    c = config.data
    if config.model.stream == "image":
      from attn_har.data import images  # pylint: disable=import-outside-toplevel
      spec = lookup(images.IMAGE_DATASETS, c.dataset, "image dataset")
      root = c.root or None
      tfds_dir = c.tfds_dir or None
      if root is None and tfds_dir is None:
        default = cache_root() / "datasets" / c.dataset
        if default.is_dir():
          root = str(default)
      self._src = {s: images.image_source(c.dataset, s, root=root, data_dir=tfds_dir) for s in ("train", "test")}
      self._root, self._tfds = root, tfds_dir
      n = len(self._src["train"])
      val = [i for i in range(n) if _val_of(f"{c.dataset}/{i}", c.val_fraction)]
      val_set = set(val)
      self._idx = {"train": [i for i in range(n) if i not in val_set], "val": val}
      self.num_classes = spec.num_classes
      folder_classes = getattr(self._src["train"], "classes", None)
      self.classes = list(folder_classes) if folder_classes else [str(i) for i in range(spec.num_classes)]
      if folder_classes:
        self.num_classes = len(folder_classes)
      self.has_val = bool(val)
      self.location = root or tfds_dir
      self.store = None
    else:
      store = prepare_store(config, log=log, build_workers=build_workers)
      self.store = split_store(store, c.split, c.val_fraction, workdir)
      self.classes = list(store_lib.ClipStore(self.store).classes)
      self.num_classes = len(self.classes)
      self.has_val = has_subset(self.store, c.split, "val")
      self.location = str(self.store)
      store_lib.ClipStore(self.store).require_ids(c.split, "test")  # an empty test subset is found now, not later

  def _image_loader(self, subset: str, train: bool, batch_size: int, sharding: Any, seed: Optional[int] = None,
                    shard_options: Any = None):
    from attn_har.data.images import make_image_loader  # pylint: disable=import-outside-toplevel
    c = self.config.data
    source = _Subset(self._src["train"], self._idx[subset]) if subset in ("train", "val") else self._src["test"]
    return make_image_loader(c.dataset, subset="train" if subset == "val" else subset, batch_size=batch_size,
                             image_size=c.image_size, train=train,
                             seed=self.config.seed if seed is None else seed,
                             num_epochs=None if train else 1, workers=c.workers, sharding=sharding,
                             source=source, prefetch=2 if train else 1, shard_options=shard_options)

  def train(self, sharding: Any = None, shard_options: Any = None, batch_size: Optional[int] = None,
            seed: Optional[int] = None):
    """The infinite, shuffled, augmented training iterator (checkpointable); `seed` defaults to config.seed."""
    bs = batch_size or self.config.train.batch_size
    if self.store is None:
      return self._image_loader("train", True, bs, sharding, seed, shard_options)
    return train_loader(self.config, self.store, sharding, shard_options, bs, seed)

  def eval(self, subset: str, sharding: Any = None, shard_options: Any = None, batch_size: Optional[int] = None):
    """One pass over 'train', 'val' or 'test' without augmentation ('valid' marks padding rows)."""
    bs = batch_size or self.config.eval.batch_size
    if self.store is None:
      return self._image_loader(subset, False, bs, sharding)
    return eval_loader(self.config, self.store, subset, sharding, shard_options, bs)
