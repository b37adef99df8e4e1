"""Optical-flow stacking from stored frame pairs.

The store keeps one flow field per frame *pair* (`pairs[p] = (a, b)`: flow p goes from frame a to frame b); stacks
are assembled at load time. For T frames and stack length L, a stack starts at frame s with
0 <= s <= T - L - 1 (`valid_starts`, T - L starts, the thesis's 25 - L stacks), and its channels are
[u1, v1, ..., uL, vL] with, for l = 1..L:

  'consecutive' (Simonyan & Zisserman 2014, the default): flow (s + l - 1 -> s + l). Every stack of every start
      uses only the T - 1 consecutive pairs, for any L.
  'anchored' (the thesis's code): flow (s -> s + l), growing gaps from one reference frame. This needs
      (T - L) * L distinct pairs, about L times as many to compute.

Bidirectional stacks append the L backward fields after the L forward ones: [u1, v1, ..., uL, vL, u1', v1', ...,
uL', vL'] (4L channels), where the backward field of a forward pair (a -> b) is (b -> a).
"""

from typing import Dict, Tuple

import numpy as np

STACKING_MODES = ("consecutive", "anchored")


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
  """Returns the start frames s = 0..T-L-1 whose stack of length L fits in T frames (same for both modes)."""
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
  """Returns every distinct frame pair needed by the stacks of all valid starts.

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
