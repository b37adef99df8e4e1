"""Shared checks of the synthetic scenes (imported by tests/test_synthetic*.py)."""

import numpy as np


def middle_frame_stats(ds, label: int, count: int = 24, t: int = 7) -> np.ndarray:
  """[count, 7] per clip of class `label`: frame t's mean, std, the actor's mean, std, area and centroid (x, y)."""
  rows = []
  for k in range(count):
    c = ds.clip(label + ds.num_classes * k)
    m = c["mask"][t].astype(bool)
    frame = c["rgb"][t].astype(np.float64)
    ys, xs = np.nonzero(m)
    rows.append([frame.mean(), frame.std(), frame[m].mean(), frame[m].std(), m.sum(), xs.mean(), ys.mean()])
  return np.asarray(rows)


def assert_same_means(a: np.ndarray, b: np.ndarray, k: float = 3.0) -> None:
  """Column means of two samples [n, d] agree within k standard errors of their difference."""
  se = np.sqrt(a.var(0) / len(a) + b.var(0) / len(b))
  assert np.all(np.abs(a.mean(0) - b.mean(0)) < k * se + 1e-9), (a.mean(0), b.mean(0), se)
