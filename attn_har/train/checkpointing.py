"""Orbax checkpoints of the model state and the data iterator, together, under `<workdir>/checkpoints/`.

One `CheckpointManager` with items 'state' ({'params', 'batch_stats', 'opt_state', 'step'}) and 'data' (the
Grain iterator, via `attn_har.data.pipeline.iterator_save_args`). It keeps the `keep` latest steps plus the best
one by validation (metric 'val_top1', ties broken by lower 'val_loss'), saved synchronously so a SIGKILL never
leaves a half-written step that a restart would pick up (Orbax writes to a temporary name and renames).

Start-up order (`train.py`): resume `<workdir>` if it has a checkpoint, else initialise from
`config.init_from` (a Keras ImageNet file, `init_from_keras`, then other runs' checkpoints, `init_from`), else from
scratch. `restore_state(workdir, which)` reads only the model state (for analysis;
no data is touched).
"""

import pathlib
from typing import Any, Dict, List, Optional, Tuple

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import traverse_util
from orbax.checkpoint import checkpoint_managers as cm

from attn_har.backbones import keras_weights
from attn_har.train.finite import NonFiniteError, state_is_finite

CHECKPOINT_DIR = "checkpoints"


def _best_value(metrics: Dict[str, float]) -> float:
  # Higher is better: validation top-1, then lower loss (the loss term is below any top-1 difference of a split
  # with fewer than 10^5 clips).
  return float(metrics["val_top1"]) - 1e-7 * min(float(metrics.get("val_loss", 0.0)), 100.0)


def _item_handlers(with_data: bool) -> Dict[str, Any]:
  handlers = {"state": ocp.StandardCheckpointHandler()}
  if with_data:
    import grain
    handlers["data"] = grain.checkpoint.CheckpointHandler()
  return handlers


def make_manager(workdir, keep: int = 2, read_only: bool = False, with_data: bool = True,
                 track_best: bool = True) -> ocp.CheckpointManager:
  """The run's CheckpointManager (keep-N latest + best by validation when `track_best`; synchronous saves)."""
  directory = pathlib.Path(workdir).absolute() / CHECKPOINT_DIR
  policies = [cm.LatestN(n=keep)]
  if track_best:
    policies.append(cm.BestN(get_metric_fn=_best_value, reverse=False, n=1, keep_checkpoints_without_metrics=False))
  options = ocp.CheckpointManagerOptions(
      enable_async_checkpointing=False,
      preservation_policy=None if read_only else cm.AnyPreservationPolicy(policies),
      best_fn=_best_value if track_best else None, best_mode="max", read_only=read_only, create=not read_only)
  return ocp.CheckpointManager(directory, item_names=("state", "data") if with_data else ("state",),
                               item_handlers=_item_handlers(with_data), options=options)


def save(manager: ocp.CheckpointManager, step: int, state: Dict[str, Any], data_iterator: Any,
         metrics: Optional[Dict[str, float]] = None) -> None:
  """Saves state and iterator at `step` (metrics: {'val_top1', 'val_loss'} for best tracking, or None)."""
  from attn_har.data.pipeline import iterator_save_args
  items = {"state": ocp.args.StandardSave(state)}
  if data_iterator is not None:
    items["data"] = iterator_save_args(data_iterator)
  manager.save(step, args=ocp.args.Composite(**items), metrics=metrics, force=True)
  manager.wait_until_finished()


