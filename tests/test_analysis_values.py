"""Values behind the attention-quality table: stage picks, per-stream variables, frame-to-mask pairing.

`maps.by_stage` must name exactly the right map per stage, `maps.stream_views` must hand each stream its own
sub-variables of a two-stream model, and every per-frame score (pointing game, energy inside, deletion /
insertion) must pair frame t's map with frame t's mask and input, through `quality`, `quality_table.score_stream`
and `quality_table.evaluate_run` (with a stub run, clips and explainer: no training, no XLA-heavy model).
"""

import importlib
import types

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attn_har.analysis import maps, quality, quality_table
from attn_har.inspect.sown_maps import SOW_NAME
from attn_har.models.fusion import LearnedFusion
from attn_har.models.image import ImageModel
from attn_har.models.temporal import FrameAverage
from attn_har.models.two_stream import TwoStream

# ----------------------------------------------------------------------------------------------- maps.by_stage


def _indexed_maps(n, shape=(2, 3, 3)):
  """n maps in call order, map i filled with the value i."""
  return {f"block_{i}/attention": np.full(shape, float(i), np.float32) for i in range(n)}


def _which(staged):
  """{stage: index of the map it holds} (each map is constant, filled with its index)."""
  out = {}
  for stage, m in staged.items():
    assert np.all(m == m.flat[0]), stage
    out[stage] = int(m.flat[0])
  return out


@pytest.mark.parametrize("n, want", [
    (1, {"late": 0}),
    (2, {"early": 0, "late": 1}),
    (3, {"early": 0, "medium": 1, "late": 2}),
    (4, {"early": 0, "medium": 2, "late": 3}),   # the middle of an even count is len // 2
    (5, {"early": 0, "medium": 2, "late": 4}),
])
def test_by_stage_picks_first_middle_last_in_call_order(n, want):
  staged = maps.by_stage(_indexed_maps(n))
  assert _which(staged) == want
  assert list(staged) == [s for s in maps.STAGES if s in want]  # stage order, early to late


def test_by_stage_drops_1x1_maps_before_picking():
  spatial = _indexed_maps(5)
  mixed = {}
  for i, (k, m) in enumerate(spatial.items()):
    mixed[k] = m
    mixed[f"pooled_{i}"] = np.full((2, 1, 1), 100.0 + i, np.float32)  # no location: must never be picked
  assert _which(maps.by_stage(mixed)) == {"early": 0, "medium": 2, "late": 4}
  # two spatial maps among 1 x 1 ones: early and late, not the 1 x 1 neighbours
  two = {"a": np.full((2, 1, 1), 100.0), "b": np.full((2, 4, 4), 0.0), "c": np.full((2, 1, 1), 101.0),
         "d": np.full((2, 1, 2), 1.0)}
  assert _which(maps.by_stage(two)) == {"early": 0, "late": 1}
  assert maps.by_stage({"a": np.zeros((2, 1, 1)), "b": np.ones((2, 1, 1))}) == {}


# ------------------------------------------------------------------------------------------- maps.stream_views


class _TinyFrame(nn.Module):
  """A per-frame classifier with params and BatchNorm statistics: [N, H, W, C] -> [N, 3]."""

  @nn.compact
  def outputs(self, x, train):
    h = nn.BatchNorm(use_running_average=not train, name="bn")(x).mean(axis=(1, 2))
    return {"logits": nn.Dense(3, name="head")(h), "features": h}

  def __call__(self, x, train):
    return self.outputs(x, train)["logits"]


def _two_stream():
  """A real `TwoStream` (learned fusion, so it has params of its own) with distinct values in every leaf."""
  model = TwoStream(rgb=FrameAverage(_TinyFrame(), input_key="rgb"), flow=FrameAverage(_TinyFrame(), input_key="flow"),
                    fusion=LearnedFusion(num_classes=3))
  inputs = {"rgb": jnp.zeros((1, 1, 4, 4, 3)), "flow": jnp.zeros((1, 1, 4, 4, 4))}  # flow: 2L = 4 channels
  shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), inputs, False))
  rng = np.random.default_rng(0)
  fill = lambda path, s: np.asarray(
      rng.uniform(0.5, 2.0, s.shape) if path[-1].key == "var" else rng.normal(0.0, 1.0, s.shape), np.float32)
  return model, jax.tree_util.tree_map_with_path(fill, shapes)


