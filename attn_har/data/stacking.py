"""Optical-flow stacking from stored frame pairs.

A stored clip holds RGB frames at video frames `frame_indices` [T] (row k is video frame v_k) and one flow field
per frame *pair* `pairs` [P, 2] of video frame indices (flow p goes from video frame pairs[p, 0] to pairs[p, 1]);
stacks are assembled at load time. The stack of row k has channels [u1, v1, ..., uL, vL]. Two choices define it:

Pairing, the frame grid a stack walks on (`PAIRINGS`):
  'video_frames' (Simonyan & Zisserman 2014, §3; the default): the L fields start at the sampled frame and join
      consecutive *video* frames: frames v_k, v_k + 1, ..., v_k + L. Pre-processing samples v_k so that
      v_k + L stays inside the video (`store_frames`), and a pair shared by overlapping stacks is computed once.
  'stored_frames' (the thesis's code): the fields join *stored* frames, rows k, k + 1, ..., k + L, i.e. video frames
      v_k, v_{k+1}, ..., v_{k+L}. With T = 25 frames sampled from a ~180-frame UCF101 clip they lie 7-8 video frames
      apart, so one L = 5 stack spans ~1.4 s at 7-8x the per-frame displacement. Kept to reproduce the thesis.
  Stores written before the pairing was recorded hold 'stored_frames' pairs in row units and no frame_indices;
  a missing frame_indices reads as v_k = k, for which both pairings coincide.

Stacking, the pairs within the walk (`STACKING_MODES`), with f_0..f_L the L + 1 frames of the walk:
  'consecutive': flow (f_{l-1} -> f_l), l = 1..L.
  'anchored' (the thesis's code): flow (f_0 -> f_l), growing gaps from one reference frame; about L times as many
      distinct pairs to compute.

Bidirectional stacks append the L backward fields after the L forward ones: [u1, v1, ..., uL, vL, u1', v1', ...,
uL', vL'] (4L channels), where the backward field of a forward pair (a -> b) is (b -> a).

`required_pairs`, `valid_starts`, `stack_indices` and `stack_flow` work in row units (v_k = k, where both pairings
coincide); `store_frames`, `required_video_pairs` and `stack_table` take the pairing and frame_indices.
"""

from typing import Dict, Optional, Tuple

import numpy as np

from attn_har.data import sampling

STACKING_MODES = ("consecutive", "anchored")
PAIRINGS = ("video_frames", "stored_frames")
DEFAULT_PAIRING = "video_frames"
LEGACY_PAIRING = "stored_frames"   # what a store without a recorded pairing holds


class MissingFlowPairError(ValueError):
  """A stack needs a frame pair whose flow is not in the stored pairs."""


def _check(num_frames: int, length: int, mode: str) -> None:
  if mode not in STACKING_MODES:
    raise ValueError(f"unknown stacking mode {mode!r}; valid choices: {', '.join(map(repr, STACKING_MODES))}")
  if length < 1:
    raise ValueError(f"stack length L must be >= 1, got {length}")
  if num_frames < length + 1:
    raise ValueError(f"a stack of length L={length} needs at least {length + 1} frames, got T={num_frames}")
  if num_frames > np.iinfo(np.int16).max:
    raise ValueError(f"T={num_frames} frames exceeds the int16 pair index range")


def valid_starts(num_frames: int, length: int) -> np.ndarray:
  """Returns the start rows s = 0..T-L-1 whose stack of length L fits in T rows (same for both modes)."""
  _check(num_frames, length, "consecutive")
  return np.arange(num_frames - length, dtype=np.int64)


def _forward_pairs(start: int, length: int, mode: str) -> list:
  if mode == "consecutive":
    return [(start + l - 1, start + l) for l in range(1, length + 1)]
  return [(start, start + l) for l in range(1, length + 1)]


def stack_pairs(start: int, length: int, mode: str = "consecutive", bidirectional: bool = False) -> np.ndarray:
  """Returns the frame pairs [L, 2] (or [2L, 2] bidirectional) of one stack, in channel order."""
  fwd = _forward_pairs(int(start), int(length), mode)
  if bidirectional:
    fwd = fwd + [(b, a) for a, b in fwd]
  return np.asarray(fwd, dtype=np.int16).reshape(-1, 2)


