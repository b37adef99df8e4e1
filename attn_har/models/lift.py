"""A per-frame image module lifted over the time axis of a clip.

`lift(frame, x, train)` applies an image module (input [B, H, W, C]) to every frame of a clip [B, T, H, W, C] with
the same parameters and returns the per-frame outputs stacked on axis 1 ([B, T, ...]). Two equivalent lifts:

  'vmap': `nn.vmap` over axis 1: `train` is passed positionally (`in_axes=(1, None)`; flax drops keyword
      arguments of a vmapped call), parameters and BatchNorm statistics are shared (`variable_axes` None), sown
      intermediates stack on the time axis, and dropout draws a fresh mask per frame. Shared BatchNorm statistics
      need every BatchNorm of the frame module to reduce over the vmap axis (`axis_name='time'`, `LIFT_AXIS`);
      only then does 'vmap' equal 'fold'.
  'fold': reshape [B, T, ...] -> [B*T, ...], apply, reshape back. Exactly the same numbers as 'vmap' with a
      time-reducing BatchNorm, for frame modules whose BatchNorm has no `axis_name`; sown maps come out as
      [B*T, ...].

Either way the parameter tree under the field name equals the 2-D module's, so image-model weights load directly.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

LIFT_AXIS = "time"
LIFT_MODES = ("vmap", "fold")


def lift(frame: nn.Module, x: jnp.ndarray, train: bool, method: str = "__call__", mode: str = "fold") -> Any:
  """Applies `getattr(frame, method)(., train)` to every frame of x [B, T, ...]; returns [B, T, ...] (per leaf).

  Call it inside a parent module's method with a submodule as `frame`; its parameters stay at the submodule's path.
  """
  if x.ndim < 3:
    raise ValueError(f"a lifted module expects [B, T, ...] inputs, got shape {x.shape}")
  if mode == "fold":
    b, t = x.shape[:2]
    y = getattr(frame, method)(x.reshape((b * t,) + x.shape[2:]), train)
    return jax.tree.map(lambda v: v.reshape((b, t) + v.shape[1:]), y)
  if mode == "vmap":
    lifted = nn.vmap(
        lambda m, xs, tr: getattr(m, method)(xs, tr),
        variable_axes={"params": None, "batch_stats": None, "intermediates": 1},
        split_rngs={"params": False, "dropout": True},
        in_axes=(1, None), out_axes=1, axis_name=LIFT_AXIS)
    return lifted(frame, x, train)
  raise ValueError(f"unknown lift mode {mode!r}; valid choices: {', '.join(map(repr, LIFT_MODES))}")

