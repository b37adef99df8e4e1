"""The model-parameter randomisation test: Grad-CAM of a tiny conv net decorrelates, an edge detector is flagged."""

import cv2
import flax.linen as nn
import jax
import numpy as np
import pytest
from scipy import stats as scipy_stats

from attn_har.analysis import combine, maps, sanity


class _TinyNet(nn.Module):
  """Three 3x3 convs (one strided) -> GAP -> Dense: [N, 32, 32, 3] -> logits [N, 4]."""

  @nn.compact
  def __call__(self, x, train):
    x = nn.relu(nn.Conv(8, (3, 3), name="conv1")(x))
    x = nn.relu(nn.Conv(16, (3, 3), strides=2, name="conv2")(x))
    x = nn.relu(nn.Conv(16, (3, 3), name="conv3")(x))
    return nn.Dense(4, name="head")(x.mean((1, 2)))


def _inputs(n=12, size=32):
  """Faint noise with three coloured 8x8 squares per image."""
  rng = np.random.default_rng(0)
  x = rng.normal(0.0, 0.1, (n, size, size, 3)).astype(np.float32)
  for i in range(n):
    for _ in range(3):
      r, c = rng.integers(0, size - 8, 2)
      x[i, r:r + 8, c:c + 8] += rng.normal(0.0, 1.0, 3)
  return x, np.arange(n) % 4


def _random_variables(model, x, seed):
  """Fan-in-scaled normal weights and zero biases from `jax.eval_shape` and numpy: no init compile."""
  rng = np.random.default_rng(seed)
  shapes = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, False), x)

  def fill(s):
    if len(s.shape) == 1:
      return np.zeros(s.shape, s.dtype)
    return rng.normal(0.0, 1.0 / np.sqrt(np.prod(s.shape[:-1])), s.shape).astype(s.dtype)
  return jax.tree.map(fill, shapes)


def _edges(x):
  """Sobel gradient magnitude of the channel sum [N, H, W]: a map that never looks at the model."""
  g = np.asarray(x).sum(-1)
  return np.stack([np.hypot(cv2.Sobel(f, cv2.CV_32F, 1, 0), cv2.Sobel(f, cv2.CV_32F, 0, 1)) for f in g])


def test_gradcam_decorrelates_after_full_randomisation_and_an_edge_detector_is_flagged(tmp_path):
  model = _TinyNet()
  x, labels = _inputs()
  variables = _random_variables(model, x, seed=0)    # "trained": any weights the output depends on
  layers = sanity.layer_order(model, variables, x)
  assert layers == ["head", "conv3", "conv2", "conv1"]
  steps = sanity.cascade(variables, _random_variables(model, x, seed=1), layers)
  explainer = maps.Explainer(maps.StreamView("image", model, variables), layers=["conv3"])

  def method_maps(explainer, x, labels):
    e = explainer(x, labels)
    return {"gradcam": combine.normalize(combine.resize(e.gradcam["conv3"], x.shape[1:3])), "edges": _edges(x),
            "uniform": np.ones(x.shape[:3])}

  result = sanity.randomization_test(sanity.explainer_maps_fn(explainer, method_maps), variables, steps, x, labels)
  assert explainer.view.variables is variables             # the swap is undone
  assert result.steps == ["trained"] + layers
  for metric in sanity.METRICS:
    np.testing.assert_allclose(getattr(result, metric)["gradcam"][0], 1.0, atol=1e-9)
  final = result.spearman_abs["gradcam"][-1]
  assert abs(final.mean()) < 0.2 and result.ssim["gradcam"][-1].mean() < 0.3
  assert result.spearman_abs["gradcam"][1:].mean() < 0.5     # already the top layer alone changes the maps
  for metric in sanity.METRICS:
    np.testing.assert_allclose(getattr(result, metric)["edges"], 1.0, atol=1e-9)
  # A constant map is the same before and after: it scores 1, is flagged, and is marked constant.
  assert sanity.flags(result) == {"gradcam": False, "edges": True, "uniform": True}
  assert not result.constant["gradcam"].any() and not result.constant["edges"].any()
  assert result.constant["uniform"].all() and (result.spearman["uniform"] == 1.0).all()
  s = sanity.summary(result)
  assert s["methods"]["edges"]["flagged"] and s["methods"]["gradcam"]["final_spearman_abs"] == pytest.approx(
      final.mean())
  png = sanity.plot(result, tmp_path / "sanity.png")
  assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_cascade_replaces_exactly_the_top_layers_in_turn():
  model = _TinyNet()
  x, _ = _inputs(1)
  shapes = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, False), x)
  trained = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes)
  fresh = jax.tree.map(lambda s: np.ones(s.shape, s.dtype), shapes)
  trained["batch_stats"] = {"bn": {"mean": np.zeros(3)}}
  steps = sanity.cascade(trained, fresh, ["head", "conv3", "conv2", "conv1"])
  for k, (layer, v) in enumerate(steps):
    assert layer == ["head", "conv3", "conv2", "conv1"][k]
    for i, name in enumerate(["head", "conv3", "conv2", "conv1"]):
      assert all(float(leaf.mean()) == (1.0 if i <= k else 0.0) for leaf in jax.tree.leaves(v["params"][name]))
    assert v["batch_stats"] is trained["batch_stats"]
  with pytest.raises(KeyError, match="conv3"):
    sanity.cascade(trained, fresh, ["conv9"])


