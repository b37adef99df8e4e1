"""Map post-processing: resize to the input, NaN-safe min-max per map, average.

The thesis's `combine_attention` (seed `Common.py:210-223`) left the first map un-normalised while normalising the
others, and turned a constant map into NaN (0 / 0). Here every map goes through the same `normalize`, and a map
without spatial contrast (constant, or all non-finite) becomes all zeros: it says nothing about *where* to look, so it
adds nothing to the average.
"""

from typing import Mapping, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

EPS = 1e-8
ArrayLike = Union[np.ndarray, "jax.Array"]  # noqa: F821


def _as_float_map(m: ArrayLike, name: str = "map") -> np.ndarray:
  m = np.asarray(m, dtype=np.float32)
  if m.ndim < 2:
    raise ValueError(f"{name} must have at least 2 dimensions [..., H, W], got shape {m.shape}")
  return m


def normalize(m: ArrayLike, eps: float = EPS) -> np.ndarray:
  """Min-max normalises a map over its last two axes to [0, 1], NaN-safe.

  Non-finite entries are ignored for the min and max and set to 0 in the output. A map whose range is below
  `eps` (constant, or with no finite entry) becomes all zeros.

  Args:
    m: map(s) of shape [..., H, W].
    eps: smallest range treated as contrast.

  Returns:
    float32 array of the same [..., H, W] shape with values in [0, 1].
  """
  m = _as_float_map(m)
  finite = np.isfinite(m)
  lo = np.min(np.where(finite, m, np.inf), axis=(-2, -1), keepdims=True)
  hi = np.max(np.where(finite, m, -np.inf), axis=(-2, -1), keepdims=True)
  span = hi - lo
  ok = np.isfinite(span) & (span > eps)
  safe_lo = np.where(ok, lo, 0.0)
  safe_span = np.where(ok, span, 1.0)
  out = np.where(finite & ok, (np.where(finite, m, 0.0) - safe_lo) / safe_span, 0.0)
  return np.clip(out, 0.0, 1.0).astype(np.float32)


def resize(m: ArrayLike, size: Tuple[int, int]) -> np.ndarray:
  """Bilinearly resizes map(s) [..., h, w] to [..., H, W] (half-pixel centres, as `cv2.resize`).

  Args:
    m: map(s) of shape [..., h, w].
    size: target (H, W).
  """
  m = _as_float_map(m)
  height, width = int(size[0]), int(size[1])
  if height <= 0 or width <= 0:
    raise ValueError(f"size must be positive (H, W), got {size!r}")
  if m.shape[-2:] == (height, width):
    return m.copy()
  lead = m.shape[:-2]
  flat = m.reshape((-1,) + m.shape[-2:])
  out = np.stack([cv2.resize(x, (width, height), interpolation=cv2.INTER_LINEAR) for x in flat])
  return out.reshape(lead + (height, width)).astype(np.float32)


def combine(maps: Union[Sequence[ArrayLike], Mapping[str, ArrayLike]], size: Tuple[int, int],
            weights: Optional[Sequence[float]] = None) -> np.ndarray:
  """Resizes every map to `size`, min-max normalises each, and averages them.

  Args:
    maps: a sequence (or a dict, in insertion order) of maps [..., h_i, w_i] with the same leading shape.
    size: target (H, W), usually the input's.
    weights: optional non-negative weight per map (default equal).

  Returns:
    float32 [..., H, W] in [0, 1].
  """
  items = list(maps.values()) if isinstance(maps, Mapping) else list(maps)
  if not items:
    raise ValueError("combine needs at least one map, got none")
  if weights is None:
    weights = [1.0] * len(items)
  weights = np.asarray(weights, dtype=np.float32)
  if weights.shape != (len(items),) or np.any(weights < 0) or weights.sum() <= 0:
    raise ValueError(f"weights must be {len(items)} non-negative numbers with a positive sum, got {weights.tolist()}")
  normed = [normalize(resize(m, size)) for m in items]
  shapes = {x.shape for x in normed}
  if len(shapes) != 1:
    raise ValueError(f"maps have different leading shapes after resizing: {sorted(shapes)}")
  stacked = np.stack(normed)
  return np.tensordot(weights / weights.sum(), stacked, axes=1).astype(np.float32)