def _assert_same_tree(got, want):
  assert jax.tree_util.tree_structure(got) == jax.tree_util.tree_structure(want)
  for g, w in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
    np.testing.assert_array_equal(np.asarray(g), np.asarray(w))


def test_stream_views_give_each_stream_its_own_frame_variables():
  model, variables = _two_stream()
  assert set(variables) == {"params", "batch_stats"} and "fusion" in variables["params"]
  views = maps.stream_views(model, variables)
  assert list(views) == ["rgb", "flow"]
  for s, view in views.items():
    assert view.name == s
    assert view.model is getattr(model, s).frame
    assert set(view.variables) == {"params", "batch_stats"}
    for col in ("params", "batch_stats"):
      _assert_same_tree(view.variables[col], variables[col][s]["frame"])
  # the two streams really differ (else a swap or shared sub-variables could go unnoticed)
  rgb_k, flow_k = (views[s].variables["params"]["head"]["kernel"] for s in ("rgb", "flow"))
  assert rgb_k.shape != flow_k.shape or not np.allclose(rgb_k, flow_k)


def test_stream_view_models_compute_the_streams_per_frame_logits():
  model, variables = _two_stream()
  rng = np.random.default_rng(1)
  frames = {"rgb": rng.normal(size=(2, 4, 4, 3)).astype(np.float32),
            "flow": rng.normal(size=(2, 4, 4, 4)).astype(np.float32)}
  # a clip of T = 1 frame: the stream's frame-averaged scores are the frame model's (log-softmax) scores
  out = jax.jit(lambda v, x: model.apply(v, x, False))(variables, {s: f[:, None] for s, f in frames.items()})
  for s, view in maps.stream_views(model, variables).items():
    got = jax.jit(lambda v, x, m=view.model: m.apply(v, x, False))(view.variables, frames[s])
    np.testing.assert_allclose(jax.nn.log_softmax(got), out["streams"][s], rtol=1e-5, atol=1e-6, err_msg=s)


def test_stream_views_of_single_stream_and_image_models():
  model, variables = _two_stream()
  rgb = model.rgb
  sub = {col: {"frame": variables[col]["rgb"]["frame"]} for col in variables}
  views = maps.stream_views(rgb, sub)
  assert list(views) == ["rgb"] and views["rgb"].model is rgb.frame
  _assert_same_tree(views["rgb"].variables, {col: variables[col]["rgb"]["frame"] for col in variables})
  flow = model.flow   # a single-stream flow model's view reads the 'flow' input
  sub = {col: {"frame": variables[col]["flow"]["frame"]} for col in variables}
  assert list(maps.stream_views(flow, sub)) == ["flow"]
  image = ImageModel(frame=_TinyFrame())
  frame_vars = {col: variables[col]["flow"]["frame"] for col in variables}
  views = maps.stream_views(image, {col: {"frame": v} for col, v in frame_vars.items()})
  assert list(views) == ["image"] and views["image"].model is image.frame
  _assert_same_tree(views["image"].variables, frame_vars)


# ------------------------------------------------------------------------------- quality: per-frame pairing

H = W = 8


def _block(r0, r1, c0, c1):
  m = np.zeros((H, W), bool)
  m[r0:r1, c0:c1] = True
  return m


