"""Data preparation: build a clip store, find (or generate) a run's store, hold out validation, make the loaders.

  result = build_store(source, store_settings(source, flow='dis'), out, workers=2)   # any DATASETS source
  run_data = RunData(config, workdir)        # a run's classes and loaders ('train' infinite, 'val'/'test' once)

  - building (`build_store`, also behind `python -m attn_har.data.preprocess`): every clip of the source is
    pre-processed once in spawned processes (`clip_pool`); finished clips are skipped (their recorded settings
    must match, else it stops) once their sha256 is checked (damaged ones are redone), stale temporary files are
    removed, and the manifest is rebuilt at the end from the finished clip files, so an interrupted run resumes
    without losing or duplicating a clip. The manifest records the preprocess arguments (`preprocess_args`), so
    a reader that meets a damaged clip names the command that repairs the store.
  - a run's store (`prepare_store`): `config.data.store`, else `<cache>/stores/<tag>` (`default_store`). A
    generated dataset (synthetic) is built there when missing, once; later runs reuse it. For a dataset read
    from raw files the store must exist; otherwise the error names the raw-data layout and the preprocess
    command. Nothing is downloaded.
  - image datasets (cifar100, imagenette): `attn_har.data.images` from `data.root` (image folders) or
    `data.tfds_dir`; validation = a deterministic `val_fraction` of the train images (by sha1 of the index).
  - validation: the store's 'val' subset when its split has one (synthetic), else a split view holding out
    `val_fraction` of each class's train clips (deterministic, by sha1 of the clip id): a manifest-only store
    under `<workdir>/split_view/` whose entries point at the original clip files. The test subset is only read
    at the end.
"""

import concurrent.futures as cf
import dataclasses
import hashlib
import json
import os
import pathlib
import sys
import time
from typing import Any, Dict, List, Optional, Sequence

import ml_collections
import tqdm

from attn_har.config.paths import cache_root
from attn_har.data import clip_pool, datasets, flow, quantize, stacking, store as store_lib
from attn_har.registry import lookup

VIEW_DIR = "split_view"
# Settings recorded in every clip entry; a resumed run must use the same ones.
SETTING_KEYS = ("flow", "clip_px", "stacking", "length", "bidirectional", "frames", "size")


def store_settings(source, *, flow_method: str, stacking_mode: str = "consecutive", length: int = 10,
                   clip_px: float = quantize.DEFAULT_CLIP_PX, bidirectional: bool = False,
                   frames: Optional[int] = None, size: Sequence[int] = (240, 320)) -> dict:
  """The settings every clip of a store of `source` is made with (validated; keys `SETTING_KEYS`).

  `frames` None = `source.default_frames`; `size` [H, W] passes through `source.frame_size` (a generated source
  keeps its own).
  """
  frames = frames or source.default_frames
  size = source.frame_size(size)
  stacking.required_pairs(frames, length, stacking_mode, bidirectional)  # validates T, L, mode
  quantize.step(clip_px)
  if min(size) < 8:
    raise ValueError(f"--size must be at least 8 x 8, got {size}")
  return {"flow": flow_method, "clip_px": float(clip_px), "stacking": stacking_mode, "length": length,
          "bidirectional": bool(bidirectional), "frames": frames, "size": size}


def remove_stale_temporaries(out: str) -> int:
  """Deletes temporary files a killed run left in the store; returns how many."""
  clip_dir = os.path.join(out, store_lib.CLIP_DIR)
  removed = 0
  for folder in (out, clip_dir):
    if not os.path.isdir(folder):
      continue
    for name in os.listdir(folder):
      if name.startswith(".") and ".tmp" in name:
        os.remove(os.path.join(folder, name))
        removed += 1
  return removed


def redo_damaged(out: str, entries: List[dict], threads: int = 1) -> List[dict]:
  """Checks the sha256 of each finished clip (`threads` at a time) and removes the damaged ones so they are redone.

  Returns:
    [{'id', 'path', 'error'}] of the damaged clips.
  """
  with cf.ThreadPoolExecutor(max(1, threads)) as pool:
    problems = list(pool.map(lambda e: store_lib.clip_damage(out, e), entries))
  damaged = []
  for entry, problem in zip(entries, problems):
    if problem:
      store_lib.remove_clip(out, entry["id"])
      damaged.append({"id": entry["id"], "path": entry.get("source"), "error": problem})
  return damaged


