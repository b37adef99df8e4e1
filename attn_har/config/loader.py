"""Loading `configs/<name>.py[:arg]` into a locked, validated ConfigDict.

  config = load_config('configs/ucf101_cbam.py:smoke,split=2')

The file must define `get_config(arg=None)`. The returned config is locked (a misspelt key raises on access or
assignment). Registry names are checked by the packages that own them (`attn_har.train.check.check_config`), which
`launch.py` and `train_and_evaluate` call before any work; this package imports nothing from the rest of attn_har.
"""

import importlib.util
import json
import pathlib
import sys
from typing import Tuple

import ml_collections

REPO = pathlib.Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = "configs/synthetic_cbam.py"


def split_spec(spec: str) -> Tuple[pathlib.Path, str | None]:
  """'configs/x.py:smoke,split=2' -> (path, 'smoke,split=2'); relative paths also resolve from the repo root."""
  path_text, sep, arg = spec.partition(".py:")
  path_text = path_text + ".py" if sep else spec
  path = pathlib.Path(path_text).expanduser()
  if not path.is_file() and not path.is_absolute() and (REPO / path).is_file():
    path = REPO / path
  if not path.is_file():
    configs = sorted(p.name for p in (REPO / "configs").glob("[!_]*.py"))
    raise FileNotFoundError(f"config file {path_text!r} not found; configs in {REPO / 'configs'}: "
                            f"{', '.join(configs)}")
  return path, (arg if sep else None)


def load_config(spec: str) -> ml_collections.ConfigDict:
  """Imports the config file, calls `get_config(arg)` and locks the result."""
  path, arg = split_spec(spec)
  module_spec = importlib.util.spec_from_file_location(f"attn_har_config_{path.stem}", path)
  module = importlib.util.module_from_spec(module_spec)
  # Sibling modules of the config file (e.g. configs/_synthetic.py, a shared recipe) import by their bare name.
  folder = str(path.resolve().parent)
  sys.path.insert(0, folder)
  try:
    module_spec.loader.exec_module(module)
  finally:
    sys.path.remove(folder)
  if not hasattr(module, "get_config"):
    raise AttributeError(f"config file {path} defines no get_config(arg=None)")
  config = module.get_config(arg)
  if not isinstance(config, ml_collections.ConfigDict):
    raise TypeError(f"{path}: get_config returned {type(config).__name__}, expected ml_collections.ConfigDict")
  if "name" in config:
    config.name = path.stem   # the config file names the run ('ucf101_baseline', 'synthetic_cbam', ...)
  config.lock()
  return config


def config_to_json(config: ml_collections.ConfigDict) -> str:
  """The full resolved config as JSON (tuples become lists)."""
  return json.dumps(config.to_dict(), indent=2, sort_keys=True)


def config_from_json(text: str) -> ml_collections.ConfigDict:
  """Rebuilds a locked ConfigDict from `config_to_json` output (lists that were tuples become tuples again)."""
  def fix(node):
    if isinstance(node, dict):
      return {k: fix(v) for k, v in node.items()}
    if isinstance(node, list):
      return tuple(fix(v) for v in node)
    return node
  config = ml_collections.ConfigDict(fix(json.loads(text)))
  config.lock()
  return config
