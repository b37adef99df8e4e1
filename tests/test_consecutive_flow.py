"""Flow over consecutive video frames at the sampled positions (pairing 'video_frames'), the flow stream's mask, and
the refusal of stores made with another (or no recorded) pairing."""

import json

import numpy as np
import pytest

from attn_har.data import datasets, decode, flow, pipeline, quantize, stacking, store, store_build, store_write
from attn_har.data import synthetic, transforms
from attn_har.data.clip_options import ClipOptions

CLIP = "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"   # the first UCF101 clip in id order; 164 frames
T, L, SIZE = 5, 3, (48, 64)


@pytest.fixture(scope="module")
def ucf_store(realdata, tmp_path_factory):
  """A 'video_frames' store of the real UCF101 clip CLIP: T = 5 frames, L = 3 DIS pairs each, 48x64."""
  source = datasets.UCF101(str(realdata / "ucf101"))
  assert source.clips[0].id == CLIP
  settings = store_build.store_settings(source, flow_method="dis", length=L, frames=T, size=SIZE)
  out = tmp_path_factory.mktemp("ucf_video_frames")
  result = store_build.build_store(source, settings, out, workers=0, progress=False, limit=1)
  assert (result.new, result.failures) == (1, [])
  return out, source.clips[0].path


def test_real_clip_pairs_join_consecutive_video_frames_with_the_methods_flow(ucf_store):
  out, path = ucf_store
  clip = store.ClipStore(out).read(CLIP)
  video = decode.read_frames(path, SIZE)
  n = len(video)
  assert n == 164
  starts = (np.arange(T) * (n - L)) // T                           # clamped: n_k + L <= N - 1
  np.testing.assert_array_equal(clip["frame_indices"], starts)
  np.testing.assert_array_equal(clip["rgb"], video[starts])
  pairs = clip["pairs"]
  assert (pairs[:, 1] - pairs[:, 0] == 1).all() and pairs.max() < n   # every pair joins i -> i + 1
  assert sorted(map(tuple, pairs.tolist())) == sorted({(s + l - 1, s + l) for s in starts for l in range(1, L + 1)})
  solver = flow.make_solver("dis")
  grey = flow.to_grey(video)
  expected = np.stack([np.clip(solver(grey[a], grey[b]), -20.0, 20.0) for a, b in pairs.tolist()])
  assert np.abs(expected).max() > 3 * quantize.step(20.0)          # real motion, above the quantisation step
  half_step = quantize.step(20.0) / 2 + 1e-5
  np.testing.assert_array_less(np.abs(quantize.dequantize(clip["flow"]) - expected), half_step)
  # The reader builds stack k from sampled frame k's own L pairs, in channel order [u1, v1, ..., uL, vL].
  element = dict(clip, frames=T, id=CLIP)
  got = transforms.SampleClip(T, L, train=False).random_map(element, np.random.default_rng(0))
  np.testing.assert_array_equal(got["starts"], np.arange(T))
  for t, s in enumerate(starts):
    for l in range(1, L + 1):
      row = pairs.tolist().index([s + l - 1, s + l])
      np.testing.assert_array_equal(got["flow"][t, ..., 2 * l - 2:2 * l], clip["flow"][row])