def preprocess_args(source, settings: dict) -> List[str]:
  """The preprocess arguments (all but --out) that build a store of `source` with `settings`."""
  args = source.cli_args() if hasattr(source, "cli_args") else ["--dataset", source.name]
  args += ["--flow", settings["flow"], "--clip-px", str(settings["clip_px"]), "--stacking", settings["stacking"],
           "--length", str(settings["length"]), "--frames", str(settings["frames"]),
           "--size", *[str(v) for v in settings["size"]]]
  return args + (["--bidirectional"] if settings["bidirectional"] else [])


def finished(out: str, specs: List[datasets.ClipSpec], settings: dict) -> List[dict]:
  """Entries of the finished clips among `specs`; raises if one was made with other settings."""
  entries = []
  for spec in specs:
    if store_lib.clip_done(out, spec.id):
      entry = store_lib.read_entry(out, spec.id)
      old = entry.get("preprocess", {})
      diff = [k for k in SETTING_KEYS if old.get(k) != settings[k]]
      if diff:
        raise ValueError(f"store {out} holds clip {spec.id!r} made with other settings "
                         f"({', '.join(f'{k}={old.get(k)!r} not {settings[k]!r}' for k in diff)}); "
                         f"use another --out or the original options")
      entries.append(entry)
  return entries


@dataclasses.dataclass
class BuildResult:
  """What one `build_store` call did.

  Attributes:
    dataset: the source's name.
    out: the store directory.
    flow: the flow method.
    clips: clips in the store now (0 when interrupted: no manifest written).
    new: clips finished in this call.
    done: clips already finished before it (and intact).
    stale: stale temporary files removed.
    damaged: [{'id', 'path', 'error'}] of finished clips whose file did not match its sha256; they were redone
      (those that failed again are also in `failures`).
    failures: [{'id', 'path', 'error'}] of the clips that failed.
    missing: clips listed by the dataset but absent on disk.
    seconds: time spent pre-processing.
    pairs: flow pairs per clip.
    interrupted: a KeyboardInterrupt stopped it (finished clips are kept; no manifest written).
  """
  dataset: str
  out: str
  flow: str
  clips: int = 0
  new: int = 0
  done: int = 0
  stale: int = 0
  damaged: List[dict] = dataclasses.field(default_factory=list)
  failures: List[dict] = dataclasses.field(default_factory=list)
  missing: List[datasets.ClipSpec] = dataclasses.field(default_factory=list)
  seconds: float = 0.0
  pairs: int = 0
  interrupted: bool = False

  def status(self, allow_missing: bool = False) -> int:
    """The preprocess command's exit status: 130 interrupted, 1 failures (or missing clips), else 0."""
    if self.interrupted:
      return 130
    return int(bool(self.failures) or (bool(self.missing) and not allow_missing))

  def summary(self) -> str:
    """One line: clips, new / done, failures, missing, time and rates."""
    rate = self.new / self.seconds if self.seconds > 0 else 0.0
    return (f"{self.dataset}: {self.clips} clips in {self.out} ({self.new} new, {self.done} already done"
            f"{f', {len(self.damaged)} damaged clips redone' if self.damaged else ''}"
            f"{f', {self.stale} stale temporaries removed' if self.stale else ''}); {len(self.failures)} failed; "
            f"{len(self.missing)} listed but missing on disk; {self.seconds:.1f} s, {rate:.2f} clips/s, "
            f"{rate * self.pairs:.1f} flow pairs/s ({self.flow}, {self.pairs} pairs per clip)")


