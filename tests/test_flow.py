"""Optical flow accuracy, uint8 quantisation and flow stacking."""

import cv2
import numpy as np
import pytest

from attn_har.data import flow, quantize, stacking


def _shifted_pair(dx, dy, n=96, pad=16):
  """Smooth random texture and a copy moved by (dx, dy) px: content at (x, y) goes to (x + dx, y + dy)."""
  tex = np.random.default_rng(0).random((n + 2 * pad,) * 2).astype(np.float32)
  tex = cv2.GaussianBlur(tex, (0, 0), 2.0)
  tex = (tex - tex.min()) / (tex.max() - tex.min())
  moved = cv2.warpAffine(tex, np.float32([[1, 0, dx], [0, 1, dy]]), tex.shape[::-1], flags=cv2.INTER_CUBIC,
                         borderMode=cv2.BORDER_REFLECT)
  crop = lambda im: (im[pad:-pad, pad:-pad] * 255).round().astype(np.uint8)
  return crop(tex), crop(moved)


@pytest.mark.parametrize("method", sorted(flow.FLOW_METHODS))
@pytest.mark.parametrize("shift", [(2.0, -1.0), (1.3, 0.6)])
def test_flow_recovers_known_shift(method, shift):
  a, b = _shifted_pair(*shift)
  field = flow.make_solver(method)(a, b)
  assert field.shape == (96, 96, 2) and field.dtype == np.float32
  err = np.abs(field[16:-16, 16:-16] - np.float32(shift))
  assert err.mean() < 0.1 and np.percentile(err, 95) < 0.1, (method, shift, err.mean())


def test_compute_pairs_reuses_one_solver_and_orders_pairs():
  a, b = _shifted_pair(2.0, -1.0)
  frames = np.stack([np.repeat(f[..., None], 3, -1) for f in (a, b, a)])   # RGB [3, H, W, 3]
  calls = []

  class Counting(flow.DIS):
    def _compute(self, prev, nxt):
      calls.append(1)
      return super()._compute(prev, nxt)

  pairs = np.array([[0, 1], [1, 2], [2, 0]])
  out = flow.compute_pairs(Counting(), frames, pairs)
  assert len(calls) == 3 and out.shape == (3, 96, 96, 2)
  mid = np.s_[16:-16, 16:-16]
  np.testing.assert_allclose(out[0][mid].mean((0, 1)), [2.0, -1.0], atol=0.1)
  np.testing.assert_allclose(out[1][mid].mean((0, 1)), [-2.0, 1.0], atol=0.1)   # b -> a moves back
  np.testing.assert_allclose(out[2][mid].mean((0, 1)), [0.0, 0.0], atol=0.05)  # a -> a: no motion
  with pytest.raises(ValueError, match=r"pair indices must lie in \[0, 3\)"):
    flow.compute_pairs(Counting(), frames, np.array([[0, 3]]))


def test_unknown_flow_method_lists_choices():
  with pytest.raises(KeyError, match="'dis', 'farneback', 'farneback_small', 'tvl1'"):
    flow.make_solver("raft")


def test_quantize_roundtrip_within_half_step():
  c = 20.0
  d = np.linspace(-c, c, 100_001, dtype=np.float32)
  q = quantize.quantize(d, c)
  assert q.dtype == np.uint8 and q[0] == 0 and q[-1] == 254
  assert (np.diff(q.astype(int)) >= 0).all() and len(np.unique(q)) == 255
  back = quantize.dequantize(q, c)
  assert back.dtype == np.float32
  half = quantize.step(c) / 2
  assert abs(half - c / 254) < 1e-12
  assert np.abs(back - d).max() <= half + 1e-5
  # Codes dequantise exactly to the grid and requantise to themselves.
  grid = np.arange(255, dtype=np.uint8)
  np.testing.assert_allclose(quantize.dequantize(grid, c), (grid.astype(np.float32) - 127) * (c / 127), atol=1e-5)
  np.testing.assert_array_equal(quantize.quantize(quantize.dequantize(grid, c), c), grid)


