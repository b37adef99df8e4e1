"""Built-in synthetic action dataset: determinism, masks, classes, splits, ambiguity of one frame, motion."""

import collections

import cv2
import numpy as np
import pytest

from attn_har.data import synthetic

import synthetic_checks


@pytest.fixture(scope="module")
def ds():
  return synthetic.SyntheticActions()


def _centroids(mask):
  out = []
  for m in mask:
    ys, xs = np.nonzero(m)
    out.append((xs.mean(), ys.mean()))
  return np.asarray(out)


def _rotation_step(mask, t):
  """Angle (cv2 convention: + = counter-clockwise on screen) that best maps mask t onto mask t + 1."""
  cx, cy = _centroids(mask[t:t + 1])[0]
  src = mask[t].astype(np.float32)
  return min(range(-20, 21), key=lambda a: np.abs(
      cv2.warpAffine(src, cv2.getRotationMatrix2D((cx, cy), a, 1.0), src.shape[::-1], flags=cv2.INTER_NEAREST) - mask[t + 1]).sum())


def test_deterministic_per_seed_and_index():
  a, b = synthetic.SyntheticActions(seed=3), synthetic.SyntheticActions(seed=3)
  for i in (0, 7, 41):
    ca, cb = a.clip(i), b.clip(i)
    assert ca["rgb"].tobytes() == cb["rgb"].tobytes() and ca["mask"].tobytes() == cb["mask"].tobytes()
    assert ca["label"] == cb["label"] and ca["name"] == cb["name"]
  assert a.clip(7)["rgb"].tobytes() == synthetic.SyntheticActions(seed=3).clip(7)["rgb"].tobytes()  # order-free
  assert a.clip(0)["rgb"].tobytes() != synthetic.SyntheticActions(seed=4).clip(0)["rgb"].tobytes()


def test_shapes_masks_inside_frame(ds):
  for i in range(len(ds.class_names) * 2):
    c = ds.clip(i)
    assert c["rgb"].shape == (16, 64, 64, 3) and c["rgb"].dtype == np.uint8
    assert c["mask"].shape == (16, 64, 64) and c["mask"].dtype == np.uint8
    assert set(np.unique(c["mask"])) <= {0, 1}
    area = c["mask"].reshape(16, -1).sum(1)
    assert area.min() >= 30, (c["name"], area)
    border = c["mask"][:, 0].sum() + c["mask"][:, -1].sum() + c["mask"][:, :, 0].sum() + c["mask"][:, :, -1].sum()
    assert border == 0, c["name"]


def test_sizes_are_parameters():
  c = synthetic.SyntheticActions(num_classes=16, clips_per_class=2, size=40, num_frames=6, seed=1).clip(15)
  assert c["rgb"].shape == (6, 40, 40, 3) and c["label"] == 15 and c["name"] == "circle/clip_000"
  with pytest.raises(ValueError, match="num_classes"):
    synthetic.SyntheticActions(num_classes=17)
  with pytest.raises(IndexError, match="300"):
    synthetic.SyntheticActions().clip(300)


def test_every_class_present_and_splits_stratified(ds):
  labels = collections.Counter(ds.label_of(i) for i in range(len(ds)))
  assert sorted(labels) == list(range(10)) and set(labels.values()) == {30}
  assert len(set(ds.class_names)) == 10 and ds.class_names[:2] == ["move_left", "move_right"]
  per = collections.Counter((ds.label_of(i), ds.split_of(i)) for i in range(len(ds)))
  for k in range(10):
    assert (per[k, "train"], per[k, "val"], per[k, "test"]) == (18, 6, 6)
  assert sorted(ds.indices("train") + ds.indices("val") + ds.indices("test")) == list(range(len(ds)))
  tiny = synthetic.SyntheticActions(num_classes=2, clips_per_class=1)
  assert [tiny.split_of(i) for i in range(2)] == ["train", "train"]


def test_single_frame_of_left_and_right_looks_alike(ds):
  """The middle frame's appearance and actor position have the same statistics for 'move_left' and 'move_right'."""
  left, right = synthetic_checks.middle_frame_stats(ds, 0), synthetic_checks.middle_frame_stats(ds, 1)
  synthetic_checks.assert_same_means(left, right)


@pytest.mark.parametrize("name", ["move_left", "move_right", "move_up", "move_down", "rotate_cw", "rotate_ccw",
                                  "grow", "shrink", "oscillate", "static"])
def test_motion_of_each_class(ds, name):
  label = ds.class_names.index(name)
  for k in range(3):
    mask = ds.clip(label + 10 * k)["mask"]
    xy = _centroids(mask)
    d = xy[-1] - xy[0]
    area = mask.reshape(len(mask), -1).sum(1).astype(float)
    span = np.ptp(xy, 0)
    if name.startswith("move_"):
      want = {"move_left": (-1, 0), "move_right": (1, 0), "move_up": (0, -1), "move_down": (0, 1)}[name]
      assert np.dot(d, want) > 0.25 * 64 and abs(np.cross(d, want)) < 2.0, (name, d)
      steps = np.diff(xy, axis=0) @ np.asarray(want, float)
      assert steps.min() > 0, (name, steps)
    elif name.startswith("rotate"):
      assert span.max() < 2.0, (name, span)
      turns = [_rotation_step(mask, t) for t in range(15)]
      sign = 1 if name == "rotate_ccw" else -1
      assert sum(np.sign(turns) == sign) >= 12, (name, turns)
    elif name in ("grow", "shrink"):
      ratio = area[-1] / area[0]
      assert (ratio > 2.5) if name == "grow" else (ratio < 0.4), (name, ratio)
      assert span.max() < 2.0
    elif name == "oscillate":
      vx = np.diff(xy[:, 0])
      assert span[0] > 8 and span[1] < 1.0 and (vx > 0.5).any() and (vx < -0.5).any(), (name, xy[:, 0])
    else:
      assert span.max() == 0 and (mask == mask[0]).all()
