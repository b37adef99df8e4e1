"""Name lookup in the literal-dict registries (`ATTENTION`, `BACKBONES`, `DATASETS`, ...)."""

from typing import Any, Mapping


def lookup(registry: Mapping[str, Any], name: str, kind: str) -> Any:
  """Returns `registry[name]`; an unknown name raises KeyError listing the valid ones.

  Args:
    registry: a literal dict from names to factories.
    name: the requested name.
    kind: what the registry holds, for the message ("attention", "backbone", ...).
  """
  try:
    return registry[name]
  except KeyError:
    valid = ", ".join(sorted(repr(k) for k in registry))
    raise KeyError(f"unknown {kind} {name!r}; valid choices: {valid}") from None


def check_choice(choices, name: str, kind: str) -> None:
  """Raises `lookup`'s KeyError when `name` is not one of `choices` (a sequence of names)."""
  lookup({c: c for c in choices}, name, kind)
