"""Image datasets of the attention prototypes (CIFAR-100, Imagenette, CUB-200-2011) as Grain loaders.

Two layouts are read; nothing is ever downloaded:

  * image folders (fully supported, no extra dependency)::

      <root>/train/<class>/*.{png,jpg,jpeg,bmp}
      <root>/test/<class>/*         (or <root>/val/<class>/*, Imagenette's name)

    Class names are the sorted folder names of train/; label = position in that list.
  * a prepared TFDS directory, read with `tfds.data_source(name, data_dir=..., download=False)`. This needs the
    dataset prepared in the array_record file format (`tfds build <name> --data_dir DIR
    --file_format=array_record`, which itself needs TensorFlow, absent here). Reading works without TensorFlow
    (tfds decodes images with OpenCV); the tfrecord format cannot be random-accessed and is rejected by tfds.

  it = make_image_loader('cifar100', root='/data/cifar100', subset='train', batch_size=64, image_size=224,
                         train=True, seed=0)
  batch = next(it)   # {'image': [B, S, S, 3] f32 in [-1, 1], 'label': [B] i32, 'index': [B] i32, 'valid': [B] i32}

Training applies the thesis augmentation (`image_augment.RandomAffine`, plus `ChannelShift(50)` for CIFAR-100),
evaluation the undistorted centre-square resize. With `train=False` every image is visited once and the last
batch is padded ('valid' = 0 on padding rows). The iterator is the video pipeline's `DevicePrefetch`, saved and
restored with `pipeline.iterator_save_args` / `iterator_restore_args`.
"""

import dataclasses
import pathlib
from typing import Any, Optional, Tuple, Union

import cv2
import grain
import numpy as np

from attn_har import registry
from attn_har.data import image_augment
from attn_har.data import prefetch as prefetch_lib

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


@dataclasses.dataclass(frozen=True)
class ImageDatasetSpec:
  """How to find one image dataset.

  Attributes:
    tfds_name: the TFDS builder name.
    num_classes: number of classes.
    tfds_splits: subset -> TFDS split name.
    channel_shift: Keras channel_shift_range of the thesis training augmentation (0 = none).
    source: where the data comes from, for the missing-data message.
  """
  tfds_name: str
  num_classes: int
  tfds_splits: Tuple[Tuple[str, str], ...]
  channel_shift: float = 0.0
  source: str = ""


IMAGE_DATASETS = {
    "cifar100": ImageDatasetSpec("cifar100", 100, (("train", "train"), ("test", "test")), channel_shift=50.0,
                                 source="https://www.cs.toronto.edu/~kriz/cifar.html"),
    "imagenette": ImageDatasetSpec("imagenette", 10, (("train", "train"), ("test", "validation")),
                                   source="https://github.com/fastai/imagenette (imagenette2: train/ and val/)"),
    "cub200": ImageDatasetSpec("caltech_birds2011", 200, (("train", "train"), ("test", "test")),
                               source="https://www.vision.caltech.edu/datasets/cub_200_2011/ (train_test_split.txt)"),
}


def _missing(name: str, spec: ImageDatasetSpec, what: str) -> FileNotFoundError:
  return FileNotFoundError(
      f"image dataset {name!r}: {what}. Expected either an image folder <root>/train/<class>/*.png and "
      f"<root>/test/<class>/* (or val/), passed as root=..., or a TFDS directory with {spec.tfds_name!r} prepared "
      f"in array_record format (`tfds build {spec.tfds_name} --data_dir DIR --file_format=array_record`), passed "
      f"as data_dir=... Nothing is downloaded; get the data from {spec.source}.")