def required_pairs(num_frames: int, length: int, mode: str = "consecutive",
                   bidirectional: bool = False) -> np.ndarray:
  """Returns every distinct frame pair needed by the stacks of all valid starts, in row units (v_k = k).

  Args:
    num_frames: T, frames per clip.
    length: L, flow fields per stack.
    mode: 'consecutive' or 'anchored'.
    bidirectional: also the backward pairs (b -> a).

  Returns:
    int16 array [P, 2], sorted lexicographically; P = T - 1 (consecutive) or (T - L) * L (anchored), doubled if
    bidirectional.
  """
  _check(num_frames, length, mode)
  pairs = set()
  for s in valid_starts(num_frames, length):
    pairs.update(map(tuple, stack_pairs(int(s), length, mode, bidirectional).tolist()))
  return np.asarray(sorted(pairs), dtype=np.int16).reshape(-1, 2)


def pair_index(pairs: np.ndarray) -> Dict[Tuple[int, int], int]:
  """Maps each stored pair (a, b) to its row in `pairs` [P, 2]."""
  pairs = np.asarray(pairs)
  if pairs.ndim != 2 or pairs.shape[1] != 2:
    raise ValueError(f"pairs must have shape [P, 2], got {pairs.shape}")
  return {(int(a), int(b)): p for p, (a, b) in enumerate(pairs.tolist())}


def stack_indices(pairs: np.ndarray, start: int, length: int, mode: str = "consecutive",
                  bidirectional: bool = False) -> np.ndarray:
  """Returns the rows of `pairs` [P, 2] that one stack reads, in channel order ([L] or [2L] int64).

  Lets a reader gather only these rows from a memory-mapped flow array.

  Raises:
    MissingFlowPairError: naming the first needed pair that is not stored.
  """
  if mode not in STACKING_MODES:
    raise ValueError(f"unknown stacking mode {mode!r}; valid choices: {', '.join(map(repr, STACKING_MODES))}")
  if length < 1 or start < 0:
    raise ValueError(f"need start >= 0 and L >= 1, got start={start}, L={length}")
  index = pair_index(pairs)
  rows = []
  for a, b in stack_pairs(start, length, mode, bidirectional).tolist():
    if (a, b) not in index:
      raise MissingFlowPairError(
          f"flow pair ({a} -> {b}) needed by the {mode} stack at start {start} with L={length}"
          f"{' (bidirectional)' if bidirectional else ''} is not among the {len(index)} stored pairs; "
          f"re-run preprocess with a matching --stacking/--length/--bidirectional")
    rows.append(index[(a, b)])
  return np.asarray(rows, dtype=np.int64)


def stack_flow(flow: np.ndarray, pairs: np.ndarray, start: int, length: int, mode: str = "consecutive",
               bidirectional: bool = False) -> np.ndarray:
  """Builds one flow stack from stored pair fields.

  Args:
    flow: [P, H, W, 2] per-pair flow (float, or uint8 codes: the dtype is kept, so dequantise before or after).
    pairs: [P, 2] frame pairs of `flow`.
    start: first frame s of the stack.
    length: L.
    mode: 'consecutive' or 'anchored'.
    bidirectional: append the backward fields.

  Returns:
    [H, W, 2L] (or [H, W, 4L]) with channels [u1, v1, ..., uL, vL] (then the backward ones).

  Raises:
    MissingFlowPairError: if a needed pair is not stored.
  """
  if flow.ndim != 4 or flow.shape[-1] != 2:
    raise ValueError(f"flow must have shape [P, H, W, 2], got {flow.shape}")
  if len(flow) != len(pairs):
    raise ValueError(f"flow has {len(flow)} fields but pairs has {len(pairs)} rows")
  rows = stack_indices(pairs, start, length, mode, bidirectional)
  fields = flow[rows]                                          # [K, H, W, 2]
  k, h, w, _ = fields.shape
  return np.ascontiguousarray(fields.transpose(1, 2, 0, 3)).reshape(h, w, 2 * k)


def _check_pairing(pairing: str) -> None:
  if pairing not in PAIRINGS:
    raise ValueError(f"unknown pairing {pairing!r}; valid choices: {', '.join(map(repr, PAIRINGS))}")


