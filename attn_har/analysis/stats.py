"""Honest statistics of per-frame quality scores: clips are the independent units, not frames.

Frames of one clip share an actor, a scene and a model state, so their scores correlate (the pointing hits of a
clip's two frames correlate at about 0.5 in this project's data): intervals and standard errors that treat frames as
independent are too narrow. Here every uncertainty is clip-level (cluster):

  cluster_bootstrap   percentile interval of the frame mean, resampling whole clips with replacement (seeded).
  clustered_se        the cluster-robust (Liang-Zeger) standard error of the frame mean, with the G / (G - 1)
                      small-sample factor; with one frame per clip it equals the usual s / sqrt(n).
  paired_difference   method A minus method B on the same frames: per-clip mean differences and a clip bootstrap
                      interval of the mean difference (pairing removes the between-clip variance both share).
  across_seeds        mean and spread (sample std, min, max) of per-seed means of independent training runs.

NaN values (e.g. the pointing game on an empty mask) are dropped first; a paired difference drops a frame where
either method is NaN. The estimate is the mean over the remaining frames (each frame weighs the same, so a clip
weighs by its number of frames).
"""

from typing import Mapping, NamedTuple, Optional, Sequence, Union

import numpy as np


class Interval(NamedTuple):
  """A mean with its clip-bootstrap percentile interval.

  Attributes:
    estimate: mean over the frames.
    low, high: the percentile interval at `level` (e.g. 2.5 % and 97.5 % quantiles of the bootstrap means).
    se: the clip-clustered standard error (`clustered_se`).
    n_frames, n_clips: frames and clips after dropping NaN.
  """
  estimate: float
  low: float
  high: float
  se: float
  n_frames: int
  n_clips: int


class PairedDifference(NamedTuple):
  """Method A minus method B on the same frames.

  Attributes:
    interval: `Interval` of the mean per-frame difference (A - B), clip bootstrap.
    clips: [G] clip ids, sorted (after dropping frames where A or B is NaN).
    per_clip: [G] mean difference of each clip's frames.
  """
  interval: Interval
  clips: np.ndarray
  per_clip: np.ndarray


def _clean(values, clips: Optional[Sequence]) -> tuple:
  values = np.asarray(values, dtype=np.float64)
  if values.ndim != 1:
    raise ValueError(f"values must be one score per frame [n], got shape {values.shape}")
  clips = np.arange(values.size) if clips is None else np.asarray(clips)
  if clips.shape != values.shape:
    raise ValueError(f"clips must give one clip id per frame: shape {clips.shape} vs values {values.shape}")
  keep = ~np.isnan(values)
  values, clips = values[keep], clips[keep]
  if values.size == 0:
    raise ValueError("no finite value to summarise (all NaN or empty)")
  if not np.all(np.isfinite(values)):
    raise ValueError("values contain +-inf; scores must be finite or NaN")
  ids, cluster = np.unique(clips, return_inverse=True)
  return values, cluster.reshape(-1), ids


def clustered_se(values: Sequence[float], clips: Optional[Sequence] = None) -> float:
  """Cluster-robust standard error of the mean of `values` [n] with clip ids `clips` [n] (None: one per frame).

  SE^2 = G / (G - 1) * sum_g (sum_{i in g} (y_i - mean))^2 / n^2 over G clips and n frames. NaN with one clip.
  """
  values, cluster, ids = _clean(values, clips)
  if ids.size < 2:
    return float("nan")
  resid = np.bincount(cluster, weights=values - values.mean(), minlength=ids.size)
  g, n = ids.size, values.size
  return float(np.sqrt(g / (g - 1) * np.sum(resid * resid)) / n)


def cluster_bootstrap(values: Sequence[float], clips: Optional[Sequence] = None, n_boot: int = 2000,
                      level: float = 0.95, seed: int = 0) -> Interval:
  """Clip-level bootstrap percentile interval of the frame mean.

  Each replicate draws G clips with replacement from the G clips (all frames of a drawn clip together) and takes
  the mean over the drawn frames; the interval is the (1 - level) / 2 and (1 + level) / 2 quantiles of the
  replicates.

  Args:
    values: one score per frame [n]; NaN entries are dropped.
    clips: clip id of each frame [n] (any hashable numpy-sortable ids); None: every frame its own clip.
    n_boot: bootstrap replicates.
    level: interval coverage in (0, 1).
    seed: numpy seed of the resampling.

  Returns:
    `Interval`.
  """
  if not 0.0 < level < 1.0 or n_boot < 1:
    raise ValueError(f"need 0 < level < 1 and n_boot >= 1, got level={level}, n_boot={n_boot}")
  values, cluster, ids = _clean(values, clips)
  g = ids.size
  sums = np.bincount(cluster, weights=values, minlength=g)
  counts = np.bincount(cluster, minlength=g).astype(np.float64)
  rng = np.random.default_rng(seed)
  means = np.empty(n_boot)
  chunk = max(1, 2_000_000 // g)
  for start in range(0, n_boot, chunk):
    draw = rng.integers(0, g, size=(min(chunk, n_boot - start), g))
    means[start:start + draw.shape[0]] = sums[draw].sum(1) / counts[draw].sum(1)
  low, high = np.quantile(means, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
  estimate = float(values.mean())
  se = clustered_se(values, ids[cluster])
  return Interval(estimate, float(low), float(high), se, int(values.size), int(g))


def paired_difference(a: Sequence[float], b: Sequence[float], clips: Optional[Sequence] = None, n_boot: int = 2000,
                      level: float = 0.95, seed: int = 0) -> PairedDifference:
  """Method A minus method B on the same frames, with a clip bootstrap interval.

  Args:
    a, b: per-frame scores of the two methods on the same frames, in the same order [n].
    clips: clip id of each frame [n] (None: every frame its own clip).
    n_boot, level, seed: as `cluster_bootstrap`.

  Returns:
    `PairedDifference`; identical scores give exactly 0 with a zero-width interval.
  """
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  if a.shape != b.shape:
    raise ValueError(f"paired scores must cover the same frames: shapes {a.shape} and {b.shape}")
  diff = a - b  # NaN where either is NaN
  interval = cluster_bootstrap(diff, clips, n_boot, level, seed)
  values, cluster, ids = _clean(diff, clips)
  per_clip = np.bincount(cluster, weights=values, minlength=ids.size) / np.bincount(cluster, minlength=ids.size)
  return PairedDifference(interval, ids, per_clip)


def across_seeds(per_seed: Union[Sequence[float], Mapping[object, float]]) -> dict:
  """Mean and spread of one metric over independent training seeds.

  Args:
    per_seed: each seed's mean score (a sequence, or {seed: mean}); NaN entries are dropped.

  Returns:
    {'mean', 'std' (sample std, ddof=1; 0.0 for a single seed), 'min', 'max', 'n'}: floats and an int.
  """
  values = np.asarray(list(per_seed.values()) if isinstance(per_seed, Mapping) else list(per_seed), np.float64)
  values = values[~np.isnan(values)]
  if values.size == 0:
    raise ValueError("across_seeds needs at least one seed's finite mean")
  std = float(values.std(ddof=1)) if values.size > 1 else 0.0
  return {"mean": float(values.mean()), "std": std, "min": float(values.min()), "max": float(values.max()),
          "n": int(values.size)}
