"""Small Grain ops of the video pipeline, applied in this order (see `pipeline.py`):

  SampleClip      uint8 clip -> num_frames RGB frames and, at the same start frames, flow stacks (uint8 codes),
                  their masks and the flow stacks' masks (`flow_mask`)
  RandomCrop      train: one random square-ish box (area scale, aspect jitter) for all frames and both streams
  FixedCrop       eval: centre crop, or one of 3 crops along the long side (`element['view']`)
  ToFloat         RGB -> [-1, 1] (resnet_v2 preprocessing), flow codes -> pixels / flow_scale, masks -> float32
  Resize          every frame to image_size; flow vectors scaled by the resize factor (optional)
  RandomFlip      train: horizontal flip of all frames; negates the u channels (even indices) of the flow

Every random op draws from the `rng` Grain passes per record, never from global state, so the same seed gives
the same batches whatever the worker count's scheduling. Elements are dicts; the ops copy, never mutate.
Time axis conventions: rgb [T, H, W, 3], flow [T, H, W, 2L] (channels [u1, v1, ..., uL, vL]), mask and flow_mask
[T, H, W]. The spatial ops treat every key of `FRAME_KEYS` alike.
"""

import dataclasses
import math
from typing import Optional, Tuple

import cv2
import grain
import numpy as np

from attn_har.data import quantize as quantize_lib
from attn_har.data import sampling
from attn_har.data import stacking
from attn_har.data.stacking import DEFAULT_PAIRING

# Per-frame arrays [T, H, W, ...] that crops, resizes and flips apply to.
FRAME_KEYS = ("rgb", "flow", "mask", "flow_mask", "rgb_next")


