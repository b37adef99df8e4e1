"""The input-derived reference maps of the quality table: each points where its definition says it must."""

import numpy as np
import pytest

from attn_har.analysis import baselines, quality

H = W = 16


def _square(r, c, size=4):
  m = np.zeros((H, W), bool)
  m[r:r + size, c:c + size] = True
  return m


def test_flow_magnitude_of_a_stack_with_one_moving_square_points_at_the_square():
  square = _square(9, 2)
  flow = np.zeros((H, W, 6), np.float32)            # L = 3 fields
  flow[square, 0::2] = 2.0                           # the square moves right by 2 px in every field
  flow[square, 1::2] = -1.0
  flow += np.random.default_rng(0).normal(0, 0.05, flow.shape).astype(np.float32)   # sensor noise elsewhere
  m = baselines.flow_magnitude(flow)
  assert m.shape == (H, W)
  assert quality.pointing_game(m, square) == 1.0
  assert quality.energy_inside(m, square) > 0.6   # 16 of 256 pixels: uniform would give 0.06
  np.testing.assert_allclose(baselines.flow_magnitude(np.full((2, 2, 4), 3.0))[0, 0], np.hypot(3, 3), rtol=1e-6)


def test_frame_difference_lights_up_where_the_frame_changed():
  rng = np.random.default_rng(1)
  frame = rng.uniform(-1, 1, (H, W, 3)).astype(np.float32)
  nxt = frame.copy()
  square = _square(3, 10)
  nxt[square] = -frame[square]
  d = baselines.frame_difference(frame[None], nxt[None])
  assert d.shape == (1, H, W)
  assert np.all(d[0][~square] == 0) and np.all(d[0][square] > 0)
  assert quality.pointing_game(d, square[None])[0] == 1.0
  with pytest.raises(ValueError, match="share one shape"):
    baselines.frame_difference(frame, nxt[:8])


def test_location_prior_is_the_mean_of_the_training_masks():
  a, b = _square(0, 0), _square(0, 8)
  prior = baselines.location_prior([a, a, b], (H, W))
  np.testing.assert_allclose(prior, (2 * a + b) / 3.0, atol=1e-6)
  assert quality.pointing_game(prior, a) == 1.0                       # the most frequent place wins
  small = baselines.location_prior([a[::2, ::2]], (H, W))            # resized to the evaluated frames
  assert small.shape == (H, W) and small[:3, :3].min() > 0.9 and small[8:, 8:].max() == 0
  with pytest.raises(ValueError, match="at least one"):
    baselines.location_prior([], (H, W))


def test_sample_clip_gives_the_next_video_frame_for_the_frame_difference():
  from attn_har.data.transforms import SampleClip
  rgb = np.arange(8, dtype=np.uint8)[:, None, None, None] * np.ones((8, 4, 4, 3), np.uint8)   # frame f has value f
  element = {"rgb": rgb, "frames": 8, "label": 0, "frame_indices": np.arange(8)}
  out = SampleClip(3, 0, train=False, next_rgb=True).random_map(element, np.random.default_rng(0))
  np.testing.assert_array_equal(out["rgb_next"][:, 0, 0, 0], out["rgb"][:, 0, 0, 0] + 1)
  sparse = dict(element, rgb=rgb[::2], frames=4, frame_indices=np.arange(0, 8, 2))     # only every 2nd frame kept
  with pytest.raises(ValueError, match="frame difference needs video frames"):
    SampleClip(3, 0, train=False, next_rgb=True).random_map(sparse, np.random.default_rng(0))
