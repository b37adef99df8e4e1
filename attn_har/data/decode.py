"""Robust video decoding with OpenCV (FFmpeg backend): every frame is decoded, RGB out.

The container's frame count is never used as the count (the HMDB51 AVI headers claim one frame more than
decodes); it is only a sanity check: a file whose header is implausible, or that decodes to fewer than
`min_fraction` of its header count (minus 2 frames of slack), is treated as corrupt or truncated. Frames can be
resized on the fly (`size`) so long 1080p clips do not hold full-resolution frames in memory;
`read_sampled_frames` keeps only selected frames (two decoding passes: count, then keep).
"""

import os
from typing import Callable, Optional, Sequence, Tuple

import cv2
import numpy as np

MIN_FRACTION = 0.95
_MAX_PLAUSIBLE_FRAMES = 10**8


class VideoDecodeError(ValueError):
  """A file could not be decoded as a video; the message names the file."""


def resize_cover(frame: np.ndarray, size: Sequence[int]) -> np.ndarray:
  """Resizes keeping the aspect ratio so the frame covers `size`, then centre-crops to it.

  Args:
    frame: [H, W, C] image.
    size: (height, width) of the output.

  Returns:
    [height, width, C] image (the input itself when it already has that size).
  """
  out_h, out_w = int(size[0]), int(size[1])
  h, w = frame.shape[:2]
  if (h, w) == (out_h, out_w):
    return frame
  scale = max(out_h / h, out_w / w)
  new_h, new_w = max(out_h, round(h * scale)), max(out_w, round(w * scale))
  interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
  frame = cv2.resize(frame, (new_w, new_h), interpolation=interp)
  top, left = (new_h - out_h) // 2, (new_w - out_w) // 2
  return frame[top:top + out_h, left:left + out_w]


def _open(path: str) -> Tuple[cv2.VideoCapture, float]:
  """Opens `path` with the FFmpeg backend; returns the capture and the header frame count."""
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise VideoDecodeError(f"video file not found: {path}")
  if os.path.getsize(path) == 0:
    raise VideoDecodeError(f"video file is empty (0 bytes): {path}")
  cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
  if not cap.isOpened():
    cap.release()
    raise VideoDecodeError(f"cannot open video (not a video, corrupt header or unsupported codec): {path}")
  header = cap.get(cv2.CAP_PROP_FRAME_COUNT)
  if not np.isfinite(header) or header < 1 or header > _MAX_PLAUSIBLE_FRAMES:
    cap.release()
    raise VideoDecodeError(f"implausible container frame count {header:g} (corrupt header or not a video): {path}")
  return cap, header


def _check_count(path: str, decoded: int, header: float, min_fraction: float) -> None:
  if decoded == 0:
    raise VideoDecodeError(f"no frame could be decoded (corrupt or not a video): {path}")
  if decoded < min_fraction * header - 2:
    raise VideoDecodeError(f"decoded only {decoded} of the {int(header)} frames its header declares "
                           f"(truncated or corrupt): {path}")


def _to_rgb(frame: np.ndarray, size: Optional[Sequence[int]]) -> np.ndarray:
  if size is not None:
    frame = resize_cover(frame, size)
  return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


def read_frames(path: str, size: Optional[Sequence[int]] = None, min_fraction: float = MIN_FRACTION) -> np.ndarray:
  """Decodes every frame of a video.

  Args:
    path: video file (AVI XviD/DivX, MP4 MPEG-4/H.264, ... anything FFmpeg reads).
    size: optional (height, width); each frame is cover-resized and centre-cropped to it while decoding.
    min_fraction: fewest decoded frames, as a fraction of the header count, before the file counts as truncated.

  Returns:
    uint8 [N, H, W, 3] RGB frames, N = frames actually decoded.

  Raises:
    VideoDecodeError: for a missing, empty, corrupt, truncated or non-video file (the message names it).
  """
  path = os.fspath(path)
  cap, header = _open(path)
  frames = []
  try:
    while True:
      ok, frame = cap.read()
      if not ok:
        break
      if frame is None or frame.ndim != 3 or frame.shape[2] != 3:
        raise VideoDecodeError(f"frame {len(frames)} has unexpected shape "
                               f"{None if frame is None else frame.shape}: {path}")
      frames.append(_to_rgb(frame, size))
  finally:
    cap.release()
  _check_count(path, len(frames), header, min_fraction)
  return np.stack(frames)


def header_frame_count(path: str) -> int:
  """Returns the frame count the container declares (a hint only; raises VideoDecodeError like `read_frames`)."""
  cap, header = _open(os.fspath(path))
  cap.release()
  return int(header)


def count_frames(path: str, min_fraction: float = MIN_FRACTION) -> int:
  """Returns the number of frames that actually decode (decodes without colour conversion)."""
  path = os.fspath(path)
  cap, header = _open(path)
  n = 0
  try:
    while cap.grab():
      n += 1
  finally:
    cap.release()
  _check_count(path, n, header, min_fraction)
  return n


def read_sampled_frames(path: str, select: Callable[[int], np.ndarray], size: Optional[Sequence[int]] = None,
                        min_fraction: float = MIN_FRACTION) -> Tuple[np.ndarray, int]:
  """Decodes a video keeping only the frames `select(N)` picks (memory: the kept frames only).

  Two passes: the first counts the decodable frames N, the second keeps frames `select(N)` (indices in [0, N),
  repeats allowed, any order).

  Returns:
    (uint8 [len(indices), H, W, 3] RGB frames in the order of the indices, N).
  """
  path = os.fspath(path)
  n = count_frames(path, min_fraction)
  indices = np.asarray(select(n), dtype=np.int64)
  if indices.ndim != 1 or len(indices) == 0 or indices.min() < 0 or indices.max() >= n:
    raise ValueError(f"select({n}) must return a non-empty 1-D array of indices in [0, {n}), got {indices}: {path}")
  wanted = set(indices.tolist())
  kept = {}
  cap, _ = _open(path)
  try:
    for i in range(int(indices.max()) + 1):
      if not cap.grab():
        raise VideoDecodeError(f"second decoding pass stopped at frame {i} of {n}: {path}")
      if i in wanted:
        ok, frame = cap.retrieve()
        if not ok or frame is None:
          raise VideoDecodeError(f"cannot retrieve frame {i}: {path}")
        kept[i] = _to_rgb(frame, size)
  finally:
    cap.release()
  return np.stack([kept[i] for i in indices.tolist()]), n