def view_indices(num_starts: int, count: int, view: int = 0, views: int = 1) -> np.ndarray:
  """Deterministic TSN test sampling with several temporal views.

  The `num_starts` candidates are cut into `count` segments as in `sampling.segment_indices`; view v of V takes
  the position (2v + 1) / (2V) of the way through each segment (V = 1: the segment centre).
  """
  starts = sampling.uniform_indices(num_starts, count)
  ends = (np.arange(1, count + 1, dtype=np.int64) * num_starts) // count
  lengths = np.maximum(ends - starts, 1)
  return np.minimum(starts + ((2 * view + 1) * lengths) // (2 * views), num_starts - 1)


@dataclasses.dataclass(frozen=True)
class SampleClip(grain.transforms.RandomMap):
  """Picks `num_frames` start frames among those with a whole stored flow stack and gathers RGB frames, flow stacks
  and masks there.

  The element's rows are stored frames at video frames `frame_indices` [F] (absent: rows 0..F-1 are the video);
  its `pairs` [P, 2] name the video frames each stored field joins (`attn_har.data.stacking`). The candidates are
  the rows whose stack of length L (with `pairing`, `stacking`, `bidirectional`) is stored: with 'video_frames'
  every sampled frame of a real clip, with 'stored_frames' rows 0..F-L-1 (all F rows when no flow is read). RGB
  frame t, flow stack t, mask t and flow_mask t all belong to start row s_t.

  `flow_mask` [T, H, W] (with 'mask' and flow): for stack t the union of the masks of the frames its fields are
  defined on, i.e. the first frame of each of its pairs: frames s..s+L-1 of the walk for forward stacks (a field
  a -> b gives, at each pixel of frame a, where it moves in b, so the actor's motion lies on its pixels in frame a;
  frame s+L is only a target), plus s+1..s+L for the backward fields (b -> a) of bidirectional stacks. Each of
  those frames' masks must be stored (a synthetic clip stores every frame).

  Attributes:
    num_frames: T, frames per item.
    flow_length: L (0 when the flow stream is not read).
    stacking: 'consecutive' or 'anchored', must match the store's pairs.
    bidirectional: read backward fields too (4L channels).
    train: random position per segment (TSN); otherwise temporal view `element['view'] // crops` of `views`.
    views: temporal views per clip in evaluation.
    crops: spatial crops per temporal view in evaluation (see `FixedCrop`).
    pairing: 'video_frames' or 'stored_frames' (`stacking.PAIRINGS`), must match the store's.
    next_rgb: also gather `rgb_next` [T, H, W, 3], the video frame after each RGB frame (analysis: the frame-
      difference reference map); it must be stored, as in a synthetic store, which keeps every frame.
  """
  num_frames: int
  flow_length: int
  stacking: str = "consecutive"
  bidirectional: bool = False
  train: bool = True
  views: int = 1
  crops: int = 1
  pairing: str = DEFAULT_PAIRING
  next_rgb: bool = False

  def _candidates(self, element):
    """(start rows [V], rows of `pairs` each stack reads [V, K] or None)."""
    frames = int(element["frames"])
    if not self.flow_length:
      return np.arange(frames), None
    if "pairs" not in element:
      return np.arange(max(0, frames - self.flow_length)), None
    video = element.get("frame_indices")
    video = np.arange(frames) if video is None else np.asarray(video)
    return stacking.stack_table(video, element["pairs"], self.flow_length, self.stacking, self.pairing,
                                self.bidirectional)

  def random_map(self, element, rng: np.random.Generator):
    rows, table = self._candidates(element)
    if len(rows) < 1:
      raise ValueError(f"clip {element.get('id')!r} has {element['frames']} stored frames, too few for flow stacks "
                       f"of length {self.flow_length} (no whole {self.pairing} {self.stacking} stack is stored); "
                       f"re-run preprocess with a matching --pairing/--stacking/--length/--bidirectional")
    if self.train:
      pick = sampling.segment_indices(len(rows), self.num_frames, rng)
    else:
      pick = view_indices(len(rows), self.num_frames, int(element.get("view", 0)) // self.crops, self.views)
    starts = rows[pick]
    drop = ("rgb", "flow", "pairs", "mask", "frame_indices")
    out = {k: v for k, v in element.items() if k not in drop}
    if "rgb" in element:
      out["rgb"] = element["rgb"][starts]
      if self.next_rgb:
        out["rgb_next"] = element["rgb"][_next_rows(element, starts)]
    if "mask" in element:
      out["mask"] = element["mask"][starts]
    if "flow" in element and table is not None:
      fields = element["flow"][table[pick]]                              # [T, K, H, W, 2]
      t, k, h, w, _ = fields.shape
      out["flow"] = np.ascontiguousarray(fields.transpose(0, 2, 3, 1, 4)).reshape(t, h, w, 2 * k)
      if "mask" in element:
        out["flow_mask"] = _flow_mask(element, table[pick])
    out["starts"] = starts.astype(np.int32)
    return out


def _stored_rows(element, video_frames: np.ndarray, needs: str) -> np.ndarray:
  """The stored rows holding video frames `video_frames` (int array, any shape): same shape, int64.

  Raises:
    ValueError: a frame the store does not hold, naming the clip and what `needs` it.
  """
  video = element.get("frame_indices")
  video = np.arange(len(element["rgb"] if "rgb" in element else element["mask"])) if video is None else video
  row_of = {}
  for row, v in enumerate(np.asarray(video).tolist()):
    row_of.setdefault(v, row)
  video_frames = np.asarray(video_frames)
  missing = sorted({v for v in video_frames.ravel().tolist() if v not in row_of})
  if missing:
    raise ValueError(f"clip {element.get('id')!r}: {needs} video frames {missing[:5]}, which the store does not "
                     f"hold (it keeps its sampled frames only); build it with every frame stored (--frames at least "
                     f"the clip's frame count)")
  return np.asarray([row_of[v] for v in video_frames.ravel().tolist()], np.int64).reshape(video_frames.shape)


def _next_rows(element, rows: np.ndarray) -> np.ndarray:
  """The stored rows [T] of the video frames right after stored rows `rows` [T]."""
  video = element.get("frame_indices")
  video = np.arange(len(element["rgb"])) if video is None else np.asarray(video)
  return _stored_rows(element, video[rows] + 1, "the frame difference needs")


def _flow_mask(element, pair_rows: np.ndarray) -> np.ndarray:
  """The union of the masks of the first frames of the pairs `pair_rows` [T, K] reads: uint8 [T, H, W]."""
  sources = np.asarray(element["pairs"])[pair_rows, 0]                     # [T, K] video frames
  return element["mask"][_stored_rows(element, sources, "the flow stacks' mask needs the masks of")].max(axis=1)


def _frame_size(element) -> Tuple[int, int]:
  key = "rgb" if "rgb" in element else "flow"
  return element[key].shape[1], element[key].shape[2]


def _crop(element, top: int, left: int, h: int, w: int):
  out = dict(element)
  for key in FRAME_KEYS:
    if key in element:
      out[key] = element[key][:, top:top + h, left:left + w]
  out["crop_hw"] = np.asarray([h, w], np.int32)
  return out


@dataclasses.dataclass(frozen=True)
class RandomCrop(grain.transforms.RandomMap):
  """One random box for all frames and both streams (Inception-style area and aspect jitter).

  Attributes:
    scale: (min, max) box area as a fraction of the largest centred square.
    aspect: (min, max) box width / height, drawn log-uniformly.
  """
  scale: Tuple[float, float] = (0.5, 1.0)
  aspect: Tuple[float, float] = (0.75, 1.333)

  def random_map(self, element, rng: np.random.Generator):
    h, w = _frame_size(element)
    side = min(h, w)
    area = rng.uniform(*self.scale) * side * side
    ratio = math.exp(rng.uniform(math.log(self.aspect[0]), math.log(self.aspect[1])))
    cw = int(min(w, max(1, round(math.sqrt(area * ratio)))))
    ch = int(min(h, max(1, round(math.sqrt(area / ratio)))))
    top = int(rng.integers(0, h - ch + 1))
    left = int(rng.integers(0, w - cw + 1))
    return _crop(element, top, left, ch, cw)


@dataclasses.dataclass(frozen=True)
class FixedCrop(grain.transforms.Map):
  """The largest centred square, or with `crops=3` the left / centre / right (top / centre / bottom) square.

  The crop of an element is `element['view'] % crops`.
  """
  crops: int = 1

  def __post_init__(self):
    if self.crops not in (1, 3):
      raise ValueError(f"crops must be 1 or 3, got {self.crops}")

  def map(self, element):
    h, w = _frame_size(element)
    side = min(h, w)
    frac = 0.5 if self.crops == 1 else (int(element.get("view", 0)) % 3) / 2
    top, left = ((h - side) // 2, int(round((w - side) * frac))) if w >= h else (int(round((h - side) * frac)),
                                                                                  (w - side) // 2)
    return _crop(element, top, left, side, side)


@dataclasses.dataclass(frozen=True)
class ToFloat(grain.transforms.Map):
  """RGB (and rgb_next) uint8 -> x / 127.5 - 1; flow codes -> dequantised pixels / flow_scale; masks -> float32;
  label -> int32."""
  clip_px: float = quantize_lib.DEFAULT_CLIP_PX
  flow_scale: float = 1.0

  def map(self, element):
    out = dict(element)
    for key in ("rgb", "rgb_next"):
      if key in element:
        out[key] = element[key].astype(np.float32) * np.float32(1 / 127.5) - np.float32(1.0)
    if "flow" in element:
      out["flow"] = quantize_lib.dequantize(element["flow"], self.clip_px) / np.float32(self.flow_scale)
    for key in ("mask", "flow_mask"):
      if key in element:
        out[key] = element[key].astype(np.float32)
    out["label"] = np.int32(element["label"])
    return out


def _resize_frames(x: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
  """Resizes [T, H, W, C] or [T, H, W] float32 frames to `size` (h, w): area when shrinking, bilinear otherwise.

  OpenCV's area resize takes at most 4 channels and the others at most 511, so channels go in groups of that size.
  """
  t, h, w = x.shape[:3]
  if (h, w) == tuple(size):
    return x
  shrink = size[0] <= h and size[1] <= w
  interp, group = (cv2.INTER_AREA, 4) if shrink else (cv2.INTER_LINEAR, 511)
  out = np.empty((t, size[0], size[1]) + x.shape[3:], x.dtype)
  c = x.shape[3] if x.ndim == 4 else 1
  for i in range(t):
    if c <= group:
      out[i] = cv2.resize(x[i], (size[1], size[0]), interpolation=interp).reshape(out.shape[1:])
    else:
      for j in range(0, c, group):
        part = np.ascontiguousarray(x[i, ..., j:j + group])
        out[i, ..., j:j + group] = cv2.resize(part, (size[1], size[0]), interpolation=interp).reshape(
            size[0], size[1], -1)
  return out


@dataclasses.dataclass(frozen=True)
class Resize(grain.transforms.Map):
  """Resizes rgb, flow and the masks to image_size; with `rescale_flow` the flow vectors follow the pixel grid."""
  image_size: Tuple[int, int]
  rescale_flow: bool = True

  def map(self, element):
    out = dict(element)
    h, w = _frame_size(element)
    size = tuple(int(s) for s in self.image_size)
    for key in FRAME_KEYS:
      if key in element:
        out[key] = _resize_frames(element[key], size)
    if "flow" in element and self.rescale_flow and (h, w) != size:
      factor = np.tile(np.asarray([size[1] / w, size[0] / h], np.float32), out["flow"].shape[-1] // 2)
      out["flow"] = out["flow"] * factor
    return out


def flip(element):
  """Horizontal flip of every frame; the flow's u channels (even indices) change sign."""
  out = dict(element)
  for key in FRAME_KEYS:
    if key in element:
      out[key] = np.ascontiguousarray(element[key][:, :, ::-1])
  if "flow" in element:
    out["flow"][..., 0::2] *= -1
  out["flipped"] = np.int32(1)
  return out


@dataclasses.dataclass(frozen=True)
class RandomFlip(grain.transforms.RandomMap):
  """Flips the whole item (all frames, both streams) with probability `prob`; records it in 'flipped'."""
  prob: float = 0.5

  def random_map(self, element, rng: np.random.Generator):
    if rng.random() < self.prob:
      return flip(element)
    out = dict(element)
    out["flipped"] = np.int32(0)
    return out


@dataclasses.dataclass(frozen=True)
class SelectKeys(grain.transforms.Map):
  """Keeps only `keys` (drops the bookkeeping of earlier ops) so batches have a fixed structure."""
  keys: Tuple[str, ...]
  optional: Optional[Tuple[str, ...]] = ()

  def map(self, element):
    out = {k: element[k] for k in self.keys}
    out.update({k: element[k] for k in self.optional if k in element})
    return out