def resume(manager: ocp.CheckpointManager, state: Dict[str, Any], data_iterator: Any) -> Tuple[Dict, int]:
  """Restores the latest step into `state`'s structure and repositions `data_iterator`; returns (state, step).

  A latest checkpoint with non-finite numbers (which this code never writes) is refused with `NonFiniteError`
  naming the last finite step.
  """
  from attn_har.data.pipeline import iterator_restore_args
  step = manager.latest_step()
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
  items = {"state": ocp.args.StandardRestore(abstract)}
  if data_iterator is not None:
    items["data"] = iterator_restore_args(data_iterator)
  restored = manager.restore(step, args=ocp.args.Composite(**items))
  if not state_is_finite(restored["state"]):
    finite = [s for s in sorted(manager.all_steps(), reverse=True) if s != step and _finite_step(manager, s, abstract)]
    hint = (f"the last finite checkpoint is step {finite[0]}: delete {manager.directory / str(step)} to resume "
            f"from it" if finite else "no checkpoint of this run is finite: start a new workdir")
    raise NonFiniteError(f"refusing to resume {manager.directory}: checkpoint step {step} holds non-finite "
                         f"numbers; {hint}")
  return restored["state"], step


def _finite_step(manager: ocp.CheckpointManager, step: int, abstract: Any) -> bool:
  state = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract)))["state"]
  return state_is_finite(state)


def _select_step(manager: ocp.CheckpointManager, which: str) -> int:
  if which not in ("best", "latest"):
    raise ValueError(f"which must be 'best' or 'latest', got {which!r}")
  step = manager.best_step() if which == "best" else manager.latest_step()
  if step is None:
    step = manager.latest_step()
  if step is None:
    raise FileNotFoundError(f"no checkpoint under {manager.directory}")
  return step


def restore_state(workdir, which: str = "best") -> Dict[str, Any]:
  """The model state {'params', 'batch_stats', 'opt_state', 'step'} of a run, as numpy arrays.

  Args:
    workdir: a run directory written by `train_and_evaluate`.
    which: 'best' (by validation; the latest when no step has validation metrics) or 'latest'.
  """
  path = pathlib.Path(workdir) / CHECKPOINT_DIR
  if not path.is_dir():
    raise FileNotFoundError(f"no checkpoint directory {path} (is {workdir} a training workdir?)")
  with make_manager(workdir, read_only=True, with_data=False) as manager:
    step = _select_step(manager, which)
    restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(_local_target(manager,
                                                                                                        step))))
  return jax.tree.map(np.asarray, restored["state"])


def _local_target(manager: ocp.CheckpointManager, step: int) -> Any:
  """The saved state's shapes and dtypes, every array on this process's first device.

  Without a target Orbax restores each array with the sharding it was saved with, which fails ('Topology
  mismatch') for a checkpoint written by another set of devices, e.g. by a multi-process run.
  """
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  return jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device) if hasattr(m, "dtype") else m,
                      manager.item_metadata(step)["state"])


def checkpoint_steps(workdir) -> Dict[str, Any]:
  """{'all': [steps], 'latest': step, 'best': step} of a run's checkpoints."""
  with make_manager(workdir, read_only=True, with_data=False) as manager:
    return {"all": list(manager.all_steps()), "latest": manager.latest_step(), "best": manager.best_step()}


def merge_params(target: Dict[str, Any], source: Dict[str, Any], prefix: Tuple[str, ...] = ()
                 ) -> Tuple[Dict[str, Any], List[str], List[str]]:
  """Copies every leaf of `source` whose path (under `prefix` in target) and shape match into `target`.

  Returns:
    (merged tree, skipped: target paths left at their initial values, unused: source paths not loaded).
  """
  flat_t = traverse_util.flatten_dict(target) if target else {}
  flat_s = traverse_util.flatten_dict(source) if source else {}
  loaded, unused = set(), []
  for path, value in flat_s.items():
    key = prefix + tuple(path)
    if key in flat_t and np.shape(flat_t[key]) == np.shape(value):
      flat_t[key] = np.asarray(value, dtype=np.asarray(flat_t[key]).dtype) if hasattr(flat_t[key], "dtype") \
          else value
      loaded.add(key)
    else:
      why = "shape" if key in flat_t else "absent"
      unused.append("/".join(key) + f" ({why})")
  skipped = ["/".join(k) for k in flat_t if k not in loaded and (not prefix or k[:len(prefix)] == prefix)]
  return traverse_util.unflatten_dict(flat_t) if flat_t else target, skipped, unused


