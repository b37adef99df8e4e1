"""Config arguments: 'smoke,split=2,stream=rgb,backbone=resnet50_v2,train.num_steps=10'.

A bare word is a flag (value True); `key=value` sets either a shorthand the config family declares (e.g. `split`
-> `data.split`) or any dotted path of the config. Values are converted to the type of the current value, so
`train.num_steps=10` stays an int; tuples are written with '+' (`model.fusion_weights=1+2`). An unknown key or
flag raises, listing the valid ones.
"""

from typing import Any, Dict, Mapping, Set, Tuple

import ml_collections


def parse_arg(arg: str | None) -> Tuple[Set[str], Dict[str, str]]:
  """Splits 'smoke,split=2' into ({'smoke'}, {'split': '2'})."""
  flags, values = set(), {}
  for part in (arg or "").split(","):
    part = part.strip()
    if not part:
      continue
    if "=" in part:
      key, value = part.split("=", 1)
      key = key.strip()
      if not key:
        raise ValueError(f"config argument {part!r} has an empty key")
      values[key] = value.strip()
    else:
      flags.add(part)
  return flags, values


def _convert(text: str, current: Any, key: str) -> Any:
  if isinstance(current, bool):
    low = text.lower()
    if low in ("1", "true", "yes", "on"):
      return True
    if low in ("0", "false", "no", "off"):
      return False
    raise ValueError(f"config argument {key}={text!r}: expected a boolean (true/false)")
  if isinstance(current, int):
    try:
      return int(text)
    except ValueError:
      raise ValueError(f"config argument {key}={text!r}: expected an integer") from None
  if isinstance(current, float):
    try:
      return float(text)
    except ValueError:
      raise ValueError(f"config argument {key}={text!r}: expected a number") from None
  if isinstance(current, tuple):
    items = [t for t in text.split("+") if t]
    kinds = {type(v) for v in current} or {str}
    kind = kinds.pop() if len(kinds) == 1 else str
    return tuple(_convert(t, kind(), key) if kind in (int, float, bool) else t for t in items)
  return text


# Open dicts: keys below these paths may be added (their values are passed through as keyword arguments).
OPEN_PATHS = ("model.backbone_kwargs",)


def _literal(text: str) -> Any:
  for kind in (int, float):
    try:
      return kind(text)
    except ValueError:
      pass
  return {"true": True, "false": False}.get(text.lower(), text)


def set_path(config: ml_collections.ConfigDict, path: str, text: str) -> None:
  """Sets `config.<path>` from its string form; an unknown path raises naming the valid keys."""
  node = config
  parts = path.split(".")
  parent = ".".join(parts[:-1])
  if parent in OPEN_PATHS:
    for name in parts[:-1]:
      node = node[name]
    with node.unlocked():
      node[parts[-1]] = _convert(text, node[parts[-1]], path) if parts[-1] in node else _literal(text)
    return
  for depth, name in enumerate(parts):
    if not isinstance(node, ml_collections.ConfigDict) or name not in node:
      prefix = ".".join(parts[:depth]) or "<top>"
      valid = ", ".join(sorted(node.keys())) if isinstance(node, ml_collections.ConfigDict) else "(none)"
      raise KeyError(f"unknown config key {path!r}: {name!r} is not in {prefix}; valid keys there: {valid}")
    if depth < len(parts) - 1:
      node = node[name]
  node[parts[-1]] = _convert(text, node[parts[-1]], path)


def apply_values(config: ml_collections.ConfigDict, values: Mapping[str, str],
                 shorthands: Mapping[str, str]) -> None:
  """Applies `key=value` arguments; keys are shorthands (mapped to paths) or dotted config paths."""
  for key, text in values.items():
    path = shorthands.get(key, key)
    if path == key and "." not in key and key not in config:
      raise KeyError(f"unknown config argument {key!r}; valid shorthands: {', '.join(sorted(shorthands))} "
                     "(or any dotted config path such as train.num_steps)")
    set_path(config, path, text)


def check_flags(flags: Set[str], valid: Set[str]) -> None:
  """Raises if a bare word is not one of the family's flags."""
  unknown = sorted(flags - set(valid))
  if unknown:
    raise KeyError(f"unknown config flag(s) {unknown}; valid flags: {', '.join(sorted(valid))}")
