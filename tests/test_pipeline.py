"""Grain video pipeline: stream/label alignment, crops and flips, determinism, Orbax resume, evaluation."""

import numpy as np
import orbax.checkpoint as ocp
import pytest

from attn_har.data import pipeline
from attn_har.data import store_write
from attn_har.data import sampling
from attn_har.data import store
from attn_har.data import transforms
from attn_har.data.clip_options import ClipOptions

N, F, H, W, L, CLASSES = 12, 8, 24, 32, 3, 3
U0, V0 = 140, 60  # flow codes: u = U0 + clip, v = V0 + 8 * source frame of the pair


def _label(k):
  return (7 * k) % CLASSES


def _clip_id(k):
  return f"C{_label(k)}/v ({k})!.avi"


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory):
  """Clips whose every value encodes (clip k, frame t): rgb = (20k, 16t, x ramp), flow codes (U0 + k, V0 + 8a)."""
  d = tmp_path_factory.mktemp("store")
  entries = []
  for k in range(N):
    rgb = np.zeros((F, H, W, 3), np.uint8)
    rgb[..., 0] = 20 * k
    rgb[..., 1] = (16 * np.arange(F))[:, None, None]
    rgb[..., 2] = np.linspace(0, 255, W).astype(np.uint8)
    pairs = np.stack([np.arange(F - 1), np.arange(1, F)], 1).astype(np.int16)
    flow = np.zeros((F - 1, H, W, 2), np.uint8)
    flow[..., 0] = U0 + k
    flow[..., 1] = (V0 + 8 * pairs[:, 0])[:, None, None]
    mask = np.broadcast_to(((k + np.arange(F)) % 2)[:, None, None], (F, H, W)).astype(np.uint8)
    entries.append(store_write.write_clip(d, _clip_id(k), {"rgb": rgb, "flow": flow, "pairs": pairs, "mask": mask},
                                    {"label": _label(k), "num_frames": F}))
  ids = [e["id"] for e in entries]
  store_write.write_manifest(d, {
      "version": 1, "dataset": "encoded", "classes": ["a", "b", "c"], "frames": F, "size": [H, W],
      "flow": {"method": "fake", "clip_px": 20.0, "pairs": "consecutive", "length": L, "bidirectional": False},
      "clips": entries, "splits": {"1": {"train": ids[:10], "test": ids[10:]}}, "failures": []})
  return d


def _code(px):
  return np.rint(px * 127.0 / 20.0) + 127.0


def _check_item(batch, b, ids, num_frames, flow_length=L):
  """Decodes item b of a numpy batch and checks every stream against its clip and start frames."""
  k = ids.index(_clip_id(int(round((batch["rgb"][b, 0, ..., 0].mean() + 1) * 127.5 / 20))))
  clip = int(ids[k].split("(")[1].split(")")[0])
  assert batch["index"][b] == k
  assert batch["label"][b] == _label(clip)
  flipped = None
  for t in range(num_frames):
    rgb = (batch["rgb"][b, t] + 1) * 127.5
    np.testing.assert_allclose(rgb[..., 0], 20 * clip, atol=1e-3)
    s = int(round(rgb[..., 1].mean() / 16))
    np.testing.assert_allclose(rgb[..., 1], 16 * s, atol=1e-3)
    assert 0 <= s <= F - flow_length - 1
    ramp = rgb[..., 2].mean(0)
    f = bool(ramp[0] > ramp[-1])
    assert np.all(np.diff(ramp) < 0) if f else np.all(np.diff(ramp) > 0)
    assert flipped in (None, f)  # one flip for every frame
    flipped = f
    if "flow" in batch:
      codes = _code(batch["flow"][b, t])
      want_u = 254 - (U0 + clip) if f else U0 + clip  # a flip negates u: code q -> 254 - q
      np.testing.assert_array_equal(codes[..., 0::2], want_u)
      for l in range(flow_length):  # consecutive stack: pair s + l -> s + l + 1
        np.testing.assert_array_equal(codes[..., 2 * l + 1], V0 + 8 * (s + l))
    if "mask" in batch:
      np.testing.assert_allclose(batch["mask"][b, t], (clip + s) % 2, atol=1e-6)
  return clip, flipped


def _take(it, n):
  return [next(it) for _ in range(n)]


def test_train_batches_align_streams_labels_crops_and_flips(store_dir):
  ids = store.ClipStore(store_dir).ids("1", "train")
  with pipeline.make_loader(store_dir, ClipOptions(num_frames=3, image_size=16, rescale_flow=False),
                            batch_size=4, seed=5, prefetch=2, to_device=False) as it:
    batches = _take(it, 10)  # 40 items: 4 epochs of 10 clips
  seen, flips = [], set()
  for batch in batches:
    assert batch["rgb"].shape == (4, 3, 16, 16, 3) and batch["rgb"].dtype == np.float32
    assert batch["flow"].shape == (4, 3, 16, 16, 2 * L) and batch["flow"].dtype == np.float32
    assert batch["mask"].shape == (4, 3, 16, 16) and batch["label"].dtype == np.int32
    for b in range(4):
      clip, flipped = _check_item(batch, b, ids, 3)
      seen.append(clip)
      flips.add(flipped)
  assert flips == {True, False}
  assert sorted(seen[:10]) == list(range(10)) and sorted(seen) == sorted(list(range(10)) * 4)
  assert seen[:10] != seen[10:20]  # reshuffled per epoch


