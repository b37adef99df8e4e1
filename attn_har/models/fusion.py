"""Late fusion of the two streams' class scores (Simonyan & Zisserman, NeurIPS 2014, arXiv:1406.2199).

Every fusion module maps per-stream logits {'rgb': [B, K], 'flow': [B, K]} to fused logits [B, K]; for the score
averages these are log-probabilities, log(sum_s w_s softmax(logits_s)), so a softmax of the output gives the fused
probabilities back and cross-entropy on it is the fused model's loss.

  'average'  equal-weight average of the softmax scores (the default; the paper's "by averaging").
  'weighted' fixed per-stream weights (`weights`, normalised to sum 1), e.g. favouring the flow stream.
  'learned'  a trained linear layer over the concatenated per-stream log-softmax scores, initialised to the
             average fusion's ranking (each block 0.5 x identity, zero bias).
  'svm'      the paper's "by SVM": a linear one-vs-rest SVM fitted post hoc on pooled clip features of the TRAIN
             split only (`fit_linear_svm`); during training and validation it behaves like 'average'
             (`SVMFusion.post_hoc_svm` tells the trainer to fit it).

A fusion class reads its own settings from the model config section (`settings(m)`), so adding one touches its
class and `FUSIONS` only.
"""

from typing import Any, ClassVar, Dict, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

STREAMS = ("rgb", "flow")


def _log_weighted_softmax(logits: Dict[str, jnp.ndarray], weights: Sequence[float]) -> jnp.ndarray:
  w = np.asarray(weights, np.float64)
  if w.shape != (len(STREAMS),) or np.any(w < 0) or w.sum() <= 0:
    raise ValueError(f"fusion weights must be {len(STREAMS)} non-negative numbers with a positive sum, got {weights}")
  w = w / w.sum()
  logp = jnp.stack([jax.nn.log_softmax(logits[s].astype(jnp.float32), axis=-1) for s in STREAMS])  # [S, B, K]
  log_w = jnp.log(jnp.asarray(np.maximum(w, 1e-30), jnp.float32))[:, None, None]
  return jax.nn.logsumexp(logp + log_w, axis=0)


class AverageFusion(nn.Module):
  """log of the mean of the streams' softmax scores."""
  post_hoc_svm: ClassVar[bool] = False

  @classmethod
  def settings(cls, m: ml_collections.ConfigDict) -> Dict[str, Any]:
    """Constructor arguments read from the model config section."""
    del m
    return {}

  def __call__(self, logits: Dict[str, jnp.ndarray]) -> jnp.ndarray:
    return _log_weighted_softmax(logits, (1.0,) * len(STREAMS))


class WeightedFusion(nn.Module):
  """log of a fixed weighted mean of the streams' softmax scores.

  Attributes:
    weights: one non-negative weight per stream in the order ('rgb', 'flow'); normalised to sum 1.
  """
  weights: Sequence[float] = (1.0, 2.0)
  post_hoc_svm: ClassVar[bool] = False

  @classmethod
  def settings(cls, m: ml_collections.ConfigDict) -> Dict[str, Any]:
    return {"weights": tuple(m.fusion_weights)}

  def __call__(self, logits: Dict[str, jnp.ndarray]) -> jnp.ndarray:
    return _log_weighted_softmax(logits, self.weights)


class LearnedFusion(nn.Module):
  """Dense(K) over the concatenated per-stream log-softmax scores [B, S*K], initialised to average fusion.

  Attributes:
    num_classes: K.
  """
  num_classes: int
  post_hoc_svm: ClassVar[bool] = False

  @classmethod
  def settings(cls, m: ml_collections.ConfigDict) -> Dict[str, Any]:
    return {"num_classes": m.num_classes}

  @nn.compact
  def __call__(self, logits: Dict[str, jnp.ndarray]) -> jnp.ndarray:
    k = self.num_classes
    x = jnp.concatenate([jax.nn.log_softmax(logits[s].astype(jnp.float32), axis=-1) for s in STREAMS], axis=-1)
    init = lambda key, shape, dtype=jnp.float32: jnp.tile(jnp.eye(k, dtype=dtype), (len(STREAMS), 1)) / len(STREAMS)
    return nn.Dense(k, kernel_init=init, bias_init=nn.initializers.zeros, name="dense")(x)


class SVMFusion(AverageFusion):
  """'average' during training and validation; the trainer then fits the post-hoc linear SVM (`fit_linear_svm`)."""
  post_hoc_svm: ClassVar[bool] = True


FUSIONS = {
    "average": AverageFusion,
    "weighted": WeightedFusion,
    "learned": LearnedFusion,
    "svm": SVMFusion,
}


def fit_linear_svm(features: np.ndarray, labels: np.ndarray, num_classes: int, c: float = 1.0,
                   steps: int = 300) -> Dict[str, np.ndarray]:
  """Fits a one-vs-rest linear SVM (squared hinge, L2) with L-BFGS on standardised features.

  Objective: 0.5 ||W||^2 + C * sum_i sum_k max(0, 1 - y_ik (x_i W_k + b_k))^2 with y_ik in {-1, +1}.

  Args:
    features: [N, D] TRAIN features (never fit on test data).
    labels: [N] int labels in [0, K).
    num_classes: K.
    c: the SVM's C (inverse regularisation strength).
    steps: L-BFGS iterations.

  Returns:
    {'w': [D, K], 'b': [K], 'mean': [D], 'std': [D]} for `svm_scores`.
  """
  x = np.asarray(features, np.float32)
  y = np.asarray(labels)
  if x.ndim != 2 or y.shape != (x.shape[0],):
    raise ValueError(f"fit_linear_svm needs features [N, D] and labels [N], got {x.shape} and {y.shape}")
  if y.min() < 0 or y.max() >= num_classes:
    raise ValueError(f"labels must lie in [0, {num_classes}), got range [{y.min()}, {y.max()}]")
  mean, std = x.mean(0), x.std(0) + 1e-6
  xs = jnp.asarray((x - mean) / std)
  targets = jnp.asarray(np.where(np.eye(num_classes, dtype=bool)[y], 1.0, -1.0), jnp.float32)

  def objective(p):
    margins = jnp.maximum(0.0, 1.0 - targets * (xs @ p["w"] + p["b"]))
    return 0.5 * jnp.sum(p["w"] ** 2) + c * jnp.sum(margins ** 2)

  params = {"w": jnp.zeros((x.shape[1], num_classes), jnp.float32), "b": jnp.zeros((num_classes,), jnp.float32)}
  opt = optax.lbfgs()
  value_and_grad = optax.value_and_grad_from_state(objective)

  @jax.jit
  def step(p, state):
    value, grad = value_and_grad(p, state=state)
    updates, state = opt.update(grad, state, p, value=value, grad=grad, value_fn=objective)
    return optax.apply_updates(p, updates), state

  state = opt.init(params)
  for _ in range(steps):
    params, state = step(params, state)
  return {"w": np.asarray(params["w"]), "b": np.asarray(params["b"]), "mean": mean, "std": std}


def svm_scores(svm: Dict[str, np.ndarray], features: np.ndarray) -> np.ndarray:
  """Returns the SVM decision values [N, K] for features [N, D]."""
  return ((np.asarray(features, np.float32) - svm["mean"]) / svm["std"]) @ svm["w"] + svm["b"]
