"""The test protocol: 10 crops per frame (4 corners + centre, each also flipped with u negated, v kept), the frames
and crops of a video averaged as softmax scores, mean flow subtraction per field, and the config that selects it."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attn_har.config.loader import load_config
from attn_har.data import crops, datasets, flow_mean, pipeline, prepare, transforms
from attn_har.data.clip_options import ClipOptions
from attn_har.data.store_build import build_store, store_settings
from attn_har.models.fusion import AverageFusion
from attn_har.models.temporal import FrameAverage
from attn_har.models.two_stream import TwoStream
from attn_har.train import evaluate, steps
from attn_har.train.check import check_config

T, H, W, L2 = 2, 12, 16, 4


def _element(view):
  """A sampled clip (uint8, as after SampleClip): rgb[t, y, x] = (t, y, x), flow codes u = 128 + x + l, v = 100 + y."""
  y, x = np.mgrid[:H, :W]
  rgb = np.stack([np.full((H, W), 50 * t) for t in range(T)])[..., None] + np.stack([np.zeros_like(y), 5 * y, 8 * x],
                                                                                     -1)[None]
  flow = np.zeros((T, H, W, L2), np.uint8)
  for l in range(L2 // 2):
    flow[..., 2 * l] = 128 + x + l
    flow[..., 2 * l + 1] = 100 + y
  return {"rgb": rgb.astype(np.uint8), "flow": flow, "label": 1, "view": np.int32(view)}


def _ten_crop_view(view, fraction=0.75, mean_subtraction=False):
  crop, flip = crops.eval_crop_ops(10, fraction)
  ops = [crop, transforms.ToFloat(20.0), flip] + ([flow_mean.SubtractFlowMean()] if mean_subtraction else [])
  e = _element(view)
  for op in ops:
    e = op.map(e)
  return e


def test_ten_crops_are_corners_and_centre_then_their_mirrors_with_u_negated():
  side = 9   # round(0.75 * 12)
  boxes = {0: (0, 0), 1: (0, W - side), 2: (H - side, 0), 3: (H - side, W - side),
           4: ((H - side) // 2, (W - side) // 2)}
  ref = transforms.ToFloat(20.0).map(_element(0))
  for view in range(10):
    e = _ten_crop_view(view)
    top, left = boxes[view % 5]
    want_rgb = ref["rgb"][:, top:top + side, left:left + side]
    want_flow = ref["flow"][:, top:top + side, left:left + side]
    assert e["rgb"].shape == (T, side, side, 3) and e["flipped"] == int(view >= 5)
    if view < 5:
      np.testing.assert_array_equal(e["rgb"], want_rgb)
      np.testing.assert_array_equal(e["flow"], want_flow)
    else:   # the mirror of view - 5: u changes sign, v is kept
      np.testing.assert_array_equal(e["rgb"], want_rgb[:, :, ::-1])
      np.testing.assert_array_equal(e["flow"][..., 0::2], -want_flow[:, :, ::-1, 0::2])
      np.testing.assert_array_equal(e["flow"][..., 1::2], want_flow[:, :, ::-1, 1::2])
      assert np.all(want_flow[..., 0::2] > 0) and np.all(e["flow"][..., 0::2] < 0)
  # The 10 views are distinct, so no crop is repeated.
  assert len({_ten_crop_view(v)["rgb"].tobytes() for v in range(10)}) == 10
  with pytest.raises(ValueError, match="crops must be one of"):
    crops.eval_crop_ops(5)


def test_mean_flow_subtraction_zeroes_each_field_mean_and_keeps_its_shape():
  e = _ten_crop_view(3, mean_subtraction=True)
  raw = _ten_crop_view(3)
  np.testing.assert_allclose(e["flow"].mean(axis=(1, 2)), 0.0, atol=1e-5)     # every (frame, u_l / v_l) field
  np.testing.assert_allclose(e["flow"], raw["flow"] - raw["flow"].mean(axis=(1, 2), keepdims=True), atol=1e-5)
  np.testing.assert_array_equal(e["rgb"], raw["rgb"])
  # A uniform translation (camera pan) disappears entirely; field-to-field differences stay.
  pan = np.full((1, 4, 4, 2), 3.0, np.float32)
  pan[..., 1] = -2.0
  np.testing.assert_allclose(flow_mean.subtract_field_means(pan), 0.0, atol=1e-7)
  with pytest.raises(ValueError, match="T, H, W, 2L"):
    flow_mean.subtract_field_means(pan[0])


def test_pipeline_order_places_the_flips_and_the_mean_subtraction_after_the_resize():
  clip = ClipOptions(num_frames=25, flow_length=2, stacking="consecutive", image_size=8, clip_px=20.0,
                     flow_mean_subtraction=True)
  names = [type(op).__name__ for op in pipeline.operations(clip, train=False, crops=10)]
  assert names == ["SampleClip", "TenCrop", "ToFloat", "Resize", "FlipMarked", "SubtractFlowMean"]
  names = [type(op).__name__ for op in pipeline.operations(clip.replace(flow_mean_subtraction=False), train=True)]
  assert names == ["SampleClip", "RandomCrop", "ToFloat", "Resize", "RandomFlip"]


def test_config_protocols_real_data_25_frames_10_crops_validation_cheap_synthetic_unchanged():
  c = load_config("configs/ucf101_cbam.py")
  assert prepare.eval_protocol(c, "test") == {"frames": 25, "views": 1, "crops": 10, "crop_fraction": 0.875}
  assert prepare.eval_protocol(c, "train") == prepare.eval_protocol(c, "test")   # what the SVM is fitted on
  assert prepare.eval_protocol(c, "val") == {"frames": c.data.num_frames, "views": 1, "crops": 1,
                                              "crop_fraction": 0.875}
  assert c.data.flow_mean_subtraction and load_config("configs/hmdb51_baseline.py").data.flow_mean_subtraction
  smoke = load_config("configs/ucf101_cbam.py:smoke,crops=3")
  assert prepare.eval_protocol(smoke, "test")["frames"] == 3 and smoke.eval.crops == 3
  s = load_config("configs/synthetic_cbam.py")
  assert prepare.eval_protocol(s, "test") == {"frames": 2, "views": 5, "crops": 1, "crop_fraction": 0.875}
  assert prepare.eval_protocol(s, "val") == prepare.eval_protocol(s, "test") and not s.data.flow_mean_subtraction
  assert c.model.frame_consensus == "softmax" and s.model.frame_consensus == "logits"


class _Frame(nn.Module):
  """A frame classifier over pooled pixels: outputs(x [B, H, W, C]) -> {'logits': [B, 3], 'features': [B, C]}."""

  @nn.compact
  def outputs(self, x, train=False):
    del train
    f = jnp.concatenate([x.mean((1, 2)), x[:, :2, :2].mean((1, 2))], -1)
    return {"logits": nn.Dense(3, kernel_init=nn.initializers.normal(3.0))(f), "features": f}


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory):
  source = datasets.Synthetic(num_classes=3, clips_per_class=2, size=32, num_frames=8, seed=0)
  settings = store_settings(source, flow_method="farneback_small", length=2)
  out = tmp_path_factory.mktemp("protocol") / "store"
  result = build_store(source, settings, out, workers=0, progress=False)
  assert result.status() == 0
  return out


def test_video_scores_average_softmax_over_frames_and_ten_crops(tiny_store):
  clip = ClipOptions(num_frames=3, flow_length=2, image_size=16)
  it = pipeline.make_eval_loader(tiny_store, clip, subset="train", batch_size=4, views=1, crops=10,
                                 crop_fraction=0.75, prefetch=0, to_device=False)
  batches = list(it)
  model = TwoStream(rgb=FrameAverage(_Frame(), input_key="rgb"), flow=FrameAverage(_Frame(), input_key="flow"),
                    fusion=AverageFusion())
  variables = model.init(jax.random.key(0), {k: v[:1] for k, v in batches[0].items() if k in ("rgb", "flow")}, False)
  scores = evaluate.video_scores(evaluate.collect(jax.jit(steps.make_eval_step(model)), variables, batches))
  # Expected: every (crop, frame) image of a video through its stream's frame model, softmax, then the mean.
  frame = lambda s, x: _Frame().apply({"params": variables["params"][s]["frame"]}, x, method="outputs")["logits"]
  rows = {}
  for b in batches:
    for i in np.flatnonzero(b["valid"]):
      rows.setdefault(int(b["index"][i]), []).append({s: b[s][i] for s in ("rgb", "flow")} | {"view": b["view"][i]})
  assert all(sorted(int(r["view"]) for r in v) == list(range(10)) for v in rows.values())   # 10 views per video
  assert all(r["rgb"].shape[0] == 3 for v in rows.values() for r in v)                       # of 3 frames each
  for n, video in enumerate(sorted(rows)):
    for s in ("rgb", "flow"):
      x = np.concatenate([r[s] for r in rows[video]])                                        # [10 * 3, S, S, C]
      want = jax.nn.softmax(frame(s, x)).mean(0)
      np.testing.assert_allclose(scores["streams"][s][n], want, atol=1e-5)
    fused = (scores["streams"]["rgb"][n] + scores["streams"]["flow"][n]) / 2
    np.testing.assert_allclose(scores["fused"][n], fused, atol=1e-5)
  # The views differ (crops and flips are real), so the average is over distinct scores.
  logits = [frame("flow", r["flow"]) for r in rows[sorted(rows)[0]]]
  assert len({np.asarray(l).round(4).tobytes() for l in logits}) == 10


@pytest.mark.parametrize("arg, message", [("crops=5", "eval.crops must be one of"),
                                          ("eval.val_crops=2", "eval.val_crops must be one of"),
                                          ("test_frames=-1", "eval.frames must be >= 0"),
                                          ("eval.crop_fraction=1.5", "eval.crop_fraction")])
def test_bad_protocol_values_name_the_key(arg, message):
  with pytest.raises(ValueError, match=message):
    check_config(load_config(f"configs/ucf101_cbam.py:{arg}"))
  with pytest.raises(KeyError, match="frame_consensus"):
    check_config(load_config("configs/ucf101_cbam.py:model.frame_consensus=max"))