@pytest.mark.slow
def test_workers_keep_alignment(store_dir):
  """Two Grain worker processes (spawned: ~5-15 s on the shared 2-core machine, mostly importing grain/jax)."""
  ids = store.ClipStore(store_dir).ids("1", "train")
  with pipeline.make_loader(store_dir, ClipOptions(num_frames=2, image_size=12, rescale_flow=False),
                            batch_size=4, seed=2, workers=2, prefetch=0, to_device=False) as it:
    batches = _take(it, 3)
  clips = [_check_item(batch, b, ids, 2)[0] for batch in batches for b in range(4)]
  assert len(set(clips)) >= 8  # two workers share the shuffled epoch, no clip repeated before the others


def test_same_seed_same_batches_and_orbax_resume(store_dir, tmp_path):
  clip = ClipOptions(num_frames=2, image_size=12)
  kwargs = dict(batch_size=3, seed=9, prefetch=2)
  with pipeline.make_loader(store_dir, clip, **kwargs) as it:
    full = [{k: np.asarray(v) for k, v in b.items()} for b in _take(it, 7)]
  with pipeline.make_loader(store_dir, clip, **dict(kwargs, seed=10)) as other:
    assert not np.array_equal(np.asarray(next(other)["rgb"]), full[0]["rgb"])
  mngr = ocp.CheckpointManager(tmp_path / "ckpt", item_names=("data",))
  with pipeline.make_loader(store_dir, clip, **kwargs) as it:
    first = _take(it, 3)  # the prefetch thread has read ahead by now
    mngr.save(3, args=ocp.args.Composite(data=pipeline.iterator_save_args(it)))
    mngr.wait_until_finished()
  with pipeline.make_loader(store_dir, clip, **kwargs) as fresh:
    mngr.restore(3, args=ocp.args.Composite(data=pipeline.iterator_restore_args(fresh)))
    rest = _take(fresh, 4)
  for got, want in zip(first + rest, full):
    for key in want:
      np.testing.assert_array_equal(np.asarray(got[key]), want[key])
  # standalone helpers, synchronous iterator
  with pipeline.make_loader(store_dir, clip, **dict(kwargs, prefetch=0, to_device=False)) as it:
    _take(it, 5)
    pipeline.save_iterator(tmp_path / "it", it)
  with pipeline.make_loader(store_dir, clip, **dict(kwargs, prefetch=0, to_device=False)) as it:
    pipeline.restore_iterator(tmp_path / "it", it)
    np.testing.assert_array_equal(next(it)["rgb"], full[5]["rgb"])


def test_eval_enumerates_every_view_once_with_padding(store_dir):
  ids = store.ClipStore(store_dir).ids("1", "train")
  with pipeline.make_eval_loader(store_dir, ClipOptions(num_frames=2, image_size=12, rescale_flow=False),
                                 subset="train", batch_size=7, views=2, crops=3, prefetch=0, to_device=False) as it:
    batches = list(it)
    assert len(batches) == len(it) == 9  # 10 clips x 6 views = 60 items -> 9 batches of 7, 3 padding rows
  valid = np.concatenate([b["valid"] for b in batches])
  assert valid.sum() == 60 and not valid[60:].any() and valid[:60].all()
  keys = [(int(b["index"][i]), int(b["view"][i])) for b in batches for i in range(7) if b["valid"][i]]
  assert sorted(keys) == [(k, v) for k in range(10) for v in range(6)]
  starts, ramps = {}, {}
  for batch in batches:
    for i in range(7):
      if batch["valid"][i]:
        clip, flipped = _check_item(batch, i, ids, 2)
        assert not flipped
        key = (int(batch["index"][i]), int(batch["view"][i]))
        starts[key] = tuple(np.rint((batch["rgb"][i, :, 0, 0, 1] + 1) * 127.5 / 16).astype(int))
        ramps[key] = float(batch["rgb"][i, 0, :, :, 2].mean())
  for k in range(10):
    # views 0-2 share temporal view 0, 3-5 temporal view 1; crops 0/1/2 are left/centre/right.
    assert starts[k, 0] == starts[k, 1] == starts[k, 2] != starts[k, 3] == starts[k, 4] == starts[k, 5]
    assert ramps[k, 0] < ramps[k, 1] < ramps[k, 2]
  with pipeline.make_eval_loader(store_dir, ClipOptions(num_frames=2, image_size=12), subset="test",
                                 batch_size=4, prefetch=0, to_device=False) as it:
    (batch,) = list(it)
  np.testing.assert_array_equal(batch["valid"], [1, 1, 0, 0])
  np.testing.assert_array_equal(batch["label"][:2], [_label(10), _label(11)])


