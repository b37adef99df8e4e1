"""Frame index sampling: uniform (the thesis's) and segment-based (TSN) for training and testing.

All functions take the decoded frame count N and the number of frames T and return int64 indices [T] in [0, N),
non-decreasing. Clips shorter than T repeat frames.
"""

import numpy as np


def _check(num_frames: int, count: int) -> None:
  if num_frames < 1:
    raise ValueError(f"a clip needs at least one frame, got N={num_frames}")
  if count < 1:
    raise ValueError(f"the number of sampled frames T must be >= 1, got {count}")


def uniform_indices(num_frames: int, count: int) -> np.ndarray:
  """Returns ⌊k·N/T⌋ for k = 0..T-1 (the thesis's 25-frame sampling)."""
  _check(num_frames, count)
  return (np.arange(count, dtype=np.int64) * num_frames) // count


def clamped_uniform_indices(num_frames: int, count: int, reach: int) -> np.ndarray:
  """Returns ⌊k·(N - reach)/T⌋ for k = 0..T-1: uniform over the N - reach first frames, so n_k + reach <= N - 1.

  Raises:
    ValueError: when N <= reach (no frame has `reach` frames after it).
  """
  _check(num_frames, count)
  if num_frames <= reach:
    raise ValueError(f"a clip of N={num_frames} frames has no frame followed by {reach} more (needs N >= {reach + 1})")
  return uniform_indices(num_frames - reach, count)


def _segments(num_frames: int, count: int):
  starts = (np.arange(count, dtype=np.int64) * num_frames) // count
  ends = (np.arange(1, count + 1, dtype=np.int64) * num_frames) // count
  return starts, np.maximum(ends - starts, 1)


def segment_indices(num_frames: int, count: int, rng: np.random.Generator) -> np.ndarray:
  """TSN training sampling: N frames cut into T equal segments [⌊k·N/T⌋, ⌊(k+1)·N/T⌋), one random index in each.

  Args:
    num_frames: N.
    count: T.
    rng: an explicit numpy Generator (never the global state).
  """
  _check(num_frames, count)
  if not isinstance(rng, np.random.Generator):
    raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
  starts, lengths = _segments(num_frames, count)
  return np.minimum(starts + rng.integers(0, lengths), num_frames - 1)


def segment_centres(num_frames: int, count: int) -> np.ndarray:
  """TSN test sampling: the middle frame of each of the T segments."""
  _check(num_frames, count)
  starts, lengths = _segments(num_frames, count)
  return np.minimum(starts + lengths // 2, num_frames - 1)
