"""Pieces shared by the layers written for XLA:CPU: the strided window slice and the 'auto'-by-backend choice."""

import jax
from jax import lax


def window_slice(x: jax.Array, offset: tuple[int, int], strides: tuple[int, int], out_hw: tuple[int, int]) -> jax.Array:
  """x[:, i::sh, j::sw][:, :Ho, :Wo] for x [B, H, W, C], offset (i, j): the inputs that window position (i, j) of
  every output pixel reads, [B, Ho, Wo, C]."""
  (i, j), (sh, sw), (ho, wo), b, c = offset, strides, out_hw, x.shape[0], x.shape[-1]
  return lax.slice(x, (0, i, j, 0), (b, i + sh * (ho - 1) + 1, j + sw * (wo - 1) + 1, c), (1, sh, sw, 1))


def resolve_by_backend(choice: str, choices: tuple[str, ...], on_cpu: str, elsewhere: str, what: str) -> str:
  """'auto' -> `on_cpu` on the CPU backend, `elsewhere` otherwise; other names are checked against `choices` (a
  ValueError names `what` and the valid choices) and returned."""
  if choice not in choices:
    raise ValueError(f"unknown {what} {choice!r}; valid choices: {', '.join(choices)}")
  if choice == "auto":
    return on_cpu if jax.default_backend() == "cpu" else elsewhere
  return choice