def test_old_store_is_refused_with_the_rebuild_command(tmp_path):
  """A store written before the pairing was recorded (int16 row pairs, no frame_indices) holds the thesis's spacing."""
  rng = np.random.default_rng(0)
  arrays = {"rgb": rng.integers(0, 256, (6, 8, 8, 3), dtype=np.uint8),
            "flow": rng.integers(0, 256, (5, 8, 8, 2), dtype=np.uint8),
            "pairs": np.stack([np.arange(5), np.arange(1, 6)], 1).astype(np.int16)}
  entry = store_write.write_clip(tmp_path, "A/x.avi", arrays, {"label": 0, "num_frames": 140, "preprocess": {
      "flow": "dis", "clip_px": 20.0, "stacking": "consecutive", "length": 2, "bidirectional": False, "frames": 6,
      "size": [8, 8]}})
  store_write.write_manifest(tmp_path, {
      "version": 1, "dataset": "ucf101", "classes": ["A"], "frames": 6, "size": [8, 8],
      "flow": {"method": "dis", "clip_px": 20.0, "pairs": "consecutive", "length": 2, "bidirectional": False},
      "clips": [entry], "splits": {"1": {"train": ["A/x.avi"]}}, "failures": [],
      "preprocess_args": ["--dataset", "ucf101", "--root", "/data/ucf101", "--flow", "dis", "--length", "2",
                          "--frames", "6"]})
  video_frames = ClipOptions(num_frames=2, image_size=8, pairing="video_frames")
  with pytest.raises(ValueError, match="pairing 'stored_frames'") as err:
    pipeline.make_loader(tmp_path, video_frames, batch_size=1, prefetch=0, to_device=False)
  assert ("rebuild the store with: python -m attn_har.data.preprocess --dataset ucf101 --root /data/ucf101 --flow "
          "dis --length 2 --frames 6 --pairing video_frames --out <new store dir>") in str(err.value)
  # Read as what it is, it still loads: stacks over stored rows s..s+L.
  with pipeline.make_loader(tmp_path, ClipOptions(num_frames=2, image_size=8, pairing="stored_frames"), batch_size=1,
                            prefetch=0, to_device=False) as it:
    assert next(it)["flow"].shape == (1, 2, 8, 8, 4)
  # Resuming it with the new default pairing is refused as well.
  source = datasets.Synthetic(num_classes=1, clips_per_class=1, size=16, num_frames=5)
  settings = store_build.store_settings(source, flow_method="dis", length=2)
  settings.update(frames=6, size=[8, 8])
  with pytest.raises(ValueError, match="pairing='stored_frames' not 'video_frames'"):
    store_build.finished(str(tmp_path), [datasets.ClipSpec("A/x.avi", 0, "/data/x.avi")], settings)


def test_video_frames_store_refuses_longer_stacks_than_it_keeps(tmp_path):
  manifest = {"flow": {"method": "dis", "clip_px": 20.0, "pairing": "video_frames", "pairs": "consecutive",
                       "length": 3, "bidirectional": False}, "dataset": "hmdb51", "frames": 25, "size": [8, 8]}
  assert ClipOptions(num_frames=2, flow_length=3).for_store(manifest, ("flow",)).pairing == "video_frames"
  with pytest.raises(ValueError, match="--length 5"):
    ClipOptions(num_frames=2, flow_length=5).for_store(manifest, ("flow",))


def test_store_frames_clamps_and_shares_overlapping_pairs():
  starts = stacking.store_frames(186, 25, 10)
  assert starts[0] == 0 and starts[-1] + 10 <= 185 and len(starts) == 25
  pairs = stacking.required_video_pairs(starts, 186, 10)
  assert len(pairs) == len({(s + l - 1, s + l) for s in starts for l in range(1, 11)}) < 25 * 10
  rows, table = stacking.stack_table(starts, pairs, 10)
  np.testing.assert_array_equal(rows, np.arange(25))
  np.testing.assert_array_equal(pairs[table][:, :, 0], starts[:, None] + np.arange(10))
  # The thesis's spacing: pairs between stored frames, 7-8 video frames apart.
  thesis = stacking.store_frames(186, 25, 10, "stored_frames")
  gaps = np.diff(stacking.required_video_pairs(thesis, 186, 10, pairing="stored_frames"), axis=1)
  assert set(gaps.ravel().tolist()) == {7, 8}
  with pytest.raises(ValueError, match="at least 11 frames"):
    stacking.store_frames(10, 25, 10)


