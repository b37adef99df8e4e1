"""Restore a trained model from its workdir: config, model and variables, without touching the training data.

  r = restore('runs/synthetic_cbam')            # best checkpoint by validation
  r = restore('runs/synthetic_cbam', 'latest')
  logits = r.model.apply(r.variables, batch, False)['logits']

The config comes from `<workdir>/config.json` (the fully resolved config, `model.num_classes` filled in), the
model from `attn_har.models.build_model`, the variables from the Orbax checkpoint
(`attn_har.train.checkpointing.restore_state`, model state only; the Grain iterator is not read).
"""

import pathlib
from typing import Any, NamedTuple, Optional

import flax.linen as nn
import jax
import ml_collections


class Restored(NamedTuple):
  """A restored run.

  Attributes:
    config: the run's resolved, locked config.
    model: the flax module (`build_model(config.model)`).
    variables: {'params', 'batch_stats'?} as jax arrays, ready for `model.apply(variables, x, False)`.
    step: the training step of the checkpoint.
    workdir: the run directory.
  """
  config: ml_collections.ConfigDict
  model: nn.Module
  variables: Any
  step: int
  workdir: pathlib.Path


def load_run_config(workdir) -> ml_collections.ConfigDict:
  """The resolved config of a run, from `<workdir>/config.json`."""
  from attn_har.config.loader import config_from_json  # pylint: disable=import-outside-toplevel
  path = pathlib.Path(workdir) / "config.json"
  if not path.is_file():
    raise FileNotFoundError(f"no config.json in {workdir}: not a training workdir (run `python launch.py "
                            f"--workdir={workdir}` first)")
  try:
    return config_from_json(path.read_text())
  except ValueError as e:
    raise ValueError(f"{path}: not a valid config JSON ({e})") from None


def restore(workdir, which: str = "best", config: Optional[ml_collections.ConfigDict] = None) -> Restored:
  """Restores the model of a training workdir.

  Args:
    workdir: a run directory written by `launch.py` / `train_and_evaluate`.
    which: 'best' (by validation; the latest when no step was validated) or 'latest'.
    config: use this config instead of `<workdir>/config.json` (it must build the same parameter tree).

  Returns:
    A `Restored` (config, model, variables, step, workdir).
  """
  from attn_har.models import build_model  # pylint: disable=import-outside-toplevel
  from attn_har.train import checkpointing  # pylint: disable=import-outside-toplevel
  workdir = pathlib.Path(workdir)
  if which not in ("best", "latest"):
    raise ValueError(f"which must be 'best' or 'latest', got {which!r}")
  config = load_run_config(workdir) if config is None else config
  model = build_model(config.model)
  state = checkpointing.restore_state(workdir, which)
  for key in ("params", "step"):
    if key not in state:
      raise KeyError(f"checkpoint of {workdir} lacks {key!r}; it has {sorted(state)}")
  variables = {"params": state["params"]}
  if jax.tree.leaves(state.get("batch_stats") or {}):
    variables["batch_stats"] = state["batch_stats"]
  variables = jax.tree.map(jax.numpy.asarray, variables)
  return Restored(config=config, model=model, variables=variables, step=int(state["step"]), workdir=workdir)
