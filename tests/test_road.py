"""ROAD: noisy linear imputation fills linear images exactly, and MoRF on the region a toy model sums drops most."""

import numpy as np
import pytest

from attn_har.analysis import quality, road


def _ramp(height, width, channels=2, slope=(0.3, -0.2)):
  yy, xx = np.mgrid[:height, :width].astype(np.float32)
  return np.stack([slope[0] * yy + slope[1] * xx + c for c in range(channels)], -1)


def test_linear_imputation_fills_a_hole_in_a_linear_ramp_exactly():
  x = _ramp(20, 30)
  x[..., 1] *= -3.0                                   # a different ramp per channel
  hole = np.zeros((20, 30), bool)
  hole[5:12, 8:20] = True
  hole[15, 3] = True                                  # and a lone pixel
  damaged = np.where(hole[..., None], 100.0, x)       # the removed values must not leak into the fill
  out = road.impute(damaged, hole, noise=0.0)
  np.testing.assert_allclose(out, x, atol=1e-5)


def test_each_frame_of_a_clip_is_imputed_from_itself_and_noise_has_the_set_scale():
  clip = np.stack([_ramp(16, 16, 3), _ramp(16, 16, 3, slope=(-1.0, 0.5))])
  hole = np.zeros((2, 16, 16), bool)
  hole[:, 4:11, 5:12] = True
  np.testing.assert_allclose(road.impute(clip, hole, noise=0.0), clip, atol=1e-5)
  noisy = road.impute(clip, hole, noise=0.05, seed=1)
  np.testing.assert_array_equal(noisy[~hole], clip[~hole])    # kept pixels are untouched
  jitter = (noisy - clip)[hole]                               # [n_removed, C]
  std = clip.reshape(-1, 3).std(0)
  np.testing.assert_allclose(jitter.std(0), 0.05 * std, rtol=0.15)


def test_removal_masks_morf_and_lerf_take_opposite_ends_of_the_ranking():
  sal = np.arange(100, dtype=float).reshape(10, 10)
  morf, lerf = (road.removal_masks(sal, order, [0.0, 0.3]) for order in ("morf", "lerf"))
  assert not morf[0].any() and not lerf[0].any()
  np.testing.assert_array_equal(morf[1], sal >= 70)
  np.testing.assert_array_equal(lerf[1], sal < 30)


def _region_sum_model():
  """An image with a bright textured square R (25 % of the pixels) and a logit = mean of the input over R."""
  rng = np.random.default_rng(0)
  region = np.zeros((24, 24), bool)
  region[6:18, 6:18] = True
  x = np.where(region[..., None], 1.0 + 0.2 * rng.random((24, 24, 3)), 0.1 * rng.random((24, 24, 3)))

  def score_fn(batch):
    return batch[:, region].mean(axis=(1, 2))
  return x.astype(np.float32), region, score_fn


def test_morf_on_the_summed_region_drops_the_score_most():
  x, region, score_fn = _region_sum_model()
  region_first = region + 0.01 * np.random.default_rng(1).random(region.shape)
  results = {name: road.road(score_fn, x, sal, seed=2)
             for name, sal in (("region", region_first), ("inverse", -region_first),
                               ("random", quality.random_map(region.shape, seed=3)))}
  r = results["region"]
  # Once R (25 %) is gone, it is imputed from the dark surround: the score falls to the background level.
  assert r.morf[2] < 0.2 and r.morf[-1] < 0.2
  assert r.morf_area < results["random"].morf_area - 0.3
  assert r.morf_area < results["inverse"].morf_area - 0.3
  assert r.morf_area < r.lerf_area - 0.5 and r.gap == pytest.approx(r.lerf_area - r.morf_area)
  assert r.gap > results["random"].gap and r.gap > results["inverse"].gap
  np.testing.assert_allclose(r.fractions, np.arange(1, 10) / 10)
  assert r.morf_area == pytest.approx(np.trapezoid(r.morf, r.fractions) / 0.8)


def test_road_curve_batches_and_bad_inputs():
  x, region, score_fn = _region_sum_model()
  f, full = road.road_curve(score_fn, x, region.astype(float), "morf", seed=0)
  _, batched = road.road_curve(score_fn, x, region.astype(float), "morf", seed=0, batch_size=4)
  np.testing.assert_allclose(full, batched, rtol=1e-6)
  with pytest.raises(ValueError, match="without channels"):
    road.road_curve(score_fn, x, np.ones((8, 8)), "morf")
  with pytest.raises(ValueError, match="valid choices: morf, lerf"):
    road.road_curve(score_fn, x, region, "deletion")
  with pytest.raises(ValueError, match=r"in \[0, 1\)"):
    road.removal_masks(region, "morf", [0.5, 1.0])


def test_a_clip_is_ranked_jointly_over_its_frames():
  x, region, score_fn = _region_sum_model()
  clip = np.stack([x, np.full_like(x, 0.05)])          # the region's evidence is in frame 0 only
  sal = np.stack([region.astype(float), np.zeros_like(region, float)])

  def clip_score(batch):                              # [N, 2, H, W, C] -> mean over frame 0's region
    return score_fn(batch[:, 0])
  r = road.road(clip_score, clip, sal, fractions=[0.1, 0.2])
  # 12.5 % of the clip is the region: removing 20 % most relevant takes all of it, least relevant none of it.
  assert r.morf[1] < 0.2 and r.lerf[1] > 1.0
