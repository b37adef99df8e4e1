"""The Threefry-2x32 hash (Salmon et al. 2011, 20 rounds) on uint32 NumPy arrays, bit-identical to jax's
`threefry2x32` primitive, and the (hi, lo) counter words of `iota_2x32_shape`: what `numpy_rules` evaluates jax's
random primitives with."""

from typing import Sequence, Tuple

import numpy as np

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))


def threefry2x32(k1, k2, x1, x2) -> Tuple[np.ndarray, np.ndarray]:
  """The Threefry-2x32 hash (20 rounds) of counts (x1, x2) under key (k1, k2), broadcast together: uint32 pair."""
  k1, k2, x1, x2 = (np.asarray(a, np.uint32) for a in (k1, k2, x1, x2))
  shape = np.broadcast_shapes(k1.shape, k2.shape, x1.shape, x2.shape)
  work = shape or (1,)
  ks = [k1, k2, k1 ^ k2 ^ np.uint32(0x1BD11BDA)]
  x = [np.array(np.broadcast_to(x1 + ks[0], work)), np.array(np.broadcast_to(x2 + ks[1], work))]
  tmp = np.empty(work, np.uint32)
  for i in range(5):
    for r in _ROTATIONS[i % 2]:
      np.add(x[0], x[1], out=x[0])
      np.left_shift(x[1], np.uint32(r), out=tmp)
      np.right_shift(x[1], np.uint32(32 - r), out=x[1])
      np.bitwise_or(x[1], tmp, out=x[1])
      np.bitwise_xor(x[1], x[0], out=x[1])
    np.add(x[0], ks[(i + 1) % 3], out=x[0])
    np.add(x[1], ks[(i + 2) % 3], out=x[1])
    np.add(x[1], np.uint32(i + 1), out=x[1])
  return x[0].reshape(shape), x[1].reshape(shape)


def iota_2x32_shape(shape: Sequence[int]) -> Tuple[np.ndarray, np.ndarray]:
  """(hi, lo) uint32 words of the row-major flat index over `shape`."""
  n = int(np.prod(shape, dtype=np.int64))
  if n <= 2 ** 32:
    return np.zeros(shape, np.uint32), np.arange(n, dtype=np.uint32).reshape(shape)
  counts = np.arange(n, dtype=np.uint64).reshape(shape)
  return (counts >> np.uint64(32)).astype(np.uint32), counts.astype(np.uint32)
