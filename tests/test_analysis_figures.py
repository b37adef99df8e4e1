"""Figure writers produce decodable, non-blank files."""

import json

import imageio.v2 as imageio
import numpy as np
import pytest

from attn_har.analysis import figures

MIN_STD = 5.0  # pixel std (0-255) below which an image counts as blank


def _rows():
  rng = np.random.default_rng(0)
  img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
  return [{"label": "cbam", "image": img, "maps": {"combined": rng.random((32, 32)), "early": rng.random((16, 16)),
                                                    "medium": rng.random((8, 8)), "late": rng.random((4, 4))}},
          {"label": "baseline", "image": img, "maps": {"combined": rng.random((32, 32))}}]


def test_stage_grid_png(tmp_path):
  path = figures.stage_grid(_rows(), tmp_path / "grid.png", title="t")
  img = imageio.imread(path)
  assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 400
  assert img[..., :3].std() > MIN_STD
  with pytest.raises(KeyError, match="maps"):
    figures.stage_grid([{"label": "x", "image": np.zeros((4, 4, 3))}], tmp_path / "bad.png")


@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_write_clip_round_trip(tmp_path, suffix):
  rng = np.random.default_rng(0)
  frames = [figures.side_by_side([rng.integers(0, 256, (32, 32, 3), dtype=np.uint8),
                                  rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)]) for _ in range(4)]
  assert frames[0].shape == (32, 66, 3)
  path = figures.write_clip(frames, tmp_path / f"clip{suffix}")
  if suffix == ".gif":
    back = imageio.mimread(path)
    assert len(back) == 4
    assert np.asarray(back[0])[..., :3].std() > MIN_STD
  else:
    import cv2
    cap = cv2.VideoCapture(str(path))
    ok, frame = cap.read()
    cap.release()
    assert ok and frame.std() > MIN_STD
  with pytest.raises(ValueError, match="unsupported"):
    figures.write_clip(frames, tmp_path / "clip.avi")


def test_training_curves_png(tmp_path):
  log = tmp_path / "metrics.jsonl"
  with open(log, "w") as f:
    for step in range(1, 6):
      f.write(json.dumps({"step": step, "split": "train", "loss": 2.0 / step, "top1": 0.1 * step}) + "\n")
      if step % 2 == 0:
        f.write(json.dumps({"step": step, "split": "val", "loss": 2.5 / step, "top1": 0.08 * step}) + "\n")
  path = figures.training_curves(log, tmp_path / "curves.png")
  img = imageio.imread(path)
  assert img[..., :3].std() > MIN_STD
  with pytest.raises(ValueError, match="no records"):
    figures.training_curves([{"step": 1, "split": "test", "loss": 1.0}], tmp_path / "none.png")
  log.write_text('{"step": 1}\nnot json\n')
  with pytest.raises(ValueError, match=r"metrics.jsonl:2"):
    figures.read_metrics(log)
