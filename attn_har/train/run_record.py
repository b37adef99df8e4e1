"""The run record of a workdir: `config.json` always describes its checkpoints; `launches.jsonl` lists every launch.

A launch into a workdir that already holds a run compares the new config with the recorded one (`config_diff`).
Differences in settings that only say how long or how verbosely to train, or how to evaluate (`SAFE_KEYS`), are
allowed; any other difference (the model, the data, the optimiser, the seed: what the checkpoints mean) is refused
with the differing keys before anything is written. Each accepted launch appends
{'time', 'argv', 'diff', 'start_step'} to `launches.jsonl`, and `config.json` is rewritten with the new config.
"""

import json
import pathlib
import sys
import time
from typing import Any, Dict, List, Optional, Tuple

import ml_collections

from attn_har.config.loader import config_to_json

CONFIG_FILE = "config.json"
LAUNCHES_FILE = "launches.jsonl"
# Dotted keys (or prefixes ending in '.') whose change leaves the checkpoints' meaning intact.
SAFE_KEYS = ("train.num_steps", "train.log_every", "train.checkpoint_every", "train.keep_checkpoints",
             "train.progress", "eval.", "data.workers", "data.store", "init_from.", "distributed.")


class RunRecordError(ValueError):
  """The workdir's run record refuses this launch (see `ConfigMismatchError`) or cannot be read."""


class ConfigMismatchError(RunRecordError):
  """A relaunch whose config changes what the workdir's checkpoints mean."""


def _flat(node: Any, prefix: str = "") -> Dict[str, Any]:
  if isinstance(node, dict):
    out = {}
    for k, v in node.items():
      out.update(_flat(v, f"{prefix}{k}."))
    return out
  return {prefix[:-1]: list(node) if isinstance(node, (list, tuple)) else node}


def config_diff(old: Dict[str, Any], new: Dict[str, Any]) -> Dict[str, Tuple[Any, Any]]:
  """{dotted key: (old value, new value)} for every key whose value differs (a missing key is None)."""
  a, b = _flat(old), _flat(new)
  return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


def _safe(key: str) -> bool:
  return any(key == s or (s.endswith(".") and key.startswith(s)) for s in SAFE_KEYS)


def check_relaunch(workdir: pathlib.Path, config: ml_collections.ConfigDict) -> Optional[Dict[str, Tuple]]:
  """None for a new workdir, else the (safe) differences from the recorded config.

  `model.num_classes` = 0 in `config` (not yet filled from the data) matches any recorded value.

  Raises:
    ConfigMismatchError: listing the keys whose change would make the checkpoints mean something else.
    RunRecordError: the recorded config.json is not valid JSON (names the file).
  """
  path = pathlib.Path(workdir) / CONFIG_FILE
  if not path.is_file():
    return None
  try:
    old = json.loads(path.read_text())
  except (ValueError, UnicodeDecodeError) as e:
    raise RunRecordError(f"{path}: the recorded config is not valid JSON ({e}); move the workdir aside or repair "
                     f"the file") from None
  new = json.loads(config_to_json(config))
  if not new.get("model", {}).get("num_classes"):
    new["model"]["num_classes"] = old.get("model", {}).get("num_classes")
  diff = config_diff(old, new)
  unsafe = {k: v for k, v in diff.items() if not _safe(k)}
  if unsafe:
    lines = "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in unsafe.items())
    raise ConfigMismatchError(
        f"{workdir} holds a run of another config; these settings differ from its {CONFIG_FILE} and would change "
        f"what its checkpoints mean: {lines}. Use a new --workdir (or restore the recorded settings); only "
        f"{', '.join(SAFE_KEYS)} may change on a relaunch.")
  return diff


def record_launch(workdir: pathlib.Path, config: ml_collections.ConfigDict, diff: Optional[Dict[str, Tuple]],
                  start_step: int, argv: Optional[List[str]] = None) -> None:
  """Writes config.json (atomically) and appends this launch to launches.jsonl."""
  workdir = pathlib.Path(workdir)
  tmp = workdir / (CONFIG_FILE + ".tmp")
  tmp.write_text(config_to_json(config))
  tmp.replace(workdir / CONFIG_FILE)
  row = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "argv": list(sys.argv if argv is None else argv),
         "diff": {k: [a, b] for k, (a, b) in (diff or {}).items()}, "start_step": int(start_step),
         "new_run": diff is None}
  with open(workdir / LAUNCHES_FILE, "a") as f:
    f.write(json.dumps(row) + "\n")


def read_launches(workdir) -> List[Dict[str, Any]]:
  """The rows of `<workdir>/launches.jsonl`, oldest first."""
  path = pathlib.Path(workdir) / LAUNCHES_FILE
  return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
