"""The 'marked' synthetic scene: motion alone does not find the actor, one frame does not tell its class."""

import numpy as np
import pytest

from attn_har.analysis import baselines
from attn_har.data import flow as flow_lib
from attn_har.data import synthetic

import synthetic_checks

L = 5


@pytest.fixture(scope="module")
def ds():
  return synthetic.SyntheticActions(size=96, scene="marked")


def _centroid(m):
  ys, xs = np.nonzero(m)
  return np.array([xs.mean(), ys.mean()])


def oracle_pointing(ds, clips, starts=(2, 5, 8)):
  """Where the flow-magnitude map's maximum lands, per stack of L consecutive Farnebäck fields.

  Returns:
    (fraction on the actor, on a distractor, on the background) over len(clips) * len(starts) stacks; a stack's
    ground truth is the union of the masks of its L frames, as the quality table's `flow_mask`.
  """
  solver = flow_lib.make_solver("farneback_small")
  hits = np.zeros(3)
  for i in clips:
    c = ds.clip(i, distractor_masks=True)
    t = len(c["rgb"])
    fields = flow_lib.compute_pairs(solver, c["rgb"], np.stack([np.arange(t - 1), np.arange(1, t)], 1))
    for s in starts:
      magnitude = baselines.flow_magnitude(np.concatenate(list(fields[s:s + L]), -1))
      y, x = np.unravel_index(np.argmax(magnitude), magnitude.shape)
      on_actor, on_distractor = c["mask"][s:s + L, y, x].any(), c["distractors"][s:s + L, y, x].any()
      hits[0 if on_actor else 1 if on_distractor else 2] += 1
  return hits / hits.sum()


def test_flow_magnitude_points_at_a_distractor_at_least_as_often_as_at_the_actor(ds):
  actor, distractor, background = oracle_pointing(ds, range(40))
  # The dataset docstring states the 120-clip measurement (actor 0.16, distractors 0.46); 40 clips x 3 stacks here
  # give 0.12 and 0.48.
  assert actor <= distractor, (actor, distractor, background)
  assert actor <= 0.35, (actor, distractor, background)


def test_motion_scene_oracle_finds_the_actor_more_often(ds):
  """The contrast that motivates the marked scene: in 'motion' clips the flow maximum sits on the actor far more."""
  motion = synthetic.SyntheticActions(size=96)
  actor_motion = oracle_pointing(motion, range(20))[0]
  actor_marked = oracle_pointing(ds, range(20))[0]
  assert actor_motion > actor_marked + 0.15, (actor_motion, actor_marked)


def test_single_frame_of_left_and_right_looks_alike(ds):
  """The middle frame's appearance and actor position have the same statistics for 'move_left' and 'move_right'."""
  left, right = synthetic_checks.middle_frame_stats(ds, 0), synthetic_checks.middle_frame_stats(ds, 1)
  synthetic_checks.assert_same_means(left, right)


def test_distractors_move_like_the_actor_and_the_camera_pans(ds):
  """Distractors follow random classes' actor paths (same speed statistics); the scene shares one pan."""
  actor_speed, distractor_speed = [], []
  for i in range(30):
    c = ds.clip(i, distractor_masks=True)
    a = np.array([_centroid(m) for m in c["mask"]])
    actor_speed.append(np.linalg.norm(np.diff(a, axis=0), axis=1).mean())
    for k in (1, 2):
      visible = [(c["distractors"][t] == k) for t in range(len(a))]
      if min(v.sum() for v in visible) > 0.6 * max(v.sum() for v in visible):  # skip occluded ones
        d = np.array([_centroid(v) for v in visible])
        distractor_speed.append(np.linalg.norm(np.diff(d, axis=0), axis=1).mean())
  a, d = np.asarray(actor_speed), np.asarray(distractor_speed)
  assert len(d) >= 20
  se = np.sqrt(a.var() / len(a) + d.var() / len(d))
  assert abs(a.mean() - d.mean()) < 3 * se, (a.mean(), d.mean(), se)
  # A 'static' actor (label 9) moves with the camera: its centroid shifts along a straight line.
  c = ds.clip(9 + 10 * 3)
  xy = np.array([_centroid(m) for m in c["mask"]])
  steps = np.diff(xy, axis=0)
  assert np.linalg.norm(steps.mean(0)) > 0.1 and np.abs(steps - steps.mean(0)).max() < 0.6, steps


def test_actor_is_marked_by_stripes_and_clips_are_deterministic(ds):
  """The actor's texture alternates dark and light (its mark); distractors' textures are smooth colour noise."""
  c = ds.clip(4)
  assert (c["rgb"] == ds.clip(4)["rgb"]).all()
  m = c["mask"][0].astype(bool)
  grey = c["rgb"][0].astype(np.float64).mean(-1)
  inside = grey[m]
  assert (inside < 90).mean() > 0.25 and (inside > 160).mean() > 0.25, np.percentile(inside, [10, 50, 90])