def test_single_stream_options(store_dir):
  ids = store.ClipStore(store_dir).ids("1", "train")
  with pipeline.make_loader(store_dir, ClipOptions(num_frames=4, image_size=8), batch_size=2, streams=("rgb",),
                            seed=0, prefetch=0, to_device=False) as it:
    batch = next(it)
  assert set(batch) == {"rgb", "mask", "label", "index"}
  for b in range(2):
    _check_item(batch, b, ids, 4, flow_length=0)
  with pipeline.make_loader(store_dir, ClipOptions(num_frames=4, image_size=8), batch_size=2, streams=("flow",),
                            seed=0, with_mask=False, prefetch=0, to_device=False) as it:
    batch = next(it)
  assert set(batch) == {"flow", "label", "index"} and batch["flow"].shape == (2, 4, 8, 8, 2 * L)
  with pytest.raises(ValueError, match="streams"):
    pipeline.make_loader(store_dir, ClipOptions(num_frames=4), batch_size=2, streams=("depth",))


def test_flip_negates_u_only_and_mirrors():
  rng = np.random.default_rng(0)
  e = {"rgb": rng.random((2, 4, 5, 3), np.float32), "flow": rng.normal(size=(2, 4, 5, 6)).astype(np.float32),
       "mask": rng.random((2, 4, 5), np.float32)}
  out = transforms.flip(e)
  np.testing.assert_array_equal(out["rgb"], e["rgb"][:, :, ::-1])
  np.testing.assert_array_equal(out["mask"], e["mask"][:, :, ::-1])
  np.testing.assert_array_equal(out["flow"][..., 0::2], -e["flow"][:, :, ::-1, 0::2])
  np.testing.assert_array_equal(out["flow"][..., 1::2], e["flow"][:, :, ::-1, 1::2])
  assert not np.shares_memory(out["flow"], e["flow"])


def test_resize_rescales_flow_vectors():
  flow = np.tile(np.asarray([2.0, 1.0, -4.0, 3.0], np.float32), (1, 24, 32, 1))
  out = transforms.Resize((12, 8)).map({"flow": flow})
  np.testing.assert_allclose(out["flow"][0], np.broadcast_to([0.5, 0.5, -1.0, 1.5], (12, 8, 4)), rtol=1e-6)
  kept = transforms.Resize((12, 8), rescale_flow=False).map({"flow": flow})
  np.testing.assert_allclose(kept["flow"][0], np.broadcast_to([2.0, 1.0, -4.0, 3.0], (12, 8, 4)), rtol=1e-6)


def test_view_indices():
  for n, t in ((20, 5), (3, 7), (9, 9)):
    np.testing.assert_array_equal(transforms.view_indices(n, t), sampling.segment_centres(n, t))
  a, b = transforms.view_indices(40, 4, 0, 2), transforms.view_indices(40, 4, 1, 2)
  np.testing.assert_array_equal(a, [2, 12, 22, 32])
  np.testing.assert_array_equal(b, [7, 17, 27, 37])


def test_too_long_flow_stack_names_the_clip(store_dir):
  with pipeline.make_loader(store_dir, ClipOptions(num_frames=2, flow_length=F, image_size=8), batch_size=2,
                            prefetch=0, to_device=False) as it:
    with pytest.raises(ValueError, match="too few for flow stacks"):
      next(it)


def test_analysis_clip_from_file_equals_the_evaluation_pipeline(store_dir):
  """`analysis.clips.clip_from_file` runs the same op list (`pipeline.operations`) as the evaluation loader."""
  import ml_collections
  from attn_har.analysis import clips
  config = ml_collections.ConfigDict(dict(
      model=dict(stream="two_stream"),
      data=dict(num_frames=3, flow_length=2, stacking="consecutive", image_size=16, crop_scale=(0.5, 1.0),
                flip_prob=0.5)))
  s = store.ClipStore(store_dir)
  clip_id = s.ids("1", "test")[0]
  got = clips.clip_from_file(store_dir / s.entry(clip_id)["file"], config, label=s.entry(clip_id)["label"])
  it = pipeline.make_eval_loader(store_dir, ClipOptions.from_config(config.data), split="1", subset="test",
                                 batch_size=1, streams=("rgb", "flow"), prefetch=0, to_device=False)
  want = next(iter(it))
  assert int(want["index"][0]) == 0
  for key in ("rgb", "flow", "mask"):
    np.testing.assert_array_equal(got[key], want[key][0])
  assert got["rgb"].shape == (3, 16, 16, 3) and got["flow"].shape == (3, 16, 16, 4)