def test_quantize_saturates_and_checks_inputs():
  q = quantize.quantize(np.array([-100.0, -20.0, 20.0, 55.0]), 20.0)
  np.testing.assert_array_equal(q, [0, 0, 254, 254])
  small = np.array([0.3, -0.7], np.float32)
  np.testing.assert_allclose(quantize.dequantize(quantize.quantize(small, 1.0), 1.0), small, atol=1 / 254 + 1e-6)
  with pytest.raises(ValueError, match="non-finite"):
    quantize.quantize(np.array([0.0, np.nan]))
  with pytest.raises(ValueError, match="clip_px"):
    quantize.quantize(np.zeros(2), 0.0)
  with pytest.raises(ValueError, match="uint8"):
    quantize.dequantize(np.zeros(2, np.int32))


@pytest.mark.parametrize("length", [1, 5, 10])
def test_required_pair_counts(length):
  t = 25
  cons = stacking.required_pairs(t, length, "consecutive")
  np.testing.assert_array_equal(cons, np.stack([np.arange(t - 1), np.arange(1, t)], 1))
  anch = stacking.required_pairs(t, length, "anchored")
  assert len(anch) == (t - length) * length and cons.dtype == anch.dtype == np.int16
  assert len(stacking.required_pairs(t, length, "anchored", bidirectional=True)) == 2 * len(anch)
  assert len(stacking.valid_starts(t, length)) == t - length
  # Every stack of every start is served, and every stored pair is used by some stack.
  for mode, pairs in (("consecutive", cons), ("anchored", anch)):
    used = set()
    for s in stacking.valid_starts(t, length):
      used.update(stacking.stack_indices(pairs, int(s), length, mode).tolist())
    assert used == set(range(len(pairs)))


def _labelled_flow(pairs, h=2, w=3):
  """Flow whose u holds the pair's source frame and v its target frame, so stacks reveal their pairs."""
  f = np.zeros((len(pairs), h, w, 2), np.float32)
  f[..., 0] = pairs[:, 0, None, None]
  f[..., 1] = pairs[:, 1, None, None]
  return f


def test_stack_channel_order_consecutive_vs_anchored():
  t, length, start = 12, 4, 3
  for mode, expect in (("consecutive", [(3, 4), (4, 5), (5, 6), (6, 7)]),
                       ("anchored", [(3, 4), (3, 5), (3, 6), (3, 7)])):
    pairs = stacking.required_pairs(t, length, mode)
    stack = stacking.stack_flow(_labelled_flow(pairs), pairs, start, length, mode)
    assert stack.shape == (2, 3, 2 * length)
    np.testing.assert_array_equal(stack[1, 2], np.array(expect).ravel())   # [u1, v1, ..., uL, vL]
  pairs = stacking.required_pairs(t, length, "consecutive", bidirectional=True)
  stack = stacking.stack_flow(_labelled_flow(pairs), pairs, start, length, "consecutive", bidirectional=True)
  assert stack.shape == (2, 3, 4 * length)
  np.testing.assert_array_equal(stack[0, 0, 2 * length:], [4, 3, 5, 4, 6, 5, 7, 6])
  # uint8 codes stack unchanged.
  q = quantize.quantize(_labelled_flow(pairs))
  np.testing.assert_array_equal(stacking.stack_flow(q, pairs, start, length, "consecutive", True),
                                quantize.quantize(stack))


def test_missing_pair_raises_clear_error():
  pairs = stacking.required_pairs(10, 3, "consecutive")
  f = _labelled_flow(pairs)
  with pytest.raises(stacking.MissingFlowPairError, match=r"\(2 -> 4\).*anchored"):
    stacking.stack_flow(f, pairs, 2, 3, "anchored")
  with pytest.raises(stacking.MissingFlowPairError, match=r"\(9 -> 10\)"):
    stacking.stack_flow(f, pairs, 7, 3, "consecutive")
  with pytest.raises(ValueError, match="unknown stacking mode 'mixed'"):
    stacking.required_pairs(10, 3, "mixed")
  with pytest.raises(ValueError, match="at least 11 frames"):
    stacking.required_pairs(10, 10)


def test_quantize_keeps_zero_and_flip_symmetry():
  d = np.array([0.0, 3.3, -3.3, 19.9], np.float32)
  q = quantize.quantize(d)
  assert quantize.dequantize(q)[0] == 0.0
  np.testing.assert_array_equal(quantize.dequantize(quantize.quantize(-d)), -quantize.dequantize(q))
