"""The train step as two XLA programs compiled at the same time: the forward and backward pass, and the optimiser.

XLA:CPU compiles one program's HLO passes on one thread (about a third of the default train step's compile: the
other core idles meanwhile) and only its kernel code generation on all cores. The optimiser's update of every
parameter array is about half of the train step's HLO and shares no kernels with the model's forward and backward
pass, so `TrainPrograms` compiles the two programs on two threads at the same time. The default `python launch.py`
train step took 24.9-26.4 s to trace, lower and compile as two programs against 33.3-39.8 s as one (in isolation,
alternating processes, 2 CPU cores), and its first step came after 33.5-45.7 s instead of 41.3 s (docs/speed.md). A
step runs the two programs one after the other; the gradients pass between them as arrays, as they did inside the
one program.

The result is the same function as `steps.make_train_step` (its `grad_step` then its `update_step`), but XLA fuses
the two programs separately, so the floats can differ from the one program's in the last bits (the default model's
loss by about 1e-6 relative after three steps), as between any two XLA compilations of the same maths. Runs of this
code replay bit-identically.
"""

import concurrent.futures
from typing import Any, Dict, Optional, Tuple

import flax.linen as nn
import jax
import optax

from attn_har.train import program_cache, steps


class TrainPrograms:
  """`train_step(state, batch, rng) -> (state, metrics)` of `steps.make_train_step`, run as two cached programs.

  'train_grads' (`steps.make_grad_step`; the batch statistics donated) and 'train_update'
  (`steps.make_update_step`; parameters and optimiser state donated), both through the program cache
  (`program_cache.cached_jit`) with replicated outputs. The first call, or `compile_ahead`, traces both and
  compiles them concurrently.

  Attributes:
    name: 'train_step'.
    source: after compiling, how both programs were obtained ('loaded', 'exported' or 'jit'; 'a+b' when they
      differ).
  """

  name = "train_step"

  def __init__(self, model: nn.Module, tx: optax.GradientTransformation, *, fingerprint: str, replicated,
               stream_loss_weight: float = 1.0, label_smoothing: float = 0.0):
    self._replicated = replicated
    self.grads = program_cache.cached_jit(
        steps.make_grad_step(model, stream_loss_weight=stream_loss_weight, label_smoothing=label_smoothing),
        name="train_grads", fingerprint=fingerprint, donate_argnums=1, out_shardings=replicated)
    self.update = program_cache.cached_jit(steps.make_update_step(tx), name="train_update", fingerprint=fingerprint,
                                           donate_argnums=(0, 1), out_shardings=replicated)
    self._step = steps.chain(self.grads, self.update)
    self._compiled = False

  @property
  def source(self) -> Optional[str]:
    a, b = self.grads.source, self.update.source
    return a if a == b else f"{a}+{b}"

  def compile_ahead(self, state: Dict[str, Any], batch, rng: jax.Array) -> None:
    """Builds both programs for these inputs (arrays or `jax.ShapeDtypeStruct`s with the calls' shardings) and
    XLA-compiles them at the same time; the first call then neither traces nor compiles."""
    grads = self.grads.lower_ahead(state["params"], state["batch_stats"], state["step"], batch, rng)
    grads_spec = jax.tree.map(lambda p: jax.ShapeDtypeStruct(p.shape, p.dtype, sharding=self._replicated),
                              state["params"])
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="attn_har_compile") as pool:
      compiling = pool.submit(grads.compile)   # the larger program first; the update is traced meanwhile
      self.update.compile_ahead(state["params"], state["opt_state"], state["step"], grads_spec)
      compiling.result()
    self._compiled = True

  def __call__(self, state: Dict[str, Any], batch, rng: jax.Array) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    if not self._compiled:
      self.compile_ahead(state, batch, rng)
    return self._step(state, batch, rng)
