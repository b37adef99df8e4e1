"""How attention modules plug into a backbone: placement, positions and construction of trunk modules.

A backbone has fields `attention` (a name in `ATTENTION` or None), `attention_positions` (block names, None for
the thesis's attachment points), `attention_kwargs` and `variant`. Per placement:
  * 'head' (L2PA, gates): the backbone returns the outputs of the blocks at the positions ("taps");
  * 'trunk', inserted after the blocks at the positions (thesis CBAM, residual attention, any new module);
  * 'trunk' inside every residual block, on the residual branch before the add, for a class whose
    `inside_block_variants` holds the variant (paper CBAM, as Woo et al.).
"""

import dataclasses
import functools
from typing import Any, Callable, Mapping, Sequence

import flax.linen as nn

from attn_har.attention import ATTENTION, ResidualAttention
from attn_har.registry import lookup


def attention_class(attention: str | None) -> type[nn.Module] | None:
  """The registered class of `attention`, or None; an unknown name raises KeyError listing the valid ones."""
  return None if attention is None else lookup(ATTENTION, attention, "attention")


def placement(attention: str | None, variant: str) -> str | None:
  """None, 'head', 'after' (trunk module after a block) or 'inside' (trunk module inside residual blocks)."""
  cls = attention_class(attention)
  if cls is None:
    return None
  if cls.placement == "head":
    return "head"
  return "inside" if variant in getattr(cls, "inside_block_variants", ()) else "after"


def check_positions(positions: Sequence[str], valid: Sequence[str], backbone: str) -> tuple[str, ...]:
  """Returns `positions` as a tuple; an unknown or repeated block name raises ValueError."""
  positions = tuple(positions)
  bad = [p for p in positions if p not in valid]
  if bad:
    raise ValueError(f"{backbone}: unknown attention position(s) {bad}; valid block names: {list(valid)}")
  if len(set(positions)) != len(positions):
    raise ValueError(f"{backbone}: repeated attention positions {positions}")
  return positions


def trunk_module(attention: str, variant: str, kwargs: Mapping[str, Any], level: int, num_levels: int,
                 unit: Callable[..., nn.Module], dtype: Any, param_dtype: Any, bn_axis_name: str | None = None,
                 name: str | None = None,
                 thesis_defaults: Mapping[str, Any] | None = None) -> nn.Module | Callable[..., nn.Module]:
  """Builds the trunk attention module for attachment point `level` of `num_levels` (or a factory if no name).

  Residual attention gets the backbone's residual `unit` and `shortcuts = num_levels - 1 - level` (Wang et
  al.'s 2, 1, 0); a tuple `shortcuts` in kwargs is read per level. `thesis_defaults` (e.g. p=0, t=1) are
  residual-attention arguments used for variant='thesis' unless the user's kwargs set them.
  """
  cls = attention_class(attention)
  kw = {}
  if cls is ResidualAttention:
    if variant == "thesis":
      kw.update(thesis_defaults or {})
    kw.update(kwargs)
    shortcuts = kw.pop("shortcuts", num_levels - 1 - level)
    kw["shortcuts"] = shortcuts[level] if isinstance(shortcuts, (tuple, list)) else shortcuts
    kw["unit"] = unit
  else:
    kw.update(kwargs)
  if "bn_axis_name" in {f.name for f in dataclasses.fields(cls)}:
    kw["bn_axis_name"] = bn_axis_name
  factory = functools.partial(cls, variant=variant, dtype=dtype, param_dtype=param_dtype, **kw)
  return factory if name is None else factory(name=name)