def store_frames(num_video_frames: int, count: int, length: int, pairing: str = DEFAULT_PAIRING) -> np.ndarray:
  """The video frames a store keeps as RGB rows (int64 [T'], non-decreasing).

  'video_frames': every frame when count >= N (a synthetic clip is its own video: stacks start at frames
  0..N-L-1), else ⌊k·(N - L)/T⌋ so that each sampled frame has its L successors (`sampling.clamped_uniform_indices`).
  'stored_frames': ⌊k·N/T⌋ (`sampling.uniform_indices`, repeats in clips shorter than T).

  Raises:
    ValueError: an unknown pairing, or a clip too short for one stack (N < L + 1, or T < L + 1 stored frames).
  """
  _check_pairing(pairing)
  if pairing == "stored_frames":
    _check(count, length, "consecutive")
    return sampling.uniform_indices(num_video_frames, count)
  if num_video_frames < length + 1:
    raise ValueError(f"a flow stack of L={length} consecutive video frames needs at least {length + 1} frames, "
                     f"the clip has {num_video_frames}; use a smaller --length or drop the clip")
  if count >= num_video_frames:
    return np.arange(num_video_frames, dtype=np.int64)
  return sampling.clamped_uniform_indices(num_video_frames, count, length)


def row_pairs(frame_indices: np.ndarray, row: int, length: int, mode: str = "consecutive",
              pairing: str = DEFAULT_PAIRING, bidirectional: bool = False) -> Optional[np.ndarray]:
  """The video-frame pairs [L, 2] (or [2L, 2]) of the stack of stored row `row`, in channel order.

  None for 'stored_frames' when rows row..row+L do not all exist.
  """
  _check_pairing(pairing)
  frame_indices = np.asarray(frame_indices, np.int64)
  if pairing == "video_frames":
    return stack_pairs(int(frame_indices[row]), length, mode, bidirectional).astype(np.int64)
  if row + length >= len(frame_indices):
    return None
  return frame_indices[stack_pairs(row, length, mode, bidirectional).astype(np.int64)]


def required_video_pairs(frame_indices: np.ndarray, num_video_frames: int, length: int, mode: str = "consecutive",
                         pairing: str = DEFAULT_PAIRING, bidirectional: bool = False) -> np.ndarray:
  """Every distinct video-frame pair that the stacks of the stored rows need, each once.

  Rows whose stack would leave the video (v_k + L > N - 1) or the stored rows get none.

  Returns:
    int32 [P, 2] video frame indices, sorted lexicographically.
  """
  if mode not in STACKING_MODES:
    raise ValueError(f"unknown stacking mode {mode!r}; valid choices: {', '.join(map(repr, STACKING_MODES))}")
  pairs = set()
  for row in range(len(frame_indices)):
    rp = row_pairs(frame_indices, row, length, mode, pairing, bidirectional)
    if rp is not None and rp.max() < num_video_frames:
      pairs.update(map(tuple, rp.tolist()))
  return np.asarray(sorted(pairs), dtype=np.int32).reshape(-1, 2)


def stack_table(frame_indices: np.ndarray, pairs: np.ndarray, length: int, mode: str = "consecutive",
                pairing: str = DEFAULT_PAIRING, bidirectional: bool = False) -> Tuple[np.ndarray, np.ndarray]:
  """The stored rows whose whole stack is stored, and the rows of `pairs` each stack reads.

  Args:
    frame_indices: [T] video frame of each stored row.
    pairs: [P, 2] stored video-frame pairs.
    length, mode, pairing, bidirectional: the stack.

  Returns:
    (starts int64 [V], pair_rows int64 [V, K]): K = L (2L bidirectional), channel order.
  """
  if mode not in STACKING_MODES:
    raise ValueError(f"unknown stacking mode {mode!r}; valid choices: {', '.join(map(repr, STACKING_MODES))}")
  if length < 1:
    raise ValueError(f"stack length L must be >= 1, got {length}")
  index = pair_index(pairs)
  starts, table = [], []
  for row in range(len(frame_indices)):
    rp = row_pairs(frame_indices, row, length, mode, pairing, bidirectional)
    if rp is None:
      continue
    rows = [index.get((a, b)) for a, b in rp.tolist()]
    if None not in rows:
      starts.append(row)
      table.append(rows)
  k = length * (2 if bidirectional else 1)
  return np.asarray(starts, np.int64), np.asarray(table, np.int64).reshape(-1, k)
