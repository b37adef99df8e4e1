"""Map combination (resize, NaN-safe min-max, average) and overlays / flow colour coding."""

import numpy as np
import pytest

from attn_har.analysis import combine, overlay


def test_normalize_range_and_nan_safety():
  m = np.array([[1.0, 3.0], [5.0, np.nan]])
  n = combine.normalize(m)
  np.testing.assert_allclose(n, [[0.0, 0.5], [1.0, 0.0]])
  assert np.all(combine.normalize(np.full((4, 4), 7.0)) == 0.0)  # the thesis gave NaN here
  assert np.all(combine.normalize(np.full((4, 4), np.nan)) == 0.0)
  batch = combine.normalize(np.stack([m * 10, np.full((2, 2), 2.0)]))
  np.testing.assert_allclose(batch[0], n)
  assert np.all(batch[1] == 0.0)
  assert combine.normalize(np.ones((3, 3, 1))).shape == (3, 3, 1)  # [..., H, W]: no axis guessing


def test_resize_preserves_constant_and_mean_of_linear_ramp():
  np.testing.assert_allclose(combine.resize(np.full((7, 7), 0.3), (28, 20)), 0.3, atol=1e-6)
  ramp = np.tile(np.arange(4.0), (4, 1))
  up = combine.resize(ramp, (16, 16))
  assert up.shape == (16, 16)
  assert up.mean() == pytest.approx(ramp.mean(), abs=0.1)
  assert np.all(np.diff(up, axis=1) >= -1e-6)  # monotone along x
  assert combine.resize(np.zeros((2, 3, 4, 4)), (8, 8)).shape == (2, 3, 8, 8)


def test_combine_normalises_every_map_including_the_first():
  a = np.array([[0.0, 100.0], [0.0, 100.0]])     # un-normalised first map (thesis bug: kept raw)
  b = np.array([[1.0, 0.0], [1.0, 0.0]])
  c = combine.combine([a, b, np.full((2, 2), 5.0)], (2, 2))
  # a -> [[0, 1], [0, 1]], b -> [[1, 0], [1, 0]], constant -> 0: the average is 1/3 everywhere.
  np.testing.assert_allclose(c, 1 / 3, atol=1e-6)
  w = combine.combine({"a": a, "b": b}, (2, 2), weights=[3, 1])
  np.testing.assert_allclose(w, [[0.25, 0.75], [0.25, 0.75]], atol=1e-6)
  assert combine.combine([a], (8, 8)).max() <= 1.0
  with pytest.raises(ValueError, match="at least one"):
    combine.combine([], (2, 2))
  with pytest.raises(ValueError, match="weights"):
    combine.combine([a, b], (2, 2), weights=[1, -1])


def test_overlay_blends_frame_and_heat():
  frame = np.zeros((8, 8, 3), np.uint8)
  heat = np.zeros((4, 4))
  heat[0, 0] = 1.0
  out = overlay.overlay(frame, heat, alpha=1.0)
  assert out.dtype == np.uint8 and out.shape == (8, 8, 3)
  assert out[0, 0].sum() > out[7, 7].sum()
  white = overlay.overlay(np.full((8, 8, 3), 255, np.uint8), heat, alpha=0.0)
  assert np.all(white == 255)
  # a [-1, 1] frame is min-max mapped to [0, 1]
  unit = overlay.to_unit_image(np.linspace(-1, 1, 12).reshape(2, 2, 3))
  assert unit.min() == 0.0 and unit.max() == 1.0
  with pytest.raises(ValueError, match="alpha"):
    overlay.overlay(frame, heat, alpha=2.0)


def test_flow_colour_wheel_directions():
  flow = np.zeros((3, 4, 2))
  flow[0, 0] = (1.0, 0.0)    # right -> red
  flow[0, 1] = (-1.0, 0.0)   # left -> cyan
  flow[0, 2] = (0.0, -1.0)   # up
  flow[0, 3] = (0.0, 1.0)    # down
  col = overlay.flow_to_color(flow).astype(int)
  assert np.all(col[1:] == 255)                      # zero motion is white
  assert col[0, 0, 0] > 200 and col[0, 0, 1] < 60 and col[0, 0, 2] < 60
  assert col[0, 1, 0] < 60 and col[0, 1, 1] > 200 and col[0, 1, 2] > 200
  assert not np.array_equal(col[0, 2], col[0, 3])
  half = overlay.flow_to_color(flow, max_magnitude=2.0).astype(int)
  assert 100 < half[0, 0, 1] < 160                    # half magnitude: half saturated
  stack = np.concatenate([flow, 2 * flow, 3 * flow], axis=-1)
  np.testing.assert_array_equal(overlay.flow_stack_to_color(stack, index=2), overlay.flow_to_color(3 * flow))
  with pytest.raises(ValueError, match="index"):
    overlay.flow_stack_to_color(stack, index=3)
  with pytest.raises(ValueError, match=r"\[H, W, 2\]"):
    overlay.flow_to_color(np.zeros((3, 4, 3)))
