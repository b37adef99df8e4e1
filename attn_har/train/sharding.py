"""Data parallelism with `jax.sharding`: a 1-D mesh over all devices, batches sharded on 'data', state replicated.

Multi-host runs call `init_distributed` (only when `config.distributed.enabled`), each host loads its own
1/num_processes of the global batch (Grain `ShardByJaxProcess`) and `shard_batch` assembles the global arrays.
"""

from typing import Any

import jax
import ml_collections
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"


def init_distributed(c: ml_collections.ConfigDict) -> None:
  """`jax.distributed.initialize` from `config.distributed` when enabled; a no-op otherwise (or when done already).

  Must run before anything asks JAX for its devices or process index. With `coordinator_address` empty JAX
  detects the cluster (Slurm, Open MPI, Cloud TPU); otherwise every process passes the same 'host:port', the
  process count and its own `process_id` (0 runs the coordinator). `local_device_ids` (empty: all) picks this
  process's accelerators, e.g. (i,) for one process per GPU. On CPU each process has one device and JAX's
  cross-process CPU collectives use Gloo (`jax_cpu_collectives_implementation`, the default in jax 0.10).
  """
  if not c.enabled or jax.distributed.is_initialized():
    return
  kwargs = {}
  if c.coordinator_address:
    kwargs = dict(coordinator_address=c.coordinator_address, num_processes=c.num_processes,
                  process_id=c.process_id)
  if c.get("local_device_ids"):
    kwargs["local_device_ids"] = list(c.local_device_ids)
  jax.distributed.initialize(**kwargs)


def make_mesh(devices=None) -> Mesh:
  """A 1-D mesh over `devices` (default: every device of every process), axis 'data'."""
  return Mesh(np.asarray(jax.devices() if devices is None else devices), (DATA_AXIS,))


def data_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (batch) axis split over 'data'."""
  return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
  """Fully replicated (model state, scalars)."""
  return NamedSharding(mesh, P())


def check_batch_size(batch_size: int, mesh: Mesh, what: str = "train.batch_size") -> None:
  """The global batch must split evenly over the devices."""
  n = mesh.devices.size
  if batch_size % n:
    raise ValueError(f"{what}={batch_size} is not divisible by the {n} devices of the mesh")


def local_batch_size(batch_size: int) -> int:
  """This process's share of the global batch."""
  return batch_size // jax.process_count()


def shard_batch(batch: Any, sharding: NamedSharding) -> Any:
  """Places a (per-process) numpy batch as global arrays sharded on 'data'."""
  if jax.process_count() == 1:
    return jax.device_put(batch, sharding)
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), batch)


def gather_rows(tree: Any) -> Any:
  """Concatenates every process's host arrays [n_p, ...] along axis 0 in process order (n_p may differ).

  Multi-process evaluation: each process scores its own shard of the evaluation set (Grain `ShardByJaxProcess`)
  and every process then needs all rows for the metrics. With one process, `tree` itself.
  """
  if jax.process_count() == 1:
    return tree
  from jax.experimental import multihost_utils

  def gather(x):
    x = np.asarray(x)
    counts = np.asarray(multihost_utils.process_allgather(np.int32(len(x)))).reshape(-1)
    padded = np.zeros((int(counts.max()),) + x.shape[1:], x.dtype)
    padded[:len(x)] = x
    every = np.asarray(multihost_utils.process_allgather(padded))   # [processes, max n_p, ...]
    return np.concatenate([every[p, :n] for p, n in enumerate(counts)])

  return jax.tree.map(gather, tree)
