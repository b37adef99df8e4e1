"""Heat-map overlays on frames and the colour coding of optical flow.

Overlays: the frame is brought to [0, 1], the map is resized to it and min-max normalised (`combine.normalize`),
coloured with a matplotlib colormap (default 'inferno', as the thesis), and blended as
(1 - alpha) * frame + alpha * heat, alpha = 0.7 by default (the thesis's 0.3 / 0.7 `cv2.addWeighted`).

Flow: a field [H, W, 2] of (u, v) displacements in pixels is shown with the Middlebury colour wheel (Baker et al.,
"A Database and Evaluation Methodology for Optical Flow", IJCV 2011): hue = direction, saturation = magnitude
relative to a maximum; zero motion is white.
"""

from typing import Optional

import numpy as np
from matplotlib import colormaps

from attn_har.analysis import combine


def to_unit_image(frame: np.ndarray) -> np.ndarray:
  """Returns a float32 [H, W, 3] image in [0, 1].

  uint8 frames are divided by 255; float frames already in [0, 1] are kept; any other float range (e.g. the
  [-1, 1] of `resnet_v2` pre-processing) is min-max normalised over the whole frame. One-channel frames are
  repeated to three.

  Args:
    frame: [H, W], [H, W, 1] or [H, W, 3].
  """
  frame = np.asarray(frame)
  if frame.ndim == 2:
    frame = frame[..., None]
  if frame.ndim != 3 or frame.shape[-1] not in (1, 3):
    raise ValueError(f"frame must be [H, W], [H, W, 1] or [H, W, 3], got shape {frame.shape}")
  if frame.shape[-1] == 1:
    frame = np.repeat(frame, 3, axis=-1)
  if frame.dtype == np.uint8:
    return frame.astype(np.float32) / 255.0
  x = frame.astype(np.float32)
  finite = x[np.isfinite(x)]
  if finite.size and finite.min() >= 0.0 and finite.max() <= 1.0:
    return np.nan_to_num(x, nan=0.0)
  lo, hi = (finite.min(), finite.max()) if finite.size else (0.0, 0.0)
  if hi - lo <= combine.EPS:
    return np.zeros_like(x)
  return np.clip(np.nan_to_num((x - lo) / (hi - lo), nan=0.0), 0.0, 1.0)


def colorize(heat: np.ndarray, cmap: str = "inferno") -> np.ndarray:
  """Maps a 2-D map through a matplotlib colormap after NaN-safe min-max; returns float32 [H, W, 3] in [0, 1]."""
  heat = combine.normalize(heat)
  if heat.ndim != 2:
    raise ValueError(f"heat must be one map [H, W], got shape {heat.shape}")
  return colormaps[cmap](heat)[..., :3].astype(np.float32)


def overlay(frame: np.ndarray, heat: np.ndarray, alpha: float = 0.7, cmap: str = "inferno") -> np.ndarray:
  """Blends a coloured heat map onto a frame.

  Args:
    frame: [H, W, 3] (or [H, W] / [H, W, 1]) frame, any range (see `to_unit_image`).
    heat: [h, w] map, any range; resized bilinearly to the frame.
    alpha: weight of the heat map, in [0, 1].
    cmap: matplotlib colormap name.

  Returns:
    uint8 [H, W, 3].
  """
  if not 0.0 <= alpha <= 1.0:
    raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
  image = to_unit_image(frame)
  heat = combine.resize(heat, image.shape[:2])
  blended = (1.0 - alpha) * image + alpha * colorize(heat, cmap)
  return to_uint8(blended)


def to_uint8(image: np.ndarray) -> np.ndarray:
  """[0, 1] float image -> uint8, rounding and clipping."""
  return np.clip(np.round(np.asarray(image, np.float32) * 255.0), 0, 255).astype(np.uint8)


def _color_wheel() -> np.ndarray:
  """The Middlebury colour wheel: 55 RGB hues in [0, 255], red -> yellow -> green -> cyan -> blue -> magenta."""
  segments = ((15, (255, 0, 0), (255, 255, 0)), (6, (255, 255, 0), (0, 255, 0)), (4, (0, 255, 0), (0, 255, 255)),
              (11, (0, 255, 255), (0, 0, 255)), (13, (0, 0, 255), (255, 0, 255)), (6, (255, 0, 255), (255, 0, 0)))
  rows = []
  for n, start, end in segments:
    t = np.arange(n, dtype=np.float64)[:, None] / n
    rows.append(np.asarray(start, np.float64) * (1 - t) + np.asarray(end, np.float64) * t)
  return np.concatenate(rows)


def flow_to_color(flow: np.ndarray, max_magnitude: Optional[float] = None) -> np.ndarray:
  """Colour-codes a flow field with the Middlebury wheel.

  Hue encodes the direction of (u, v) (u to the right, v downwards, image convention), saturation the magnitude
  divided by `max_magnitude`; zero motion is white, motion at `max_magnitude` or above fully saturated.

  Args:
    flow: [H, W, 2] displacements (u, v) in pixels; non-finite values count as zero motion.
    max_magnitude: magnitude shown fully saturated; default the field's largest finite magnitude.

  Returns:
    uint8 [H, W, 3].
  """
  flow = np.asarray(flow, dtype=np.float64)
  if flow.ndim != 3 or flow.shape[-1] != 2:
    raise ValueError(f"flow must be [H, W, 2] (u, v), got shape {flow.shape}")
  flow = np.where(np.isfinite(flow), flow, 0.0)
  u, v = flow[..., 0], flow[..., 1]
  mag = np.hypot(u, v)
  if max_magnitude is None:
    max_magnitude = float(mag.max())
  if max_magnitude < 0:
    raise ValueError(f"max_magnitude must be non-negative, got {max_magnitude}")
  rad = np.clip(mag / max(max_magnitude, combine.EPS), 0.0, 1.0)
  wheel = _color_wheel()
  n = len(wheel)
  angle = np.arctan2(-v, -u) / np.pi  # in [-1, 1]
  pos = (angle + 1.0) / 2.0 * (n - 1)
  k0 = np.floor(pos).astype(int)
  k1 = (k0 + 1) % n
  f = (pos - k0)[..., None]
  col = ((1 - f) * wheel[k0] + f * wheel[k1]) / 255.0
  col = 1.0 - rad[..., None] * (1.0 - col)
  return to_uint8(col)


def flow_stack_to_color(stack: np.ndarray, index: Optional[int] = None,
                        max_magnitude: Optional[float] = None) -> np.ndarray:
  """Colour-codes one field of a stacked flow input [H, W, 2L] ([u1, v1, ..., uL, vL]).

  Args:
    stack: [H, W, 2L] flow stack.
    index: which of the L fields (default the middle one, L // 2).
    max_magnitude: see `flow_to_color`; default the largest magnitude over the whole stack, so fields of one
      stack share a scale.
  """
  stack = np.asarray(stack, dtype=np.float32)
  if stack.ndim != 3 or stack.shape[-1] % 2 or stack.shape[-1] == 0:
    raise ValueError(f"flow stack must be [H, W, 2L] with L >= 1, got shape {stack.shape}")
  num = stack.shape[-1] // 2
  index = num // 2 if index is None else int(index)
  if not 0 <= index < num:
    raise ValueError(f"flow field index {index} out of range for a stack of {num} fields")
  if max_magnitude is None:
    fields = np.where(np.isfinite(stack), stack, 0.0).reshape(stack.shape[:2] + (num, 2))
    max_magnitude = float(np.hypot(fields[..., 0], fields[..., 1]).max())
  return flow_to_color(stack[..., 2 * index:2 * index + 2], max_magnitude)