def test_pointing_and_energy_use_each_frames_own_mask():
  # frame 0's actor holds the peak, frame 1's does not; frame 1's map is weaker (a global max would miss it)
  masks = np.stack([_block(1, 4, 1, 4), _block(5, 8, 4, 8)])     # 9 and 12 pixels
  s = np.full((2, H, W), 0.1)
  s[:, 2, 2] = 1.0
  s[1] *= 0.5
  np.testing.assert_array_equal(quality.pointing_game(s, masks), [1.0, 0.0])
  np.testing.assert_allclose(quality.energy_inside(s, masks), [1.8 / 7.3, 1.2 / 7.3])
  np.testing.assert_array_equal(quality.pointing_game(s, masks[::-1]), [0.0, 1.0])  # the pairing matters
  # ties: frame 0 has its two maxima in its mask and outside, frame 1 both in its mask
  t = np.zeros((2, H, W))
  t[0, 2, 2] = t[0, 6, 6] = 1.0
  t[1, 6, 5] = t[1, 7, 7] = 3.0
  np.testing.assert_array_equal(quality.pointing_game(t, masks), [0.5, 1.0])
  # tolerance dilates each frame's own mask: the peak (2, 2) is 2 px from frame 0's actor, 3 px from frame 1's
  near = np.stack([_block(4, 6, 2, 3), _block(2, 3, 5, 6)])
  u = np.zeros((2, H, W))
  u[:, 2, 2] = 1.0
  np.testing.assert_array_equal(quality.pointing_game(u, near, tolerance=2), [1.0, 0.0])
  np.testing.assert_array_equal(quality.dilate(near, 2), np.stack([quality.dilate(m, 2) for m in near]))


def test_perturbation_curve_pairs_each_frames_saliency_with_that_frame():
  x = np.ones((2, 4, 4, 1), np.float32)
  sal = np.stack([np.arange(16.0).reshape(4, 4), 100.0 + np.arange(16.0).reshape(4, 4)])  # frame 1 first
  score = lambda b: 2.0 * b[:, 1].sum(axis=(1, 2, 3)) + b[:, 0].sum(axis=(1, 2, 3))
  f, d = quality.perturbation_curve(score, x, sal, "deletion", steps=4, baseline="zeros")
  np.testing.assert_array_equal(f, [0.0, 0.25, 0.5, 0.75, 1.0])
  np.testing.assert_array_equal(d, [48.0, 32.0, 16.0, 8.0, 0.0])   # frame 1's pixels go first (worth 2 each)
  _, i = quality.perturbation_curve(score, x, sal, "insertion", steps=4, baseline="zeros")
  np.testing.assert_array_equal(i, [0.0, 16.0, 32.0, 40.0, 48.0])
  assert quality.deletion_auc(score, x, sal, steps=4, baseline="zeros") == pytest.approx(20.0)


# ------------------------------------------------------------------------ quality_table: stub explainer


class _StubExplainer:
  """Stands in for `maps.Explainer`: the attention map of a frame is its channel 0; no Grad-CAM layers.

  Class probabilities are (c + 1) x the sum of channel 0, so a deletion / insertion value shows which frame and
  which label it was computed with.
  """

  def __init__(self, view, **kwargs):
    self.view = view

  def __call__(self, x, class_idx=None):
    x = np.asarray(x, np.float32)
    return maps.Explanation({"block/attention": x[..., 0]}, {}, {}, np.zeros((x.shape[0], 3), np.float32),
                            np.asarray(class_idx, np.int32))

  def probabilities(self, b):
    total = np.asarray(b, np.float64)[..., 0].sum(axis=(1, 2))
    return np.stack([(c + 1) * total for c in range(3)], axis=-1)


def _spot_frames(spots, channels=3):
  """Frames [N, H, W, channels]: zeros with a 1 at spots[n] in channel 0."""
  x = np.zeros((len(spots), H, W, channels), np.float32)
  for n, (r, c) in enumerate(spots):
    x[n, r, c, 0] = 1.0
  return x


