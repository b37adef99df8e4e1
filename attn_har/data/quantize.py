"""uint8 quantisation of optical flow over a fixed clip range.

A displacement d (pixels) is clipped to [-c, c] and mapped linearly onto the 255 codes 0..254, centred on 127:

  q = round(clip(d, -c, c) * 127 / c) + 127,    d' = (q - 127) * c / 127.

`dequantize` is the exact inverse of the linear map, so inside the clip range |d - d'| <= c / 254 (half a step;
0.079 px for the default c = 20). Zero motion is code 127 and dequantises to exactly 0, and the grid is symmetric,
so a horizontal flip (u -> -u) maps codes onto codes. Displacements beyond +-c saturate to 0 or 254; code 255 is
never written.
The seed code instead truncated float flow to int (all sub-pixel motion lost); this mapping keeps it.
"""

import numpy as np

DEFAULT_CLIP_PX = 20.0
ZERO_CODE = 127  # the code of zero displacement; codes run 0..2 * ZERO_CODE


def _check_clip(clip_px: float) -> float:
  clip_px = float(clip_px)
  if not np.isfinite(clip_px) or clip_px <= 0:
    raise ValueError(f"clip_px must be a positive finite number of pixels, got {clip_px!r}")
  return clip_px


def step(clip_px: float = DEFAULT_CLIP_PX) -> float:
  """Returns the size of one quantisation step in pixels, c / 127."""
  return _check_clip(clip_px) / float(ZERO_CODE)


def quantize(flow: np.ndarray, clip_px: float = DEFAULT_CLIP_PX) -> np.ndarray:
  """Maps float flow to uint8 codes.

  Args:
    flow: displacements in pixels, any shape (usually [..., 2] with (u, v) last).
    clip_px: the clip range c; values outside [-c, c] saturate.

  Returns:
    uint8 array of the same shape.

  Raises:
    ValueError: for a non-finite value in `flow` or a bad `clip_px`.
  """
  c = _check_clip(clip_px)
  d = np.asarray(flow, dtype=np.float32)
  if not np.isfinite(d).all():
    bad = int(np.size(d) - np.count_nonzero(np.isfinite(d)))
    raise ValueError(f"flow has {bad} non-finite values (NaN/inf); cannot quantise")
  q = np.rint(np.clip(d, -c, c) * np.float32(ZERO_CODE / c)) + ZERO_CODE
  return q.astype(np.uint8)


def dequantize(q: np.ndarray, clip_px: float = DEFAULT_CLIP_PX) -> np.ndarray:
  """Maps uint8 codes back to float32 pixels, the exact inverse of the linear map in `quantize`.

  Args:
    q: uint8 codes, any shape.
    clip_px: the clip range c used when quantising.

  Returns:
    float32 array of the same shape, values in [-c, c] (codes above 254 saturate at c).
  """
  c = _check_clip(clip_px)
  q = np.asarray(q)
  if q.dtype != np.uint8:
    raise ValueError(f"dequantize expects uint8 codes, got dtype {q.dtype}")
  return (q.astype(np.float32) - np.float32(ZERO_CODE)) * np.float32(c / ZERO_CODE)
