"""One process of `test_multiprocess.py`: a few data-parallel training steps, optionally checkpointed.

  python tests/multiprocess_worker.py --out DIR --num_processes 2 --process_id I --port P --checkpoint
  python tests/multiprocess_worker.py --out DIR --num_processes 1 --restore DIR2

Each process starts `jax.distributed` from a `config.distributed` section (`sharding.init_distributed`; skipped
for one process), sees one CPU device, builds the 1-D 'data' mesh over all processes' devices and runs the pieces
of `attn_har.train.train`: `steps.init_state` jitted and the train step's two programs (`train_programs`) with
replicated out-shardings, the config's optimiser (the synthetic recipe: AdamW, cosine schedule with warm-up,
gradient clipping), and
`sharding.shard_batch` over its own contiguous 1/num_processes slice of every global batch [8, 6, 6, 2] (a model
with BatchNorm and dropout). With --checkpoint every process calls `checkpointing.save` (Orbax writes one
checkpoint together); --restore reads a checkpoint with `checkpointing.restore_state`. Every process writes
`<out>/result<process_id>.npz`: params/*, batch_stats/*, losses [steps], eval/{logits [7, 3], label, index} (an
evaluation split over the processes and gathered with `sharding.gather_rows`), and restored/* with --restore.
"""

import argparse
import os
import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

GLOBAL_BATCH = 8


def main() -> None:
  p = argparse.ArgumentParser()
  p.add_argument("--out", required=True)
  p.add_argument("--num_processes", type=int, default=1)
  p.add_argument("--process_id", type=int, default=0)
  p.add_argument("--port", type=int, default=0)
  p.add_argument("--steps", type=int, default=3)
  p.add_argument("--checkpoint", action="store_true")
  p.add_argument("--restore", default="")
  a = p.parse_args()

  os.environ["JAX_PLATFORMS"] = "cpu"
  import jax
  jax.config.update("jax_num_cpu_devices", 1)
  import flax.linen as nn
  import numpy as np

  from attn_har.config.base import base_config
  from attn_har.train import checkpointing, evaluate, sharding, steps
  from attn_har.train.optim import make_optimizer
  from attn_har.train.schedule import make_schedule
  from attn_har.train.train_programs import TrainPrograms

  config = base_config()
  config.distributed.update(enabled=a.num_processes > 1, coordinator_address=f"localhost:{a.port}",
                            num_processes=a.num_processes, process_id=a.process_id)
  config.optim.update(name="adamw", lr=0.002, schedule="cosine", warmup_steps=2, grad_clip_norm=5.0)
  sharding.init_distributed(config.distributed)
  assert jax.process_count() == a.num_processes and jax.process_index() == a.process_id
  assert len(jax.local_devices()) == 1 and len(jax.devices()) == a.num_processes

  class Tiny(nn.Module):
    @nn.compact
    def __call__(self, batch, train):
      x = nn.Conv(4, (3, 3), use_bias=False)(batch["image"])   # BatchNorm follows: a bias would get no gradient
      x = nn.relu(nn.BatchNorm(use_running_average=not train)(x))
      x = nn.Dropout(0.3, deterministic=not train)(x).mean((1, 2))
      return {"logits": nn.Dense(3)(x), "features": x}

  mesh = sharding.make_mesh()
  sharding.check_batch_size(GLOBAL_BATCH, mesh)
  batch_sharding, repl = sharding.data_sharding(mesh), sharding.replicated(mesh)
  model, tx = Tiny(), make_optimizer(config.optim, make_schedule(config.optim, 100))
  init_rng, train_rng = jax.random.split(jax.random.key(config.seed))
  sample = {"image": np.zeros((1, 6, 6, 2), np.float32), "label": np.zeros((1,), np.int32)}
  state = jax.jit(lambda r: steps.init_state(model, tx, r, sample), out_shardings=repl)(init_rng)
  train_step = TrainPrograms(model, tx, fingerprint="tiny", replicated=repl)   # plain jax.jit with several processes

  n = sharding.local_batch_size(GLOBAL_BATCH)
  lo = a.process_id * n
  losses = []
  for t in range(a.steps):
    g = np.random.default_rng(t)
    full = {"image": g.normal(size=(GLOBAL_BATCH, 6, 6, 2)).astype(np.float32),
            "label": g.integers(0, 3, GLOBAL_BATCH).astype(np.int32)}
    batch = sharding.shard_batch({k: v[lo:lo + n] for k, v in full.items()}, batch_sharding)
    assert batch["image"].shape == (GLOBAL_BATCH, 6, 6, 2)
    state, metrics = train_step(state, batch, train_rng)
    losses.append(float(metrics["loss"]))

  # Evaluation as train.py does it: 7 rows in batches of 4 ('valid' 0 on the padding row), process p scoring
  # batch p on its own device, `sharding.gather_rows` joining the valid rows; one process scores both batches.
  eval_step = jax.jit(steps.make_eval_step(model))
  g = np.random.default_rng(99)
  rows = {"image": g.normal(size=(8, 6, 6, 2)).astype(np.float32), "label": g.integers(0, 3, 8).astype(np.int32),
          "index": np.arange(8, dtype=np.int32), "valid": (np.arange(8) < 7).astype(np.int32)}
  mine = range(2) if a.num_processes == 1 else [a.process_id]
  collected = sharding.gather_rows(evaluate.collect(eval_step, state, [{k: v[4 * b:4 * b + 4] for k, v in rows.items()}
                                                                       for b in mine]))

  out = pathlib.Path(a.out)
  if a.checkpoint:
    manager = checkpointing.make_manager(out / "run", keep=2, track_best=False)
    checkpointing.save(manager, a.steps, state, None)
    manager.close()
  result = {"losses": np.asarray(losses), **{f"eval/{k}": collected[k] for k in ("logits", "label", "index")}}
  for part in ("params", "batch_stats"):
    result.update({f"{part}/{'/'.join(k.key for k in path)}": np.asarray(v)
                   for path, v in jax.tree_util.tree_flatten_with_path(state[part])[0]})
  if a.restore:
    restored = checkpointing.restore_state(a.restore, "latest")
    result["restored/step"] = np.asarray(restored["step"])
    for part in ("params", "batch_stats"):
      result.update({f"restored/{part}/{'/'.join(k.key for k in path)}": v
                     for path, v in jax.tree_util.tree_flatten_with_path(restored[part])[0]})
  np.savez(out / f"result{a.process_id}.npz", **result)
  print(f"process {a.process_id}/{a.num_processes}: losses {losses}", flush=True)


if __name__ == "__main__":
  main()