def test_score_stream_scores_every_method_against_each_frames_mask(monkeypatch):
  # zero baselines keep the curves hand-computable (the flow stream's default is the blurred flow)
  monkeypatch.setitem(quality_table.PERTURB_BASELINES, "flow", ("zeros", "zeros"))
  # frame 0: actor A with the spot; frame 1: actor B, spot still in A's region; frame 2: no actor (NaN)
  a, b = _block(1, 4, 1, 5), _block(4, 8, 4, 8)                  # 12 and 16 pixels
  masks = np.stack([a, b, np.zeros((H, W), bool)]).astype(np.float32)
  x = _spot_frames([(2, 2), (2, 3), (5, 5)])
  view = maps.StreamView("flow", None, None)
  # one pixel per step: the curves see exactly when the frame's own spot goes (a map from another frame would
  # delete a pixel without signal first)
  out = quality_table.score_stream(_StubExplainer(view), x, masks, np.array([0, 1, 2]), steps=H * W,
                                   perturb=np.array([False, True, False]), road_fractions=())
  assert set(out) == {"attention/late", "attention/combined", "center_bias", "uniform", "random"}
  nan = float("nan")
  for method in ("attention/late", "attention/combined"):
    np.testing.assert_array_equal(out[method]["pointing"], [1.0, 0.0, nan], err_msg=method)
    np.testing.assert_array_equal(out[method]["energy"], [1.0, 0.0, nan], err_msg=method)
    # frame 1 only, class 1 (score 2): the spot is deleted / revealed at the first of 64 steps
    assert out[method]["deletion"] == pytest.approx([2 / 128]), method
    assert out[method]["insertion"] == pytest.approx([254 / 128]), method
  # a constant map carries no location: every frame scores its own mask's area
  np.testing.assert_allclose(out["uniform"]["pointing"], [12 / 64, 16 / 64, nan])
  np.testing.assert_allclose(out["uniform"]["energy"], [12 / 64, 16 / 64, nan])
  # the centre bias has 4 tied maxima at rows / cols 3-4: 2 lie in A, 1 in B
  np.testing.assert_array_equal(out["center_bias"]["pointing"], [0.5, 0.25, nan])


def test_evaluate_run_pairs_frames_masks_labels_and_streams(monkeypatch):
  monkeypatch.setitem(quality_table.PERTURB_BASELINES, "flow", ("zeros", "zeros"))
  model, variables = _two_stream()
  quads = [_block(0, 4, 0, 4), _block(0, 4, 4, 8), _block(4, 8, 0, 4), _block(4, 8, 4, 8)]
  centres = [(1, 1), (1, 6), (6, 1), (6, 6)]                    # one spot inside each quadrant
  rgb = _spot_frames(centres)                                    # every rgb frame looks at its own actor
  flow = _spot_frames([centres[0], centres[0], centres[0], centres[3]], channels=4)  # frames 1, 2 look elsewhere
  # the flow stream is scored against the union of its stack's masks: frame 1's covers quadrants 0 and 1
  unions = [quads[0], quads[0] | quads[1], quads[2], quads[3]]
  clips = [{"rgb": rgb[2 * k:2 * k + 2], "flow": flow[2 * k:2 * k + 2],
            "mask": np.stack(quads[2 * k:2 * k + 2]).astype(np.float32),
            "flow_mask": np.stack(unions[2 * k:2 * k + 2]).astype(np.float32), "label": label, "name": f"clip{k}"}
           for k, label in enumerate([0, 2])]
  run = types.SimpleNamespace(config=types.SimpleNamespace(name="stub"), step=7, model=model, variables=variables)
  # the package re-exports `restore` (the function), so patch the submodules themselves
  monkeypatch.setattr(importlib.import_module("attn_har.analysis.restore"), "restore", lambda workdir, which: run)
  monkeypatch.setattr(importlib.import_module("attn_har.analysis.clips"), "eval_clips", lambda *args: clips)
  monkeypatch.setattr(importlib.import_module("attn_har.analysis.clips"), "clip_options",
                      lambda *args: types.SimpleNamespace(flow_scale=1.0))
  monkeypatch.setattr(maps, "Explainer", _StubExplainer)
  res = quality_table.evaluate_run("unused", count=2, steps=H * W, road_fractions=(), log=lambda *_: None)
  assert (res["model"], res["step"], res["clips"], res["frames"]) == ("stub", 7, 2, 4)
  assert res["mask_area"] == pytest.approx(0.25)
  assert list(res["streams"]) == ["rgb", "flow"]
  att = {s: res["streams"][s]["attention/late"] for s in ("rgb", "flow")}
  assert att["rgb"]["pointing"] == [1.0, 1.0, 1.0, 1.0] and att["rgb"]["energy"] == [1.0, 1.0, 1.0, 1.0]
  assert att["flow"]["pointing"] == [1.0, 1.0, 0.0, 1.0] and att["flow"]["energy"] == [1.0, 1.0, 0.0, 1.0]
  assert {"flow_magnitude", "location_prior"} <= set(res["streams"]["flow"])
  assert "location_prior" in res["streams"]["rgb"] and "flow_magnitude" not in res["streams"]["rgb"]
  assert res["frame_clip"] == [0, 0, 1, 1] and res["frame_label"] == [0, 0, 2, 2] and res["perturbed"] == [0, 2]
  # one perturbed frame per clip (its first of 2), with its own map and that clip's label: score label + 1, lost
  # (deletion) or gained (insertion) at the first of 64 one-pixel steps
  assert att["rgb"]["deletion"] == pytest.approx([1 / 128, 3 / 128])
  assert att["flow"]["deletion"] == pytest.approx([1 / 128, 3 / 128])
  assert att["flow"]["insertion"] == pytest.approx([127 / 128, 381 / 128])  # flow: zero insertion baseline