class FolderSource(grain.sources.RandomAccessDataSource):
  """Images of `<root>/<subset>/<class>/*` as {'image': uint8 [H, W, 3] RGB, 'label': int}."""

  def __init__(self, root, subset: str, name: str = "folder", spec: Optional[ImageDatasetSpec] = None):
    root = pathlib.Path(root)
    spec = spec or ImageDatasetSpec(name, 0, ())
    train_dir = root / "train"
    names = ("test", "val") if subset == "test" else (subset,)
    subset_dir = next((root / n for n in names if (root / n).is_dir()), None)
    if not train_dir.is_dir() or subset_dir is None:
      raise _missing(name, spec, f"no {train_dir} or {root / names[0]} directory")
    self.classes = sorted(p.name for p in train_dir.iterdir() if p.is_dir())
    index = {c: i for i, c in enumerate(self.classes)}
    self.files, self.labels = [], []
    for cls_dir in sorted(p for p in subset_dir.iterdir() if p.is_dir()):
      if cls_dir.name not in index:
        raise ValueError(f"class folder {cls_dir} has no counterpart in {train_dir}")
      files = sorted(p for p in cls_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
      self.files += [str(p) for p in files]
      self.labels += [index[cls_dir.name]] * len(files)
    if not self.files:
      raise _missing(name, spec, f"no images under {subset_dir}/<class>/")
    if spec.num_classes and len(self.classes) != spec.num_classes:
      raise ValueError(f"{train_dir} has {len(self.classes)} class folders, {name!r} has {spec.num_classes}")

  def __len__(self) -> int:
    return len(self.files)

  def __getitem__(self, i: int) -> dict:
    path = self.files[int(i)]
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
      raise OSError(f"cannot decode image {path}")
    return {"image": cv2.cvtColor(image, cv2.COLOR_BGR2RGB), "label": self.labels[int(i)]}


class TfdsSource(grain.sources.RandomAccessDataSource):
  """A prepared TFDS dataset (array_record) as {'image': uint8 [H, W, 3], 'label': int}."""

  def __init__(self, data_dir, subset: str, name: str, spec: ImageDatasetSpec):
    try:
      import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    except ImportError as e:
      raise _missing(name, spec, f"tensorflow_datasets is not importable ({e})") from None
    split = dict(spec.tfds_splits).get(subset)
    if split is None:
      raise KeyError(f"unknown subset {subset!r} of {name!r}; valid subsets: {sorted(dict(spec.tfds_splits))}")
    if not pathlib.Path(data_dir, spec.tfds_name).is_dir():
      raise _missing(name, spec, f"no {pathlib.Path(data_dir, spec.tfds_name)} directory")
    try:
      self._source = tfds.data_source(spec.tfds_name, split=split, data_dir=str(data_dir), download=False)
    except Exception as e:  # pylint: disable=broad-except  (tfds raises several types for unprepared data)
      raise _missing(name, spec, f"tfds could not open it ({type(e).__name__}: {e})") from e

  def __len__(self) -> int:
    return len(self._source)

  def __getitem__(self, i: int) -> dict:
    ex = self._source[int(i)]
    image = np.asarray(ex["image"])
    if image.ndim == 2 or image.shape[-1] == 1:
      image = np.repeat(image.reshape(image.shape[0], image.shape[1], 1), 3, -1)
    return {"image": image, "label": int(ex["label"])}


class _Indexed(grain.sources.RandomAccessDataSource):
  """Adds 'index' and 'valid'; pads the length to a multiple of `pad_to` with invalid copies of item 0."""

  def __init__(self, source, pad_to: Optional[int] = None):
    self.source, self._n = source, len(source)
    self._len = self._n if not pad_to else -(-self._n // pad_to) * pad_to

  def __len__(self) -> int:
    return self._len

  def __getitem__(self, i: int) -> dict:
    i = int(i)
    valid = i < self._n
    return {**self.source[i if valid else 0], "index": np.int32(i if valid else 0), "valid": np.int32(valid)}


def image_source(name: str, subset: str, *, root=None, data_dir=None):
  """The Grain source of a registered dataset from an image folder (`root`) or a TFDS directory (`data_dir`)."""
  spec = registry.lookup(IMAGE_DATASETS, name, "image dataset")
  if root is not None:
    return FolderSource(root, subset, name, spec)
  if data_dir is not None:
    return TfdsSource(data_dir, subset, name, spec)
  raise _missing(name, spec, "neither root= (image folder) nor data_dir= (TFDS) was given")


def make_image_loader(name: str, *, root=None, data_dir=None, subset: str = "train", batch_size: int,
                      image_size: Union[int, Tuple[int, int]] = 224, train: bool = True, seed: int = 0,
                      num_epochs: Optional[int] = None, workers: int = 0, drop_remainder: Optional[bool] = None,
                      augment: bool = True, prefetch: int = 2, sharding: Any = None, to_device: bool = True,
                      source: Optional[Any] = None, shard_options: Optional[Any] = None) -> prefetch_lib.DevicePrefetch:
  """Batches of one image dataset.

  Args:
    name: a key of IMAGE_DATASETS ('cifar100', 'imagenette', 'cub200').
    root: image-folder root; data_dir: TFDS directory (one of the two, or `source`).
    subset: 'train' or 'test'.
    batch_size: images per batch.
    image_size: output S or (H, W) (224 in the thesis, CIFAR included).
    train: shuffle and augment; otherwise one ordered pass (num_epochs=1 unless given), padded last batch.
    seed: shuffle and augmentation seed.
    num_epochs: None repeats forever (train); eval defaults to 1.
    workers: Grain worker processes.
    drop_remainder: default True for train, False (padding + 'valid') for eval.
    augment: apply the thesis augmentation when training.
    prefetch, sharding, to_device: as in `pipeline.make_loader`.
    source: a ready Grain source of {'image', 'label'} (overrides root/data_dir).
    shard_options: grain.sharding.ShardOptions: this process's share of the images (multi-host training, e.g.
      `ShardByJaxProcess`); default all of them.
  """
  spec = registry.lookup(IMAGE_DATASETS, name, "image dataset")
  size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
  source = source if source is not None else image_source(name, subset, root=root, data_dir=data_dir)
  drop_remainder = train if drop_remainder is None else drop_remainder
  num_epochs = num_epochs if num_epochs is not None or train else 1
  indexed = _Indexed(source, None if drop_remainder else batch_size)
  ops = []
  if train and augment:
    ops.append(image_augment.RandomAffine(size))
    if spec.channel_shift:
      ops.append(image_augment.ChannelShift(spec.channel_shift))
  else:
    ops.append(image_augment.CenterResize(size))
  ops += [image_augment.Normalize(), grain.transforms.Batch(batch_size, drop_remainder=True)]
  shard_options = shard_options or grain.sharding.NoSharding()
  sampler = grain.samplers.IndexSampler(len(indexed), shard_options=shard_options, shuffle=train,
                                        num_epochs=num_epochs, seed=seed)
  if workers:
    from attn_har.data import pipeline  # pylint: disable=g-import-not-at-top
    pipeline.parse_flags_for_workers(workers)
  loader = grain.DataLoader(data_source=indexed, sampler=sampler, operations=ops, worker_count=workers,
                            shard_options=shard_options)
  length = None if num_epochs is None else (num_epochs * (len(indexed) // shard_options.shard_count)) // batch_size
  return prefetch_lib.DevicePrefetch(iter(loader), prefetch, sharding, to_device, length)
