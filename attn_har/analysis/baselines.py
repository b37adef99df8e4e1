"""Parameter-free reference maps computed from the input itself, scored exactly like the attention maps.

A learned map earns the claim "it localises the actor" only when it beats what the input gives for free:
  flow_magnitude     flow stream: the mean length of the stack's motion vectors per pixel. On data where the actor
                     is the main moving thing this already finds it; a flow-stream map must beat it.
  frame_difference   RGB stream: |frame t+1 - frame t| averaged over colour channels (the cheapest motion cue).
  location_prior     the mean ground-truth mask of the training clips: where actors usually are (dataset bias).
The data-free references (centre bias, uniform, random) are in `attn_har.analysis.quality`.
"""

from typing import Sequence, Tuple

import cv2
import numpy as np


def flow_magnitude(flow: np.ndarray) -> np.ndarray:
  """Mean motion-vector length of flow stacks [..., H, W, 2L] (channels [u1, v1, ..., uL, vL]) -> [..., H, W]."""
  flow = np.asarray(flow, np.float32)
  if flow.ndim < 3 or flow.shape[-1] % 2:
    raise ValueError(f"flow must be [..., H, W, 2L] with an even channel count, got shape {flow.shape}")
  fields = flow.reshape(flow.shape[:-1] + (flow.shape[-1] // 2, 2))
  return np.sqrt((fields ** 2).sum(-1)).mean(-1)


def frame_difference(rgb: np.ndarray, rgb_next: np.ndarray) -> np.ndarray:
  """Mean absolute difference over channels of frames [..., H, W, C] and their next video frames -> [..., H, W]."""
  rgb, rgb_next = np.asarray(rgb, np.float32), np.asarray(rgb_next, np.float32)
  if rgb.shape != rgb_next.shape or rgb.ndim < 3:
    raise ValueError(f"frames {rgb.shape} and next frames {rgb_next.shape} must share one shape [..., H, W, C]")
  return np.abs(rgb_next - rgb).mean(-1)


def location_prior(masks: Sequence[np.ndarray], size: Tuple[int, int]) -> np.ndarray:
  """Mean of training masks, each resized (bilinear) to `size` = (H, W) -> [H, W] in [0, 1].

  Args:
    masks: ground-truth masks [M, h, w] (or a list of [h_i, w_i]); non-zero = actor.
    size: the evaluated frames' (H, W).
  """
  masks = list(masks)
  if not masks:
    raise ValueError("location_prior needs at least one training mask")
  h, w = size
  total = np.zeros((h, w), np.float64)
  for m in masks:
    m = (np.asarray(m) > 0.5).astype(np.float32)
    total += m if m.shape == (h, w) else cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR)
  return (total / len(masks)).astype(np.float32)
