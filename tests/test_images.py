"""Image datasets: folder layout, TFDS adapter, thesis augmentation as one warp, errors for missing data."""

import cv2
import numpy as np
import pytest

from attn_har.data import image_augment
from attn_har.data import images

CLASSES = ("ant", "bee", "cat")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
  """root/{train,test}/<class>/i.png; image value = 10 * class + i (constant), size 20x30."""
  root = tmp_path_factory.mktemp("imgs")
  for subset, n in (("train", 4), ("test", 3)):
    for c, name in enumerate(CLASSES):
      d = root / subset / name
      d.mkdir(parents=True)
      for i in range(n):
        cv2.imwrite(str(d / f"{i}.png"), np.full((20, 30, 3), 10 * c + i + (100 if subset == "test" else 0),
                                                 np.uint8))
  return root


def _spec_patch(monkeypatch, num_classes=3):
  spec = images.ImageDatasetSpec("cifar100", num_classes, (("train", "train"), ("test", "test")), 50.0, "x")
  monkeypatch.setitem(images.IMAGE_DATASETS, "cifar100", spec)


def test_eval_visits_every_image_once_padded(folder, monkeypatch):
  _spec_patch(monkeypatch)
  with images.make_image_loader("cifar100", root=folder, subset="test", batch_size=4, image_size=8, train=False,
                                prefetch=0, to_device=False) as it:
    batches = list(it)
  assert len(batches) == len(it) == 3  # 9 images -> 3 batches of 4, 3 padding rows
  valid = np.concatenate([b["valid"] for b in batches]).astype(bool)
  assert valid.sum() == 9 and not valid[9:].any()
  image = np.concatenate([b["image"] for b in batches])[valid]
  label = np.concatenate([b["label"] for b in batches])[valid]
  assert image.shape == (9, 8, 8, 3) and image.dtype == np.float32
  value = np.rint((image + 1) * 127.5)
  assert (value == value[:, :1, :1, :1]).all()  # constant images stay constant
  np.testing.assert_array_equal(value[:, 0, 0, 0], [100 + 10 * c + i for c in range(3) for i in range(3)])
  np.testing.assert_array_equal(label, np.repeat(np.arange(3), 3))


def test_train_augments_deterministically(folder, monkeypatch):
  _spec_patch(monkeypatch)
  kwargs = dict(root=folder, subset="train", batch_size=6, image_size=16, seed=3, prefetch=0, to_device=False)
  with images.make_image_loader("cifar100", **kwargs) as a, images.make_image_loader("cifar100", **kwargs) as b:
    xa, xb = [next(a) for _ in range(3)], [next(b) for _ in range(3)]
  for p, q in zip(xa, xb):
    np.testing.assert_array_equal(p["image"], q["image"])
  labels = np.concatenate([p["label"] for p in xa[:2]])
  assert sorted(labels) == sorted(np.repeat(np.arange(3), 4))  # one epoch of 12 images
  img = np.concatenate([p["image"] for p in xa])
  assert img.min() >= -1 and img.max() <= 1
  # the channel shift moves all channels of an image together; replicated borders keep images constant
  value = (img + 1) * 127.5
  assert np.ptp(value.reshape(len(value), -1), axis=1).max() < 1.0
  base = np.concatenate([[10 * l + 0.0] for l in labels])
  assert np.abs(value[:12, 0, 0, 0] - base).max() > 5  # shifted by U(-50, 50): not all near the source value


def test_affine_identity_flip_rotation_zoom():
  rng = np.random.default_rng(0)
  img = rng.integers(0, 256, (12, 18, 3), dtype=np.uint8)
  size = (12, 12)
  ident = image_augment.warp(img, image_augment.affine_matrix(12, 18, size), size)
  np.testing.assert_array_equal(ident, img[:, 3:15])  # centre square, scale 1: exact
  flipped = image_augment.warp(img, image_augment.affine_matrix(12, 18, size, flip=True), size)
  np.testing.assert_array_equal(flipped, ident[:, ::-1])
  rot = image_augment.warp(img, image_augment.affine_matrix(12, 18, size, rotation_deg=90), size)
  np.testing.assert_array_equal(rot, np.rot90(ident, 1))  # + = counter-clockwise on screen
  ramp = np.tile(np.arange(0, 240, 10, dtype=np.uint8)[None, :, None], (24, 1, 3))
  zoomed = image_augment.warp(ramp, image_augment.affine_matrix(24, 24, (24, 24), zoom=(2.0, 1.0)), (24, 24))
  assert np.allclose(np.diff(zoomed[0, 8:16, 0].astype(float)), 5.0, atol=1)  # magnified 2x: half the slope


