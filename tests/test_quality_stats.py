"""Clip-level statistics: bootstrap coverage and width, paired differences, clustering, seeds."""

import numpy as np
import pytest

from attn_har.analysis import stats


def test_bootstrap_of_a_bernoulli_sample_covers_its_mean_with_the_binomial_width():
  p, n = 0.3, 400
  sample = (np.random.default_rng(0).random(n) < p).astype(float)
  ci = stats.cluster_bootstrap(sample, n_boot=4000, seed=1)
  assert ci.estimate == pytest.approx(sample.mean())
  assert ci.low < sample.mean() < ci.high and ci.low < p < ci.high
  binomial = 2 * 1.96 * np.sqrt(sample.mean() * (1 - sample.mean()) / n)
  assert ci.high - ci.low == pytest.approx(binomial, rel=0.1)
  assert ci.se == pytest.approx(sample.std(ddof=1) / np.sqrt(n), rel=1e-12)  # one frame per clip: s / sqrt(n)
  assert (ci.n_frames, ci.n_clips) == (n, n)


def test_bootstrap_interval_covers_the_true_mean_about_95_percent_of_the_time():
  rng = np.random.default_rng(2)
  p, n, reps = 0.2, 200, 300
  hits = 0
  for r in range(reps):
    ci = stats.cluster_bootstrap((rng.random(n) < p).astype(float), n_boot=500, seed=r)
    hits += ci.low <= p <= ci.high
  assert 0.90 <= hits / reps <= 0.99


def test_clustering_widens_the_interval_when_a_clips_frames_are_identical():
  rng = np.random.default_rng(3)
  per_clip = (rng.random(300) < 0.4).astype(float)
  frames = np.repeat(per_clip, 2)             # two perfectly correlated frames per clip
  clips = np.repeat(np.arange(300), 2)
  clustered = stats.cluster_bootstrap(frames, clips, n_boot=4000, seed=0)
  naive = stats.cluster_bootstrap(frames, None, n_boot=4000, seed=0)
  assert clustered.estimate == naive.estimate == pytest.approx(per_clip.mean())
  ratio = (clustered.high - clustered.low) / (naive.high - naive.low)
  assert ratio == pytest.approx(np.sqrt(2), rel=0.1)
  # The clustered SE of the duplicated frames equals the SE of the 300 clip values; frames as independent are
  # sqrt(2) too narrow (up to the n / (n - 1) factors).
  assert stats.clustered_se(frames, clips) == pytest.approx(per_clip.std(ddof=1) / np.sqrt(300), rel=1e-12)
  assert stats.clustered_se(frames, clips) / stats.clustered_se(frames) == pytest.approx(np.sqrt(2), rel=0.01)
  # The clustered interval matches the bootstrap of the clip values themselves.
  direct = stats.cluster_bootstrap(per_clip, n_boot=4000, seed=0)
  assert clustered.high - clustered.low == pytest.approx(direct.high - direct.low, rel=0.1)


def test_paired_difference_of_identical_scores_is_exactly_zero():
  rng = np.random.default_rng(4)
  a = rng.random(50)
  a[7] = np.nan
  clips = np.repeat(np.arange(25), 2)
  d = stats.paired_difference(a, a.copy(), clips)
  assert d.interval.estimate == d.interval.low == d.interval.high == 0.0 and d.interval.se == 0.0
  np.testing.assert_array_equal(d.per_clip, np.zeros(25))
  assert d.interval.n_frames == 49 and d.interval.n_clips == 25


def test_paired_difference_per_clip_means_and_pairing_narrows_the_interval():
  rng = np.random.default_rng(5)
  clip_level = rng.normal(0.0, 1.0, 100)                 # shared between methods: pairing removes it
  clips = np.repeat(np.arange(100), 3)
  b = np.repeat(clip_level, 3) + rng.normal(0.0, 0.05, 300)
  a = b + 0.1 + rng.normal(0.0, 0.05, 300)
  d = stats.paired_difference(a, b, clips, seed=0)
  np.testing.assert_allclose(d.per_clip, (a - b).reshape(100, 3).mean(1), rtol=1e-12)
  np.testing.assert_array_equal(d.clips, np.arange(100))
  assert d.interval.low < 0.1 < d.interval.high and d.interval.low > 0.0
  unpaired = stats.cluster_bootstrap(a, clips).high - stats.cluster_bootstrap(a, clips).low
  assert d.interval.high - d.interval.low < unpaired / 5


def test_nan_frames_are_dropped_and_string_clip_ids_work():
  values = np.array([1.0, np.nan, 0.0, 1.0])
  ci = stats.cluster_bootstrap(values, ["a", "a", "b", "c"], n_boot=100)
  assert ci.estimate == pytest.approx(2 / 3) and (ci.n_frames, ci.n_clips) == (3, 3)


def test_across_seeds_mean_and_spread():
  s = stats.across_seeds({0: 0.30, 1: 0.34, 2: 0.29})
  assert s["mean"] == pytest.approx(0.31) and s["std"] == pytest.approx(np.std([0.30, 0.34, 0.29], ddof=1))
  assert (s["min"], s["max"], s["n"]) == (0.29, 0.34, 3)
  assert stats.across_seeds([0.5])["std"] == 0.0


def test_bad_inputs_raise():
  with pytest.raises(ValueError, match="one clip id per frame"):
    stats.cluster_bootstrap(np.zeros(4), [0, 1])
  with pytest.raises(ValueError, match="all NaN"):
    stats.cluster_bootstrap([np.nan, np.nan])
  with pytest.raises(ValueError, match="same frames"):
    stats.paired_difference(np.zeros(3), np.zeros(4))
  with pytest.raises(ValueError, match="level"):
    stats.cluster_bootstrap(np.zeros(3), level=1.5)
