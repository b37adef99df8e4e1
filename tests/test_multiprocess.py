"""Multi-process data parallelism: two `jax.distributed` processes on localhost (one CPU device each, Gloo
collectives) train like one process with the same global batch, and their checkpoint restores in one process.

The workers (`tests/multiprocess_worker.py`) drive the pieces of `attn_har.train.train` directly: the config's
`distributed` section -> `sharding.init_distributed`, the 'data' mesh, `sharding.shard_batch` of each process's
half of the global batch, `steps` jitted with replicated state, the config's AdamW with clipping, Orbax
`checkpointing.save` from every process, evaluation rows scored per process and joined by `sharding.gather_rows`.
The model is a tiny Conv-BatchNorm-dropout one, not the whole `train_and_evaluate`: a two-process synthetic smoke
run (launch.py with `distributed.*` arguments, which does run end to end) compiles for about 5 minutes on 2 cores,
and its Grain `ShardByJaxProcess` input gives each process a slice of the dataset, so its global batches are not
a one-process run's.

Tolerance: the two runs compute the same functions but XLA sums the batch (BatchNorm moments, gradients) in a
different order (per-device partial sums, then an all-reduce), so float32 values differ by rounding: measured
max |difference| over 3 steps 6e-8 in the parameters and BatchNorm statistics (entries up to ~1), 1.2e-7 in the
losses. The test allows atol 1e-6 (about 10x float32's spacing at 1), far below one step's parameter change (~1e-3)
and the gap that per-process BatchNorm moments would leave. The model's conv has no bias: a bias before BatchNorm
has zero gradient, and Adam turns its rounding noise into +-lr steps (0.006 apart after 3 steps). The two
processes' replicated copies and the restored checkpoint must be bit-identical.
"""

import os
import pathlib
import socket
import subprocess
import sys

import numpy as np

WORKER = pathlib.Path(__file__).resolve().parent / "multiprocess_worker.py"
TIMEOUT_S = 120
STEPS = 3


def _free_port() -> int:
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _env():
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  env.pop("XLA_FLAGS", None)   # one CPU device per process (the worker sets jax_num_cpu_devices=1)
  return env


def _run(commands):
  """Runs the worker command lines at once; kills them all on a hang or the first failure."""
  procs = [subprocess.Popen([sys.executable, str(WORKER), *c], env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True) for c in commands]
  try:
    outs = [p.communicate(timeout=TIMEOUT_S)[0] for p in procs]
  except subprocess.TimeoutExpired:
    for p in procs:
      p.kill()
    raise AssertionError(f"a worker hung for more than {TIMEOUT_S} s: {commands}") from None
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
        p.wait()
  for p, out in zip(procs, outs):
    assert p.returncode == 0, f"worker {p.args[2:]} exited {p.returncode}:\n{out[-4000:]}"


def _trees(result, prefix=""):
  return {k[len(prefix):]: result[k] for k in result.files
          if k.startswith(prefix) and k[len(prefix):].split("/")[0] in ("params", "batch_stats")}


def test_two_processes_train_like_one_and_their_checkpoint_restores_in_one(tmp_path):
  two, one = tmp_path / "two", tmp_path / "one"
  two.mkdir()
  one.mkdir()
  port = _free_port()
  _run([["--out", str(two), "--num_processes", "2", "--process_id", str(i), "--port", str(port), "--steps",
         str(STEPS), "--checkpoint"] for i in range(2)])
  _run([["--out", str(one), "--steps", str(STEPS), "--restore", str(two / "run")]])
  r0, r1, single = (np.load(p) for p in (two / "result0.npz", two / "result1.npz", one / "result0.npz"))

  # Both processes hold the same replicated state and saw the same global losses.
  for k in r0.files:
    np.testing.assert_array_equal(r0[k], r1[k], err_msg=k)
  # Two processes = one process with the same global batch (BatchNorm moments over the global batch).
  np.testing.assert_allclose(r0["losses"], single["losses"], rtol=1e-6)
  two_state, one_state = _trees(r0), _trees(single)
  assert sorted(two_state) == sorted(one_state) and "batch_stats/BatchNorm_0/mean" in two_state
  for k, v in two_state.items():
    np.testing.assert_allclose(v, one_state[k], atol=1e-6, rtol=0, err_msg=k)
  # The training moved the state (the comparison is not between two copies of the initialisation).
  assert np.abs(two_state["batch_stats/BatchNorm_0/mean"]).max() > 1e-4
  # Evaluation: each process scores its batch, `gather_rows` joins the valid rows of both (4 + 3) in process order.
  np.testing.assert_array_equal(r0["eval/index"], np.arange(7))
  for k in ("logits", "label", "index"):
    np.testing.assert_allclose(r0[f"eval/{k}"], single[f"eval/{k}"], atol=1e-6, rtol=0, err_msg=k)
  # The checkpoint both processes wrote restores in one process, bit for bit.
  restored = _trees(single, "restored/")
  assert sorted(restored) == sorted(two_state) and int(single["restored/step"]) == STEPS
  for k, v in two_state.items():
    np.testing.assert_array_equal(restored[k], v, err_msg=k)
