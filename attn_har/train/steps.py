"""Pure training and evaluation steps over a generic model and batch.

State is a dict {'params', 'batch_stats', 'opt_state', 'step'}; `make_train_step` returns
`train_step(state, batch, rng) -> (state, metrics)` (jit it with the state donated; metrics['finite'] says whether
the loss is finite) where the dropout key of step t is `fold_in(rng, t)`, so a resumed run replays exactly. It is
`make_grad_step` (forward and backward pass) followed by `make_update_step` (the optimiser), which train.py compiles
as two programs (`attn_har.train.train_programs`). Models follow the model protocol of `attn_har.models`:
`model.apply(variables, batch, train)` returns {'logits': [B, K], 'features': [B, D], 'streams'?: {name: [B, K]}};
with streams the loss is CE(fused) + stream_loss_weight * mean_s CE(stream s).
"""

from typing import Any, Dict, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from attn_har.train.evaluate import topk_correct

State = Dict[str, Any]


def cross_entropy(logits: jnp.ndarray, labels: jnp.ndarray, smoothing: float = 0.0) -> jnp.ndarray:
  """Per-example softmax cross-entropy [B] (float32) with optional label smoothing."""
  k = logits.shape[-1]
  onehot = jax.nn.one_hot(labels, k, dtype=jnp.float32)
  if smoothing > 0:
    onehot = onehot * (1.0 - smoothing) + smoothing / k
  return optax.softmax_cross_entropy(logits.astype(jnp.float32), onehot)


def init_state(model: nn.Module, tx: optax.GradientTransformation, rng: jax.Array,
               batch: Dict[str, Any]) -> State:
  """Initial state from a sample batch (parameters from `rng`, dropout key derived from it)."""
  p_rng, d_rng = jax.random.split(rng)
  variables = model.init({"params": p_rng, "dropout": d_rng}, batch, False)
  params = variables["params"]
  return {"params": params, "batch_stats": variables.get("batch_stats", {}), "opt_state": tx.init(params),
          "step": jnp.zeros((), jnp.int32)}


def make_grad_step(model: nn.Module, *, stream_loss_weight: float = 1.0, label_smoothing: float = 0.0):
  """Returns the pure `grad_step(params, batch_stats, step, batch, rng) -> (grads, batch_stats, metrics)`.

  The forward and backward pass of one training step: gradients of the loss with respect to `params` (the tree
  of `params`), the BatchNorm statistics updated by the batch, and the step's metrics except 'grad_norm'
  ('loss', 'top1', 'top5', per stream '<s>_loss' / '<s>_top1', 'finite'). The dropout key is
  `fold_in(rng, step)`.
  """

  def grad_step(params, batch_stats, step: jax.Array, batch: Dict[str, jnp.ndarray], rng: jax.Array):
    step_rng = jax.random.fold_in(rng, step)
    labels = batch["label"]
    has_bn = bool(jax.tree.leaves(batch_stats))

    def loss_fn(params):
      if has_bn:
        out, updates = model.apply({"params": params, "batch_stats": batch_stats}, batch, True,
                                   rngs={"dropout": step_rng}, mutable=["batch_stats"])
      else:
        out, updates = model.apply({"params": params}, batch, True, rngs={"dropout": step_rng}), {}
      fused = jnp.mean(cross_entropy(out["logits"], labels, label_smoothing))
      stream_losses = {s: jnp.mean(cross_entropy(l, labels, label_smoothing))
                       for s, l in out.get("streams", {}).items()}
      loss = fused
      if stream_losses and stream_loss_weight:
        loss = loss + stream_loss_weight * sum(stream_losses.values()) / len(stream_losses)
      return loss, (out, stream_losses, updates.get("batch_stats", batch_stats))

    (loss, (out, stream_losses, new_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    metrics = {"loss": loss, "top1": jnp.mean(topk_correct(out["logits"], labels, 1), dtype=jnp.float32),
               "top5": jnp.mean(topk_correct(out["logits"], labels, 5), dtype=jnp.float32)}
    for s, l in stream_losses.items():
      metrics[f"{s}_loss"] = l
      metrics[f"{s}_top1"] = jnp.mean(topk_correct(out["streams"][s], labels, 1), dtype=jnp.float32)
    # False when the loss is not finite; train.py reads it at log and checkpoint steps only, and checks the state
    # there too (`finite.state_is_finite`, a separate program: inside the step the reduction over every leaf
    # doubled XLA's compile time).
    metrics["finite"] = jnp.isfinite(loss)
    return grads, new_stats, metrics

  return grad_step


def make_update_step(tx: optax.GradientTransformation):
  """Returns the pure `update_step(params, opt_state, step, grads) -> (params, opt_state, step + 1, grad_norm)`:
  the optimiser's update applied to `params`, and the global norm of `grads` (before any clipping)."""

  def update_step(params, opt_state, step: jax.Array, grads):
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, step + 1, optax.global_norm(grads)

  return update_step


def chain(grad_step, update_step):
  """Returns `train_step(state, batch, rng) -> (new_state, metrics)`: `grad_step` (`make_grad_step`'s signature)
  then `update_step` (`make_update_step`'s) on the state dict, 'grad_norm' added to the metrics. The two may be
  pure functions or separately jitted programs (`attn_har.train.train_programs`)."""

  def train_step(state: State, batch: Dict[str, jnp.ndarray], rng: jax.Array) -> Tuple[State, Dict]:
    grads, batch_stats, metrics = grad_step(state["params"], state["batch_stats"], state["step"], batch, rng)
    params, opt_state, step, metrics["grad_norm"] = update_step(state["params"], state["opt_state"], state["step"],
                                                                grads)
    return {"params": params, "batch_stats": batch_stats, "opt_state": opt_state, "step": step}, metrics

  return train_step


def make_train_step(model: nn.Module, tx: optax.GradientTransformation, *, stream_loss_weight: float = 1.0,
                    label_smoothing: float = 0.0):
  """Returns the pure `train_step(state, batch, rng) -> (new_state, metrics)`: `make_grad_step` then
  `make_update_step` in one function (train.py runs the two as separate programs, `attn_har.train.train_programs`)."""
  return chain(make_grad_step(model, stream_loss_weight=stream_loss_weight, label_smoothing=label_smoothing),
               make_update_step(tx))


def make_eval_step(model: nn.Module):
  """Returns the pure `eval_step(variables, batch) -> outputs`: the model's outputs in inference mode, float32."""

  def eval_step(variables: Dict[str, Any], batch: Dict[str, jnp.ndarray]):
    v = {k: val for k, val in variables.items() if k in ("params", "batch_stats") and jax.tree.leaves(val)}
    return jax.tree.map(lambda x: x.astype(jnp.float32), model.apply(v, batch, False))

  return eval_step
