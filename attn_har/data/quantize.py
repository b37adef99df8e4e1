"""uint8 quantisation of optical flow over a fixed clip range.

A displacement d (pixels) is clipped to [-c, c] and mapped linearly onto the 256 codes 0..255:

  q = round((clip(d, -c, c) + c) * 255 / (2c)),    d' = q * 2c / 255 - c.

`dequantize` is the exact inverse of the linear map, so inside the clip range |d - d'| <= c / 255 (half a step;
0.078 px for the default c = 20). Zero motion maps to code 128, i.e. d' = +0.078 px, not exactly 0: the code grid
has no centre point because 255 steps split the range. Displacements beyond +-c saturate to 0 or 255.
The seed code instead truncated float flow to int (all sub-pixel motion lost); this mapping keeps it.
"""

import numpy as np

DEFAULT_CLIP_PX = 20.0


def _check_clip(clip_px: float) -> float:
  clip_px = float(clip_px)
  if not np.isfinite(clip_px) or clip_px <= 0:
    raise ValueError(f"clip_px must be a positive finite number of pixels, got {clip_px!r}")
  return clip_px


def step(clip_px: float = DEFAULT_CLIP_PX) -> float:
  """Returns the size of one quantisation step in pixels, 2c / 255."""
  return 2.0 * _check_clip(clip_px) / 255.0


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
  q = (np.clip(d, -c, c) + c) * np.float32(255.0 / (2.0 * c))
  return np.rint(q).astype(np.uint8)


def dequantize(q: np.ndarray, clip_px: float = DEFAULT_CLIP_PX) -> np.ndarray:
  """Maps uint8 codes back to float32 pixels, the exact inverse of the linear map in `quantize`.

  Args:
    q: uint8 codes, any shape.
    clip_px: the clip range c used when quantising.

  Returns:
    float32 array of the same shape, values in [-c, c].
  """
  c = _check_clip(clip_px)
  q = np.asarray(q)
  if q.dtype != np.uint8:
    raise ValueError(f"dequantize expects uint8 codes, got dtype {q.dtype}")
  return q.astype(np.float32) * np.float32(2.0 * c / 255.0) - np.float32(c)