def test_fresh_variables_are_a_new_draw_of_the_same_tree():
  model = nn.Dense(3)
  x = np.ones((1, 4), np.float32)
  one, two = sanity.fresh_variables(model, x, seed=1, apply_args=()), sanity.fresh_variables(model, x, 2, ())
  assert jax.tree.structure(one) == jax.tree.structure(two) and one["params"]["kernel"].shape == (4, 3)
  assert not np.allclose(one["params"]["kernel"], two["params"]["kernel"])
  np.testing.assert_array_equal(one["params"]["kernel"], sanity.fresh_variables(model, x, 1, ())["params"]["kernel"])


def test_layer_order_follows_the_forward_pass_not_the_sorted_keys():
  from attn_har.models import build_image_model  # pylint: disable=import-outside-toplevel
  model = build_image_model("mobilenet_v2", "cbam", num_classes=5, alpha=0.35)
  x = np.zeros((1, 32, 32, 3), np.float32)
  variables = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, False), x)
  blocks = sanity.layer_order(model, variables, x, depth=2)
  assert blocks[:4] == ["predictions", "backbone/Conv_1_bn", "backbone/Conv_1", "backbone/block_16"]
  assert blocks[-3:] == ["backbone/block_0", "backbone/bn_Conv1", "backbone/Conv1"]
  body = [b for b in blocks if b.startswith("backbone/block_")]
  assert body == [f"backbone/block_{i}" for i in range(16, -1, -1)]
  fine = sanity.layer_order(model, variables, x)
  assert fine.index("backbone/block_5/project") < fine.index("backbone/block_5/expand")
  assert fine[0] == "predictions" and fine.index("backbone/block_5/expand") < fine.index("backbone/block_4/project")


def test_spearman_matches_scipy_and_handles_sign_and_constants():
  rng = np.random.default_rng(1)
  a = np.round(rng.random((3, 8, 8)), 1)                  # ties
  b = np.round(a + rng.normal(0, 0.3, a.shape), 1)
  expected = [scipy_stats.spearmanr(p.ravel(), q.ravel()).statistic for p, q in zip(a, b)]
  np.testing.assert_allclose(sanity.spearman(a, b), expected, rtol=1e-12)
  np.testing.assert_allclose(sanity.spearman(a, np.exp(3 * a)), 1.0)   # rank-based: any monotone map is 1
  c = rng.random((1, 6, 6)) + 0.1
  assert sanity.spearman(c, -c)[0] == pytest.approx(-1.0) and sanity.spearman(c, -c, absolute=True)[0] == 1.0
  flat, other = np.zeros((1, 6, 6)), rng.random((1, 6, 6))
  assert sanity.spearman(flat, flat)[0] == 1.0 and sanity.spearman(flat, other)[0] == 0.0


def test_ssim_is_one_on_identical_maps_and_matches_known_values():
  rng = np.random.default_rng(2)
  a = rng.random((2, 16, 16))
  np.testing.assert_allclose(sanity.ssim(a, a), 1.0, rtol=1e-12)
  # Constant maps: only the luminance term is left, (2 a b + C1) / (a^2 + b^2 + C1).
  c1 = 0.01 ** 2
  got = sanity.ssim(np.full((12, 12), 0.2), np.full((12, 12), 0.6))
  assert got == pytest.approx((2 * 0.2 * 0.6 + c1) / (0.2 ** 2 + 0.6 ** 2 + c1), rel=1e-12)
  assert got == pytest.approx(0.600100, abs=1e-6)
  # Brute force: a 2-D Gaussian window at every position that fits.
  a, b = rng.random((13, 14)), rng.random((13, 14))
  t = np.arange(11) - 5.0
  w = np.exp(-(t[:, None] ** 2 + t[None, :] ** 2) / (2 * 1.5 ** 2))
  w /= w.sum()
  values = []
  for r in range(3):
    for c in range(4):
      p, q = a[r:r + 11, c:c + 11], b[r:r + 11, c:c + 11]
      mp, mq = (w * p).sum(), (w * q).sum()
      vp, vq, cov = (w * p * p).sum() - mp ** 2, (w * q * q).sum() - mq ** 2, (w * p * q).sum() - mp * mq
      values.append((2 * mp * mq + c1) * (2 * cov + 0.03 ** 2) / ((mp ** 2 + mq ** 2 + c1) * (vp + vq + 0.03 ** 2)))
  assert sanity.ssim(a, b) == pytest.approx(np.mean(values), rel=1e-10)
  assert sanity.ssim(a, 1.0 - a) < 0 < sanity.ssim(a, a + 0.1 * b) < 1.0
  with pytest.raises(ValueError, match="smaller odd win_size"):
    sanity.ssim(np.zeros((8, 8)), np.zeros((8, 8)))