def build_store(source, settings: dict, out, workers: int = os.cpu_count() or 1, progress: bool = True,
                limit: Optional[int] = None, max_decode_bytes: int = 1 << 30, verify: bool = True) -> BuildResult:
  """Pre-processes the clips of `source` into the store `out` (resumable) and writes its manifest.

  Args:
    source: a `datasets.DATASETS` source (clips, classes, splits, missing, load).
    settings: `store_settings(...)`.
    out: the store directory (created).
    workers: spawned processes; 0 runs in this process.
    progress: show a tqdm bar (failed clips are reported on stderr either way).
    limit: pre-process at most this many pending clips.
    max_decode_bytes: clips whose decoded frames would exceed this are decoded in two passes keeping T frames.
    verify: check the sha256 of every finished clip and redo damaged ones (False: trust a file of the right size).

  Raises:
    FileNotFoundError, ValueError, KeyError, ImportError: unusable settings, flow method or store (before any
      clip is processed), e.g. a store holding clips made with other settings.
  """
  out = os.fspath(out)
  flow.make_solver(settings["flow"])  # fail fast, before any worker starts
  os.makedirs(out, exist_ok=True)
  stale = remove_stale_temporaries(out)
  done = finished(out, source.clips, settings)
  damaged = redo_damaged(out, done, max(1, workers)) if verify else []
  for d in damaged:
    print(f"DAMAGED {d['id']}: {d['error']}; pre-processing it again", file=sys.stderr)
  done = [e for e in done if e["id"] not in {d["id"] for d in damaged}]
  done_ids = {e["id"] for e in done}
  pending = [s for s in source.clips if s.id not in done_ids]
  if limit is not None:
    pending = pending[:limit]
  result = BuildResult(source.name, out, settings["flow"], done=len(done), stale=stale, damaged=damaged,
                       missing=list(source.missing),
                       pairs=len(stacking.required_pairs(settings["frames"], settings["length"],
                                                         settings["stacking"], settings["bidirectional"])))
  bar = tqdm.tqdm(total=len(pending), unit="clip", desc=f"{source.name} {settings['flow']}", disable=not progress,
                  dynamic_ncols=True, file=sys.stderr)

  def on_result(r: tuple) -> None:
    if r[0] == "ok":
      result.new += 1
    else:
      _, cid, path, msg = r
      result.failures.append({"id": cid, "path": path, "error": msg})
      bar.write(f"FAILED {cid} ({path}): {msg}", file=sys.stderr)
      bar.set_postfix(failed=len(result.failures))
    bar.update(1)

  start = time.time()
  n_workers = min(workers, len(pending)) if workers > 0 else 0
  threads = max(1, (os.cpu_count() or 1) // max(1, n_workers))
  initargs = (source, settings, out, threads, max_decode_bytes)
  try:
    if pending:
      clip_pool.run_pool(pending, n_workers, initargs, on_result)
  except KeyboardInterrupt:
    bar.close()
    result.interrupted = True
    return result
  bar.close()
  result.seconds = time.time() - start

  entries = finished(out, source.clips, settings)  # rebuilt from the files: every finished clip exactly once
  ids = [e["id"] for e in entries]
  manifest = {
      "version": store_lib.VERSION, "dataset": source.name, "classes": list(source.classes),
      "frames": settings["frames"], "size": settings["size"],
      "flow": {"method": settings["flow"], "clip_px": settings["clip_px"], "pairs": settings["stacking"],
               "length": settings["length"], "bidirectional": settings["bidirectional"]},
      "clips": entries, "splits": source.splits(ids), "failures": result.failures,
      "num_missing": len(source.missing),
      "num_unprocessed": len(source.clips) - len(entries) - len(result.failures),
      "preprocess_args": preprocess_args(source, settings),
  }
  store_lib.write_manifest(out, manifest)
  result.clips = len(entries)
  return result


def default_store(c: ml_collections.ConfigDict) -> pathlib.Path:
  """`<cache>/stores/<tag>` (the dataset source's `store_tag`): the store location when `config.data.store` is
  empty."""
  return cache_root() / "stores" / lookup(datasets.DATASETS, c.dataset, "data.dataset").store_tag(c)


def preprocess_command(c: ml_collections.ConfigDict, store: pathlib.Path) -> str:
  """The shell command that builds the store for a real dataset."""
  root = c.root or f"<{c.dataset} root>"
  return (f"python -m attn_har.data.preprocess --dataset {c.dataset} --root {root} --out {store} "
          f"--flow {c.flow_method} --stacking {c.stacking} --length {c.flow_length} --frames {c.store_frames} "
          f"--size {c.store_size} {c.store_size}")


def prepare_store(config: ml_collections.ConfigDict, log=print) -> pathlib.Path:
  """Returns the clip-store directory for a video config, building it for a generated dataset."""
  c = config.data
  store = pathlib.Path(c.store).expanduser() if c.store else default_store(c)
  if (store / "manifest.json").is_file():
    return store
  cls = lookup(datasets.DATASETS, c.dataset, "data.dataset")
  if cls.generated:
    source = cls.from_config(c)
    settings = store_settings(source, flow_method=c.flow_method, stacking_mode=c.stacking,
                              length=int(c.flow_length))
    workers = c.workers or (os.cpu_count() or 1)
    log(f"generating the {c.dataset} dataset into {store} ({len(source.clips)} clips, {workers} workers)")
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


def split_store(store: pathlib.Path, split: str, val_fraction: float, workdir: pathlib.Path) -> pathlib.Path:
  """A store whose split has 'train', 'val' and 'test' subsets: `store` itself or a split view in `workdir`."""
  src = store_lib.ClipStore(store)
  subsets = src.manifest["splits"].get(str(split))
  if subsets is None:
    raise KeyError(f"split {split!r} not in store {store}; valid splits: {sorted(src.manifest['splits'])}")
  if "val" in subsets or val_fraction <= 0:
    return store
  train = list(subsets["train"])
  by_class: Dict[int, List[str]] = {}
  for cid in train:
    by_class.setdefault(int(src.entry(cid)["label"]), []).append(cid)
  val = []
  for ids in by_class.values():
    picked = [i for i in ids if _val_of(i, val_fraction)]
    if not picked and len(ids) >= 2 and val_fraction > 0:
      picked = [min(ids, key=lambda i: hashlib.sha1(i.encode()).hexdigest())]
    if len(picked) == len(ids):
      picked = picked[:-1]
    val += picked
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


def eval_loader(config: ml_collections.ConfigDict, store: pathlib.Path, subset: str, sharding: Any = None,
                shard_options: Any = None, batch_size: Optional[int] = None):
  """One pass over `subset` with `eval.clips_per_video` x `eval.crops` views per clip."""
  from attn_har.data.clip_options import ClipOptions  # pylint: disable=import-outside-toplevel
  from attn_har.data.pipeline import make_eval_loader  # pylint: disable=import-outside-toplevel
  from attn_har.models.check import inputs_of  # pylint: disable=import-outside-toplevel
  c = config.data
  return make_eval_loader(store, ClipOptions.from_config(c), split=c.split, subset=subset,
                          batch_size=batch_size or config.eval.batch_size, views=config.eval.clips_per_video,
                          crops=config.eval.crops, workers=c.workers, streams=inputs_of(config.model),
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

  def __init__(self, config: ml_collections.ConfigDict, workdir: pathlib.Path, log=print):
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
      store = prepare_store(config, log=log)
      self.store = split_store(store, c.split, c.val_fraction, workdir)
      self.classes = list(store_lib.ClipStore(self.store).classes)
      self.num_classes = len(self.classes)
      self.has_val = has_subset(self.store, c.split, "val")
      self.location = str(self.store)
      store_lib.ClipStore(self.store).require_ids(c.split, "test")  # an empty test subset is found now, not later

  def _image_loader(self, subset: str, train: bool, batch_size: int, sharding: Any, seed: Optional[int] = None):
    from attn_har.data.images import make_image_loader  # pylint: disable=import-outside-toplevel
    c = self.config.data
    source = _Subset(self._src["train"], self._idx[subset]) if subset in ("train", "val") else self._src["test"]
    return make_image_loader(c.dataset, subset="train" if subset == "val" else subset, batch_size=batch_size,
                             image_size=c.image_size, train=train,
                             seed=self.config.seed if seed is None else seed,
                             num_epochs=None if train else 1, workers=c.workers, sharding=sharding,
                             source=source, prefetch=2 if train else 1)

  def train(self, sharding: Any = None, shard_options: Any = None, batch_size: Optional[int] = None,
            seed: Optional[int] = None):
    """The infinite, shuffled, augmented training iterator (checkpointable); `seed` defaults to config.seed."""
    bs = batch_size or self.config.train.batch_size
    if self.store is None:
      return self._image_loader("train", True, bs, sharding, seed)
    return train_loader(self.config, self.store, sharding, shard_options, bs, seed)

  def eval(self, subset: str, sharding: Any = None, shard_options: Any = None, batch_size: Optional[int] = None):
    """One pass over 'train', 'val' or 'test' without augmentation ('valid' marks padding rows)."""
    bs = batch_size or self.config.eval.batch_size
    if self.store is None:
      return self._image_loader(subset, False, bs, sharding)
    return eval_loader(self.config, self.store, subset, sharding, shard_options, bs)
