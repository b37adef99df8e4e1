"""Attention-quality metrics on hand-built maps and a model that only looks at the mask."""

import numpy as np
import pytest

from attn_har.analysis import quality


def _square_mask(size=16, lo=4, hi=10):
  m = np.zeros((size, size), bool)
  m[lo:hi, lo:hi] = True
  return m


def test_map_equal_to_mask_hits_and_keeps_all_energy():
  mask = _square_mask()
  assert quality.pointing_game(mask.astype(float), mask) == 1.0
  assert quality.energy_inside(mask.astype(float), mask) == 1.0


def test_uniform_map_scores_the_mask_area_fraction():
  mask = _square_mask()
  area = 36 / 256
  u = quality.uniform_map(mask.shape)
  assert quality.energy_inside(u, mask) == pytest.approx(area)
  assert quality.pointing_game(u, mask) == pytest.approx(area)  # expected hit under random tie-breaking
  assert quality.mask_area(mask) == pytest.approx(area)
  assert quality.energy_inside(np.zeros(mask.shape), mask) == pytest.approx(area)


def test_inverted_map_misses_and_has_no_energy_inside():
  mask = _square_mask()
  inv = (~mask).astype(float)
  assert quality.pointing_game(inv, mask) == 0.0
  assert quality.energy_inside(inv, mask) == 0.0


def test_single_peak_outside_mask_misses_unless_tolerance_reaches():
  mask = _square_mask()
  s = np.zeros(mask.shape)
  s[12, 12] = 1.0  # corner (9, 9) of the mask is 3 px away diagonally (distance sqrt(18) ~ 4.24)
  assert quality.pointing_game(s, mask) == 0.0
  assert quality.pointing_game(s, mask, tolerance=4) == 0.0
  assert quality.pointing_game(s, mask, tolerance=5) == 1.0


def test_leading_axes_kept_and_empty_mask_is_nan():
  mask = np.stack([_square_mask(), np.zeros((16, 16), bool)])
  s = mask.astype(float)
  pg = quality.pointing_game(s, mask)
  en = quality.energy_inside(s + 0.5, mask)
  assert pg.shape == (2,) and pg[0] == 1.0 and np.isnan(pg[1])
  assert en[0] == pytest.approx(36 * 1.5 / (36 * 1.5 + 220 * 0.5)) and np.isnan(en[1])


def test_bad_inputs_raise():
  mask = _square_mask()
  with pytest.raises(ValueError, match="share one shape"):
    quality.energy_inside(np.ones((8, 8)), mask)
  with pytest.raises(ValueError, match="non-negative"):
    quality.energy_inside(mask - 0.5, mask)
  with pytest.raises(ValueError, match="non-finite"):
    quality.pointing_game(np.full(mask.shape, np.nan), mask)


def _mask_model(mask):
  """A 'model' whose class score is the mean brightness of the mask region of a [..., H, W, C] input."""
  def score(batch):
    return (batch * mask[..., None]).sum(axis=tuple(range(1, batch.ndim))) / (mask.sum() * batch.shape[-1])
  return score


def test_deletion_and_insertion_rank_perfect_above_inverted_and_random():
  mask = _square_mask()
  x = np.random.default_rng(0).uniform(0.5, 1.0, mask.shape + (3,)).astype(np.float32)
  fn = _mask_model(mask)
  perfect, inverted = mask.astype(float), (~mask).astype(float)
  rand = quality.random_map(mask.shape, seed=1)
  kw = dict(steps=32, baseline="zeros")
  d_perfect = quality.deletion_auc(fn, x, perfect, **kw)
  d_inverted = quality.deletion_auc(fn, x, inverted, **kw)
  d_random = quality.deletion_auc(fn, x, rand, **kw)
  assert d_perfect < d_random < d_inverted
  i_perfect = quality.insertion_auc(fn, x, perfect, **kw)
  i_inverted = quality.insertion_auc(fn, x, inverted, **kw)
  assert i_perfect > i_inverted
  # Deleting the mask first kills the score after 36/256 of the pixels: AUC about half that area times the score.
  full = float(fn(x[None])[0])
  assert d_perfect < full * (36 / 256 + 1 / 32)
  assert d_inverted > full * (1 - 36 / 256 - 1 / 32)


def test_perturbation_curve_endpoints_and_clip_shape():
  mask = np.stack([_square_mask()] * 3)
  x = np.random.default_rng(1).uniform(0.2, 1.0, mask.shape + (2,)).astype(np.float32)
  fn = _mask_model(mask)
  f, s = quality.perturbation_curve(fn, x, mask.astype(float), "deletion", steps=8, baseline="zeros")
  assert f[0] == 0.0 and f[-1] == 1.0 and len(s) == 9
  assert s[0] == pytest.approx(fn(x[None])[0]) and s[-1] == 0.0
  f, s = quality.perturbation_curve(fn, x, mask.astype(float), "insertion", steps=8, baseline="zeros")
  assert s[0] == 0.0 and s[-1] == pytest.approx(fn(x[None])[0])
  assert np.all(np.diff(s) >= -1e-9)
  with pytest.raises(ValueError, match="mode"):
    quality.perturbation_curve(fn, x, mask, "erase")
  with pytest.raises(ValueError, match="saliency shape"):
    quality.perturbation_curve(fn, x, mask[0], "deletion")


def test_auc_and_order():
  assert quality.auc(np.array([0.0, 0.5, 1.0]), np.array([1.0, 1.0, 1.0])) == pytest.approx(1.0)
  assert quality.auc(np.array([0.0, 1.0]), np.array([1.0, 0.0])) == pytest.approx(0.5)
  order = quality.saliency_order(np.array([[0.1, 0.9], [0.5, 0.9]]))
  assert set(order[:2]) == {1, 3} and list(order[2:]) == [2, 0]


def test_center_bias_peaks_at_the_centre():
  c = quality.center_bias_map((2, 9, 11))
  assert c.shape == (2, 9, 11) and c.max() == pytest.approx(1.0)
  assert np.unravel_index(np.argmax(c[0]), c[0].shape) == (4, 5)
  centre = np.zeros((9, 11), bool)
  centre[3:6, 4:7] = True
  assert quality.pointing_game(c[0], centre) == 1.0
  assert quality.energy_inside(c[0], centre) > quality.mask_area(centre)
  assert set(quality.BASELINES) == {"center_bias", "uniform", "random"}