@pytest.mark.parametrize("backbone,attention,blocks", [
    ("resnet18_v2", "cbam", ("conv2_block2", "conv3_block2", "conv4_block2")),
    ("resnet50_v2", "l2pa", ("conv2_block3", "conv3_block4", "conv4_block6")),
    ("mobilenet_v2", "gate", ("block_5", "block_12", "block_15")),
])
def test_default_gradcam_layers_are_block_outputs(backbone, attention, blocks):
  from attn_har.models import build_image_model
  model = build_image_model(backbone, attention, 3, "thesis")
  x = jnp.zeros((1, 64, 64, 3))
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), x, False))
  variables = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), variables)
  view = maps.StreamView("rgb", model, variables)
  assert maps.default_gradcam_layers(view, x) == [f"backbone/{b}" for b in blocks]



class _Site(nn.Module):
  """Sows its input's channel mean as an attention map, as the attention modules do."""

  @nn.compact
  def __call__(self, x):
    self.sow("intermediates", SOW_NAME, x.mean(-1))
    return x


class _TwoBlocks(nn.Module):
  """'block_2' (16 x 16 maps) runs before 'block_10' (8 x 8): sorted keys would put block_10 first."""

  @nn.compact
  def __call__(self, x, train=False):
    for name, stride in (("block_2", 1), ("block_10", 2)):
      x = _Site(name=f"{name}_att")(nn.relu(nn.Conv(4, (3, 3), strides=stride, name=name)(x)))
    return nn.Dense(3)(x.mean((1, 2)))


def test_explainer_keeps_the_call_order_of_attention_maps_and_the_order_of_gradcam_layers():
  model = _TwoBlocks()
  x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 16, 16, 3)), jnp.float32)
  variables = model.init(jax.random.key(0), x, False)
  e = maps.Explainer(maps.StreamView("rgb", model, variables), layers=["block_2", "block_10"])(x, 1)
  assert list(e.attention) == ["block_2_att", "block_10_att"]
  assert list(e.gradcam) == ["block_2", "block_10"]
  for stages in (maps.by_stage(e.attention), maps.by_stage(e.gradcam)):
    assert stages["early"].shape == (2, 16, 16) and stages["late"].shape == (2, 8, 8)
