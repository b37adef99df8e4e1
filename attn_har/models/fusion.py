"""Late fusion of the two streams' class scores (Simonyan & Zisserman, NeurIPS 2014, arXiv:1406.2199).

Every fusion module maps per-stream logits {'rgb': [B, K], 'flow': [B, K]} to fused logits [B, K]; for the score
averages these are log-probabilities, log(sum_s w_s softmax(logits_s)), so a softmax of the output gives the fused
probabilities back and cross-entropy on it is the fused model's loss.

  'average'  equal-weight average of the softmax scores (the default; the paper's "by averaging").
  'weighted' fixed per-stream weights (`weights`, normalised to sum 1), e.g. favouring the flow stream.
  'learned'  a trained linear layer over the concatenated per-stream log-softmax scores, initialised to the
             average fusion's ranking (each block 0.5 x identity, zero bias).
  'svm'      the paper's "by SVM": a multi-class linear SVM (Crammer & Singer) fitted post hoc on the stacked,
             L2-normalised video-level softmax scores of the two streams (`svm_inputs`, `fit_linear_svm`) of the
             TRAINING videos only; during training and validation it behaves like 'average'
             (`SVMFusion.post_hoc_svm` tells the trainer to fit it, `attn_har.train.evaluate.svm_fusion`).

A fusion class reads its own settings from the model config section (`settings(m)`), so adding one touches its
class and `FUSIONS` only.
"""

from typing import Any, ClassVar, Dict, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

STREAMS = ("rgb", "flow")
ABSENT_SCORE = -1e30   # the SVM score of a class without training videos (finite: evaluation rejects inf)


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


def svm_inputs(scores: Dict[str, np.ndarray]) -> np.ndarray:
  """The SVM's input: each stream's video-level softmax scores [V, K] L2-normalised per video, stacked in the order
  of `STREAMS` -> [V, S*K]."""
  missing = [s for s in STREAMS if s not in scores]
  if missing:
    raise KeyError(f"SVM fusion needs the scores of every stream {STREAMS}; missing {missing}")
  parts = []
  for s in STREAMS:
    x = np.asarray(scores[s], np.float64)
    parts.append(x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12))
  return np.concatenate(parts, axis=-1).astype(np.float32)


def fit_linear_svm(features: np.ndarray, labels: np.ndarray, num_classes: int, c: float = 1.0,
                   max_iter: int = 10000) -> Dict[str, np.ndarray]:
  """Fits a multi-class linear SVM (Crammer & Singer) with scikit-learn's `LinearSVC`.

  Objective: 0.5 sum_k ||w_k||^2 + C sum_i max(0, 1 + max_{k != y_i} (w_k x_i + b_k) - (w_{y_i} x_i + b_{y_i})).

  Args:
    features: [N, D] inputs of the TRAINING videos (e.g. `svm_inputs`; never test data).
    labels: [N] int labels in [0, K); classes absent from them get the lowest score.
    num_classes: K.
    c: the SVM's C (inverse regularisation strength).
    max_iter: the dual solver's iteration limit.

  Returns:
    {'w': [D, K], 'b': [K]} for `svm_scores`.
  """
  from sklearn.svm import LinearSVC  # pylint: disable=import-outside-toplevel
  x = np.asarray(features, np.float64)
  y = np.asarray(labels)
  if x.ndim != 2 or y.shape != (x.shape[0],) or len(y) == 0:
    raise ValueError(f"fit_linear_svm needs features [N, D] and labels [N] with N >= 1, got {x.shape} and {y.shape}")
  if y.min() < 0 or y.max() >= num_classes:
    raise ValueError(f"labels must lie in [0, {num_classes}), got range [{y.min()}, {y.max()}]")
  present = np.unique(y)
  w = np.zeros((x.shape[1], num_classes), np.float32)
  b = np.full((num_classes,), ABSENT_SCORE, np.float32)
  if len(present) == 1:   # one class: it always wins
    b[present[0]] = 0.0
    return {"w": w, "b": b}
  svm = LinearSVC(multi_class="crammer_singer", C=c, max_iter=max_iter, random_state=0).fit(x, y)
  coef, intercept = svm.coef_, svm.intercept_
  if len(present) == 2 and coef.shape[0] == 1:   # scikit-learn stores a binary problem as one hyperplane
    coef, intercept = np.concatenate([-coef, coef]) / 2, np.concatenate([-intercept, intercept]) / 2
  w[:, present] = coef.T
  b[present] = intercept
  return {"w": w, "b": b}


def svm_scores(svm: Dict[str, np.ndarray], features: np.ndarray) -> np.ndarray:
  """Returns the SVM decision values [N, K] for features [N, D] (`ABSENT_SCORE` for classes it never saw)."""
  return np.asarray(features, np.float32) @ svm["w"] + svm["b"]