def _moving_clip(bidirectional: bool = False) -> dict:
  """An element of a synthetic 'move_right' clip (every frame stored), with zero flow."""
  clip = synthetic.SyntheticActions(num_classes=2, clips_per_class=1, size=32, num_frames=8, seed=3).clip(1)
  assert clip["name"].startswith("move_right")
  frames = np.arange(8)
  pairs = stacking.required_video_pairs(frames, 8, L, bidirectional=bidirectional)
  return {"rgb": clip["rgb"], "mask": clip["mask"], "frame_indices": frames, "pairs": pairs,
          "flow": np.zeros((len(pairs), 32, 32, 2), np.uint8), "frames": 8, "id": clip["name"], "label": 1}


@pytest.mark.parametrize("bidirectional", [False, True])
def test_flow_mask_is_the_union_over_the_frames_of_the_stack(bidirectional):
  element = _moving_clip(bidirectional)
  mask = element["mask"].astype(bool)
  out = transforms.SampleClip(5, L, bidirectional=bidirectional, train=False).random_map(
      element, np.random.default_rng(0))
  np.testing.assert_array_equal(out["starts"], np.arange(5))      # stacks start at frames 0..N-L-1
  last = L + 1 if bidirectional else L                             # backward fields lie on frames s+1..s+L
  for t, s in enumerate(out["starts"]):
    union = mask[s:s + last].any(0)
    np.testing.assert_array_equal(out["flow_mask"][t].astype(bool), union)
    np.testing.assert_array_equal(out["mask"][t].astype(bool), mask[s])
    assert union.sum() > mask[s].sum() + 10                        # the actor moved across the stack
    if not bidirectional:
      assert (mask[s + L] & ~union).any()                          # frame s+L is a target only


def test_flow_mask_follows_crops_resizes_and_flips():
  element = _moving_clip()
  rng = np.random.default_rng(1)
  x = transforms.SampleClip(3, L, train=True).random_map(element, rng)
  x["mask"] = x["flow_mask"].copy()                               # both must see the same geometry
  for op in (transforms.RandomCrop((0.3, 0.6)), transforms.ToFloat(), transforms.Resize((20, 20)),
             transforms.RandomFlip(1.0)):
    x = op.random_map(x, rng) if hasattr(op, "random_map") else op.map(x)
  assert x["flow_mask"].shape == (3, 20, 20) and x["flow_mask"].dtype == np.float32 and x["flipped"] == 1
  np.testing.assert_array_equal(x["flow_mask"], x["mask"])


def test_synthetic_store_loader_gives_flow_mask(tmp_path):
  source = datasets.Synthetic(num_classes=2, clips_per_class=2, size=32, num_frames=8, seed=3)
  settings = store_build.store_settings(source, flow_method="farneback_small", length=L)
  store_build.build_store(source, settings, tmp_path, workers=0, progress=False)
  manifest = json.loads((tmp_path / store.MANIFEST).read_text())
  assert manifest["flow"]["pairing"] == "video_frames"
  with pipeline.make_loader(tmp_path, ClipOptions(num_frames=2, image_size=32, flip_prob=0.0, scale=(1.0, 1.0)),
                            subset="train", batch_size=2, prefetch=0, to_device=False) as it:
    batch = next(it)
  assert batch["flow_mask"].shape == batch["mask"].shape == (2, 2, 32, 32)
  assert (batch["flow_mask"] >= batch["mask"] - 1e-6).all() and batch["flow_mask"].sum() > batch["mask"].sum()


def test_real_data_configs_default_to_video_frames():
  from attn_har.config.loader import load_config  # pylint: disable=import-outside-toplevel
  from attn_har.data import check  # pylint: disable=import-outside-toplevel
  c = load_config("configs/ucf101_cbam.py").data
  assert c.pairing == "video_frames" and ClipOptions.from_config(c).pairing == "video_frames"
  assert "-video_frames-" in datasets.UCF101.store_tag(c)
  c.pairing = "thesis"
  with pytest.raises((KeyError, ValueError), match="data.pairing"):
    check.check(c, "two_stream")
