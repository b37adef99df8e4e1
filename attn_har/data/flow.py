"""Dense optical flow between frame pairs (OpenCV), computed on grey frames.

`FLOW_METHODS` maps a name to a solver class; build one solver per worker process and call it for every pair
(the seed code built a new TV-L1 object per pair). Each returns float32 [H, W, 2] displacements (u = x, v = y) in
pixels, from the first frame to the second: a point at (x, y) in the first frame moves to (x + u, y + v) in the
second, so second(y + v, x + u) ≈ first(y, x).

  'tvl1'       Dual TV-L1 with OpenCV's defaults (the thesis's method; ~0.4 s per 320x240 pair on 2 threads).
  'dis'        DIS optical flow, medium preset (~5 ms per pair, close to TV-L1 on textured motion).
  'farneback'  Farnebäck polynomial expansion (~17 ms per pair).
  'farneback_small'  Farnebäck with a 9-pixel window, for small frames (the synthetic set's default).
"""

from typing import Dict, Optional

import cv2
import numpy as np

from attn_har.registry import lookup


def to_grey(frames: np.ndarray) -> np.ndarray:
  """Converts RGB uint8 [..., H, W, 3] frames to grey uint8 [..., H, W] (grey frames pass through)."""
  frames = np.asarray(frames)
  if frames.ndim >= 3 and frames.shape[-1] == 3:
    flat = frames.reshape(-1, *frames.shape[-3:])
    grey = np.stack([cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in flat])
    return grey.reshape(frames.shape[:-1])
  return frames


class _Solver:
  """Base: `solver(prev, next) -> float32 [H, W, 2]` for grey uint8 [H, W] frames."""

  name = ""

  def __call__(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
    if prev.shape != nxt.shape or prev.ndim != 2:
      raise ValueError(f"{self.name}: expected two grey frames of equal shape [H, W], got {prev.shape} and "
                       f"{nxt.shape}")
    flow = self._compute(np.ascontiguousarray(prev, np.uint8), np.ascontiguousarray(nxt, np.uint8))
    return np.asarray(flow, dtype=np.float32)

  def _compute(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
    raise NotImplementedError


class TVL1(_Solver):
  """Dual TV-L1 (Zach, Pock & Bischof 2007) with OpenCV's defaults unless overridden.

  Defaults: tau 0.25, lambda 0.15, theta 0.3, 5 scales, 5 warps, epsilon 0.01, 30 inner / 10 outer iterations,
  scale step 0.8, gamma 0, median filtering 5.
  """

  name = "tvl1"

  def __init__(self, **overrides):
    if not hasattr(cv2, "optflow"):
      raise ImportError("TV-L1 needs cv2.optflow: install opencv-contrib-python-headless")
    self._solver = cv2.optflow.DualTVL1OpticalFlow_create(**overrides)

  def _compute(self, prev, nxt):
    return self._solver.calc(prev, nxt, None)


class DIS(_Solver):
  """DIS optical flow (Kroeger et al. 2016), medium preset by default."""

  name = "dis"

  def __init__(self, preset: int = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM):
    self._solver = cv2.DISOpticalFlow_create(preset)

  def _compute(self, prev, nxt):
    return self._solver.calc(prev, nxt, None)


class Farneback(_Solver):
  """Farnebäck (2003) dense flow with OpenCV's commonly used parameters."""

  name = "farneback"

  def __init__(self, pyr_scale: float = 0.5, levels: int = 3, winsize: int = 15, iterations: int = 3,
               poly_n: int = 5, poly_sigma: float = 1.2, flags: int = 0):
    self._args = (pyr_scale, levels, winsize, iterations, poly_n, poly_sigma, flags)

  def _compute(self, prev, nxt):
    return cv2.calcOpticalFlowFarneback(prev, nxt, None, *self._args)


class FarnebackSmall(Farneback):
  """Farnebäck with a 9-pixel window for small frames: on the 64x64 synthetic clips it measures the actor's
  rotation (curl) and scaling (divergence) about twice as strongly as the 15-pixel window or DIS (medium preset),
  which average the ~20-pixel actor with the static background around it."""

  name = "farneback_small"

  def __init__(self, **overrides):
    super().__init__(**{"winsize": 9, **overrides})


FLOW_METHODS: Dict[str, type] = {
    "tvl1": TVL1,
    "dis": DIS,
    "farneback": Farneback,
    "farneback_small": FarnebackSmall,
}


def make_solver(method: str, **kwargs) -> _Solver:
  """Builds the solver registered under `method` (KeyError listing the valid names otherwise)."""
  return lookup(FLOW_METHODS, method, "flow method")(**kwargs)


def compute_pairs(solver: _Solver, frames: np.ndarray, pairs: np.ndarray,
                  out: Optional[np.ndarray] = None) -> np.ndarray:
  """Computes the flow of every frame pair once.

  Args:
    solver: from `make_solver`.
    frames: [T, H, W, 3] RGB or [T, H, W] grey uint8 frames.
    pairs: int [P, 2]; flow p goes from frame pairs[p, 0] to frame pairs[p, 1].
    out: optional float32 [P, H, W, 2] buffer.

  Returns:
    float32 [P, H, W, 2].
  """
  grey = to_grey(frames)
  pairs = np.asarray(pairs)
  if pairs.ndim != 2 or pairs.shape[1] != 2:
    raise ValueError(f"pairs must have shape [P, 2], got {pairs.shape}")
  if len(pairs) and (pairs.min() < 0 or pairs.max() >= len(grey)):
    raise ValueError(f"pair indices must lie in [0, {len(grey)}), got range [{pairs.min()}, {pairs.max()}]")
  if out is None:
    out = np.empty((len(pairs), *grey.shape[1:3], 2), np.float32)
  for p, (a, b) in enumerate(pairs.tolist()):
    out[p] = solver(grey[a], grey[b])
  return out