def test_channel_shift_and_normalize():
  e = {"image": np.asarray([[[0, 100, 250]]], np.uint8), "label": 2}
  out = image_augment.ChannelShift(50.0).random_map(e, np.random.default_rng(1))
  d = out["image"].astype(int) - e["image"]
  delta = np.random.default_rng(1).uniform(-50, 50)
  np.testing.assert_array_equal(out["image"], np.clip(np.rint(e["image"] + delta), 0, 255))
  assert d[0, 0, 1] == round(delta)
  n = image_augment.Normalize().map(out)
  np.testing.assert_allclose(n["image"], out["image"] / 127.5 - 1, atol=1e-6)
  assert n["label"].dtype == np.int32


def test_missing_data_errors_name_the_layout(tmp_path):
  with pytest.raises(FileNotFoundError, match=r"<root>/train/<class>.*tfds build cifar100"):
    images.make_image_loader("cifar100", root=tmp_path / "none", batch_size=2)
  with pytest.raises(FileNotFoundError, match="caltech_birds2011"):
    images.make_image_loader("cub200", data_dir=tmp_path, batch_size=2)
  with pytest.raises(FileNotFoundError, match="neither root"):
    images.make_image_loader("imagenette", batch_size=2)
  with pytest.raises(KeyError, match="'cifar100', 'cub200', 'imagenette'"):
    images.make_image_loader("mnist", root=tmp_path, batch_size=2)


def test_folder_class_count_checked(folder):
  with pytest.raises(ValueError, match="3 class folders"):
    images.FolderSource(folder, "train", "cifar100", images.IMAGE_DATASETS["cifar100"])


def test_tfds_adapter(tmp_path, monkeypatch):
  tfds = pytest.importorskip("tensorflow_datasets")
  calls = {}

  def fake_data_source(name, split, data_dir, download):
    calls.update(name=name, split=split, data_dir=data_dir, download=download)
    return [{"image": np.full((5, 7, 1), 9, np.uint8), "label": 4}]

  monkeypatch.setattr(tfds, "data_source", fake_data_source)
  (tmp_path / "imagenette").mkdir()
  src = images.image_source("imagenette", "test", data_dir=tmp_path)
  assert calls == {"name": "imagenette", "split": "validation", "data_dir": str(tmp_path), "download": False}
  ex = src[0]
  assert ex["image"].shape == (5, 7, 3) and ex["label"] == 4 and len(src) == 1


def test_train_shards_split_the_images_between_processes(folder, monkeypatch):
  """Two processes' shards (ShardOptions 0/2, 1/2: what ShardByJaxProcess gives) see disjoint halves of an epoch."""
  import grain  # pylint: disable=import-outside-toplevel
  _spec_patch(monkeypatch)
  seen = []
  for index in range(2):
    shard = grain.sharding.ShardOptions(shard_index=index, shard_count=2, drop_remainder=True)
    with images.make_image_loader("cifar100", root=folder, subset="train", batch_size=2, image_size=8, seed=3,
                                  num_epochs=1, augment=False, prefetch=0, to_device=False,
                                  shard_options=shard) as it:
      batches = list(it)
    assert len(batches) == len(it) == 3   # 12 images, 6 per shard, batches of 2
    value = np.rint((np.concatenate([b["image"] for b in batches])[:, 0, 0, 0] + 1) * 127.5).astype(int)
    seen.append(set(value.tolist()))
  assert len(seen[0]) == len(seen[1]) == 6 and not seen[0] & seen[1]
  assert seen[0] | seen[1] == {10 * c + i for c in range(3) for i in range(4)}
