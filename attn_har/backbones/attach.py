"""How an attention mechanism plugs into a backbone: `Attachment`, resolved once from the mechanism's class.

A backbone receives `attention: Attachment | None` and `attention_positions` (block names; None for the defaults).
Everything that varies by mechanism is read from the class's attributes (the protocol in `attn_har.attention`),
so no backbone compares mechanism names. Per `Attachment.where(family)`:
  * 'head' (L2PA, gates): the backbone returns the outputs of the blocks at the positions ("taps");
  * 'after': a trunk module inserted after each block at the positions (thesis CBAM, residual attention, any
    new trunk module), named '<block>_<label>';
  * 'replace': a trunk module in place of the block (thesis residual attention on MobileNetV2), same name;
  * 'inside': a trunk module inside every residual block, on the residual branch before the add (paper CBAM).
"""

import dataclasses
import functools
from typing import Any, Callable, Mapping, Sequence

import flax.linen as nn
from flax.core import FrozenDict


def class_of(factory: Any) -> type:
  """The class of a flax module class or of a `functools.partial` of one."""
  return factory.func if isinstance(factory, functools.partial) else factory


def field_names(cls: Any) -> frozenset[str]:
  """The dataclass field names of a flax module class (or of a `functools.partial` of one)."""
  return frozenset(f.name for f in dataclasses.fields(class_of(cls)))


@dataclasses.dataclass(frozen=True)
class Attachment:
  """One attention mechanism with its settings, as a backbone builds it.

  Attributes:
    cls: the mechanism's class (see the protocol in `attn_har.attention`).
    variant: 'paper' or 'thesis'.
    kwargs: the user's settings of the mechanism (override the class's per-family defaults).
    label: names the modules inserted after blocks ('<block>_<label>'); the registry name by default.
  """
  cls: type
  variant: str = "paper"
  kwargs: Mapping[str, Any] = FrozenDict()
  label: str = "attention"

  @property
  def placement(self) -> str:
    """'head' or 'trunk'."""
    return self.cls.placement

  def where(self, family: str) -> str:
    """'head', 'after', 'replace' or 'inside' in a backbone of `family` ('mobilenet', 'resnet')."""
    if self.cls.placement == "head":
      return "head"
    if self.variant in getattr(self.cls, "inside_block_variants", ()):
      return "inside"
    if self.variant in getattr(self.cls, "replaces_block", {}).get(family, ()):
      return "replace"
    return "after"

  def default_positions(self, family: str) -> tuple[str, ...] | None:
    """The mechanism's own default block names in `family`, or None for the backbone's defaults."""
    return getattr(self.cls, "family_positions", {}).get(family)

  def settings(self, family: str) -> dict[str, Any]:
    """The class's defaults for (family, variant) (key (family, None) for any variant), then the user's."""
    defaults = getattr(self.cls, "family_defaults", {})
    return {**defaults.get((family, None), {}), **defaults.get((family, self.variant), {}), **self.kwargs}

  def head(self, family: str, num_classes: int, num_scales: int, dtype: Any, param_dtype: Any,
           name: str = "head") -> nn.Module:
    """The head module ('head' placement) over `num_scales` taps."""
    return self.cls(num_classes=num_classes, num_scales=num_scales, variant=self.variant, dtype=dtype,
                    param_dtype=param_dtype, name=name, **self.settings(family))

  def trunk(self, family: str, level: int, num_levels: int, *, unit: Callable[..., nn.Module] | None,
            bn_axis_name: str | None, dtype: Any, param_dtype: Any) -> Callable[..., nn.Module]:
    """A factory `f(name=...)` of the trunk module at attachment point `level` of `num_levels`.

    Classes with a `unit` field get the backbone's stride-1 residual block factory `unit`; classes with a
    `bn_axis_name` field get the backbone's; a class's `at_level(settings, level, num_levels)` (optional) adapts
    its settings per attachment point.
    """
    kw = self.settings(family)
    if hasattr(self.cls, "at_level"):
      kw = self.cls.at_level(kw, level, num_levels)
    fields = field_names(self.cls)
    if "unit" in fields:
      kw["unit"] = unit
    if "bn_axis_name" in fields:
      kw["bn_axis_name"] = bn_axis_name
    return functools.partial(self.cls, variant=self.variant, dtype=dtype, param_dtype=param_dtype, **kw)


def check_positions(positions: Sequence[str], valid: Sequence[str], backbone: str) -> tuple[str, ...]:
  """Returns `positions` as a tuple; an unknown or repeated block name raises ValueError."""
  positions = tuple(positions)
  bad = [p for p in positions if p not in valid]
  if bad:
    raise ValueError(f"{backbone}: unknown attention position(s) {bad}; valid block names: {list(valid)}")
  if len(set(positions)) != len(positions):
    raise ValueError(f"{backbone}: repeated attention positions {positions}")
  return positions