def init_from(state: Dict[str, Any], sources: List[Tuple[str, str, Tuple[str, ...]]]) -> Tuple[Dict, List[str]]:
  """Loads params and batch_stats from other runs' checkpoints into a fresh `state` (optimizer state is fresh).

  Args:
    state: the freshly initialised state.
    sources: (workdir, which, prefix) triples; the source's trees are placed under `prefix` (e.g. ('rgb',) to
      load a stream-only run into the two-stream model's 'rgb' stream).

  Returns:
    (new state, report lines naming what was loaded and every skipped or unused parameter).
  """
  report = []
  params, stats = state["params"], state["batch_stats"]
  for workdir, which, prefix in sources:
    src = restore_state(workdir, which)
    where = "/".join(prefix) or "<root>"
    params, skipped, unused = merge_params(params, src["params"], prefix)
    stats, skipped_bs, unused_bs = merge_params(stats, src.get("batch_stats") or {}, prefix)
    report.append(f"init_from {workdir} ({which}, step {int(src['step'])}) into {where}: "
                  f"{len(skipped)} parameters kept at initial values, {len(unused)} checkpoint entries unused")
    report += [f"  skipped (not in checkpoint or shape differs): {p}" for p in skipped + skipped_bs]
    report += [f"  unused checkpoint entry: {p}" for p in unused + unused_bs]
  new = dict(state)
  new["params"] = jax.tree.map(lambda x: np.asarray(x), params)
  new["batch_stats"] = jax.tree.map(lambda x: np.asarray(x), stats)
  return new, report


def _subtree(tree: Dict[str, Any], path: Tuple[str, ...]) -> Dict[str, Any]:
  for key in path:
    tree = tree[key]
  return tree


def init_from_keras(state: Dict[str, Any], frame_paths: Dict[str, Tuple[str, ...]], path,
                    backbone: str) -> Tuple[Dict, List[str]]:
  """Loads a Keras ImageNet weight file into every per-frame image model of a fresh `state`.

  Each stream's backbone gets the file's weights (a flow stream's first conv: TSN cross-modality, the RGB kernel
  averaged over its 3 input channels and repeated over 2L); the classifier 'predictions' loads only where its
  class count is the file's (1000); modules Keras lacks (attention, heads) keep their own initialisation.

  Args:
    state: the freshly initialised state (host arrays).
    frame_paths: {stream: variable path of its image classifier}, from the model's `frame_models()`.
    path: the legacy Keras HDF5 file (`attn_har.backbones.keras_weights`).
    backbone: the model's backbone name ('mobilenet_v2', 'resnet50_v2', 'resnet101_v2').

  Returns:
    (new state, report lines: per stream the arrays loaded, the notes and every module kept at its own
    initialisation).
  """
  rows = keras_weights.read_legacy_h5(path)
  params, stats = state["params"], state["batch_stats"]
  report = []
  for stream, prefix in frame_paths.items():
    target = {"params": _subtree(params, prefix), "batch_stats": _subtree(stats, prefix)}
    loaded, plan = keras_weights.load_keras_file(path, target, backbone, rows)
    params = merge_params(params, loaded["params"], prefix)[0]
    stats = merge_params(stats, loaded["batch_stats"], prefix)[0]
    report.append(f"init_from.keras {path} into {'/'.join(prefix)} ({stream}): {len(plan.moves)} of "
                  f"{len(rows)} arrays loaded")
    report += [f"  {note}" for note in plan.notes]
    report += [f"  kept at its own initialisation (not in the Keras file): {'/'.join(prefix)}/{m}" for m in plan.kept]
  new = dict(state)
  new["params"] = jax.tree.map(np.asarray, params)
  new["batch_stats"] = jax.tree.map(np.asarray, stats)
  return new, report
