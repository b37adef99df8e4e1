"""Evaluation: clip- and video-level top-1/top-5, per-class accuracy and the confusion matrix.

An evaluation loader yields every clip of a subset `views` times (temporal views x spatial crops), padded to
whole batches ('valid' = 0 on padding) with 'index' naming the video. Clip level scores each view alone; video
level averages the softmax scores of a video's views (Simonyan & Zisserman; the thesis's "video-level accuracy,
mean over frames"). With the test protocol (`attn_har.config.base`: eval.frames x eval.crops) and a FrameAverage
stream whose clip score is the mean of its frames' softmax scores (model.frame_consensus='softmax'), a video's
score is the mean softmax over its frames and crops. Per-class accuracy and the confusion matrix (rows = true
class, columns = predicted) are at video level. For two-stream models the same numbers are computed for each
stream alone; `svm_fusion` fits the post-hoc SVM fusion on the streams' training-video scores.
"""

from typing import Any, Callable, Dict, Iterable

import jax
import numpy as np


class NonFiniteScoresError(FloatingPointError):
  """Scores to evaluate hold NaN or inf (a non-finite model); they are never counted as correct."""


def _softmax(x: np.ndarray) -> np.ndarray:
  z = x - x.max(-1, keepdims=True)
  e = np.exp(z)
  return e / e.sum(-1, keepdims=True)


def topk_correct(scores, labels, k: int):
  """[B] bool: the label is among the top-k scores (k capped at K; ties count against the label).

  Works on numpy arrays (evaluation) and on jax arrays inside jit (the train step's metrics) alike.
  """
  k = min(k, scores.shape[-1])
  label_score = scores[np.arange(labels.shape[0]), labels][:, None]
  return (scores > label_score).sum(-1) < k


def _topk(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
  if len(labels) == 0:
    return float("nan")
  return float(np.mean(topk_correct(scores, labels, k)))


def _mean_per_video(values: np.ndarray, labels: np.ndarray, index: np.ndarray):
  """Averages per-clip rows over the clips of each video: ([V, D] means, [V] labels), videos sorted by index."""
  videos, inverse = np.unique(index, return_inverse=True)
  means = np.zeros((len(videos), values.shape[-1]))
  np.add.at(means, inverse, values)
  means /= np.bincount(inverse, minlength=len(videos))[:, None]
  vlabels = np.zeros(len(videos), np.int64)
  vlabels[inverse] = labels
  return means, vlabels


def score_metrics(logits: np.ndarray, labels: np.ndarray, index: np.ndarray, num_classes: int) -> Dict[str, Any]:
  """Metrics of clip-level logits [N, K] with labels [N] and video indices [N].

  Returns:
    {'clip': {'top1', 'top5', 'loss', 'count'}, 'video': {'top1', 'top5', 'count'},
     'per_class': [K] video-level accuracy (NaN for classes absent), 'confusion': [K, K] int counts}.
  """
  logits = np.asarray(logits, np.float64)
  labels = np.asarray(labels, np.int64)
  bad = int(np.sum(~np.all(np.isfinite(logits), axis=-1)))
  if bad:
    raise NonFiniteScoresError(f"{bad} of {len(logits)} clip scores are not finite (NaN or inf): the model state "
                               f"is not finite; nothing is scored")
  probs = _softmax(logits)
  nll = -np.log(np.maximum(probs[np.arange(len(labels)), labels], 1e-30)) if len(labels) else np.zeros(0)
  vprobs, vlabels = _mean_per_video(probs, labels, index)
  pred = vprobs.argmax(-1)
  confusion = np.zeros((num_classes, num_classes), np.int64)
  np.add.at(confusion, (vlabels, pred), 1)
  totals = confusion.sum(1)
  with np.errstate(invalid="ignore", divide="ignore"):
    per_class = np.where(totals > 0, np.diag(confusion) / totals, np.nan)
  return {
      "clip": {"top1": _topk(logits, labels, 1), "top5": _topk(logits, labels, 5),
               "loss": float(nll.mean()) if len(nll) else float("nan"), "count": int(len(labels))},
      "video": {"top1": _topk(vprobs, vlabels, 1), "top5": _topk(vprobs, vlabels, 5), "count": int(len(vlabels))},
      "per_class": per_class.tolist(),
      "confusion": confusion.tolist(),
  }


def collect(eval_fn: Callable, variables: Any, batches: Iterable[Dict[str, Any]]) -> Dict[str, np.ndarray]:
  """Runs `eval_fn(variables, batch)` over the batches; returns the valid rows' logits (per stream), labels, index."""
  rows: Dict[str, list] = {"logits": [], "label": [], "index": []}
  streams: Dict[str, list] = {}
  for batch in batches:
    out = jax.device_get(eval_fn(variables, batch))
    b = jax.device_get({k: batch[k] for k in ("label", "index", "valid") if k in batch})
    valid = np.asarray(b["valid"], bool) if "valid" in b else np.ones(len(b["label"]), bool)
    rows["logits"].append(np.asarray(out["logits"])[valid])
    rows["label"].append(np.asarray(b["label"])[valid])
    rows["index"].append(np.asarray(b.get("index", np.arange(len(valid))))[valid])
    for s, l in out.get("streams", {}).items():
      streams.setdefault(s, []).append(np.asarray(l)[valid])
  if not rows["label"]:
    raise ValueError("the evaluation loader yielded no batches")
  result = {k: np.concatenate(v) for k, v in rows.items()}
  result["streams"] = {s: np.concatenate(v) for s, v in streams.items()}
  return result


def metrics(collected: Dict[str, Any], num_classes: int) -> Dict[str, Any]:
  """`score_metrics` of `collect`'s fused rows plus {'streams': {name: score_metrics}}."""
  c = collected
  result = score_metrics(c["logits"], c["label"], c["index"], num_classes)
  result["streams"] = {s: score_metrics(l, c["label"], c["index"], num_classes) for s, l in c["streams"].items()}
  return result


def evaluate(eval_fn: Callable, variables: Any, batches: Iterable[Dict[str, Any]], num_classes: int
             ) -> Dict[str, Any]:
  """Full evaluation: `metrics` of `collect` over the batches."""
  return metrics(collect(eval_fn, variables, batches), num_classes)


def video_scores(collected: Dict[str, Any]) -> Dict[str, Any]:
  """Video-level softmax scores of `collect`'s rows: {'streams': {name: [V, K]}, 'fused': [V, K], 'label': [V],
  'index': [V]}, each the mean over a video's views of the softmax scores (videos sorted by index)."""
  index = np.asarray(collected["index"])
  fused, labels = _mean_per_video(_softmax(np.asarray(collected["logits"], np.float64)), collected["label"], index)
  streams = {s: _mean_per_video(_softmax(np.asarray(l, np.float64)), collected["label"], index)[0]
             for s, l in collected["streams"].items()}
  return {"streams": streams, "fused": fused, "label": labels, "index": np.unique(index)}


def svm_fusion(train: Dict[str, Any], test: Dict[str, Any], num_classes: int, c: float = 1.0,
               max_iter: int = 10000) -> Dict[str, Any]:
  """Simonyan & Zisserman's SVM fusion: a Crammer & Singer linear SVM on the stacked, L2-normalised video-level
  softmax scores of the two streams (`fusion.svm_inputs`), fitted on the training videos and scored on the test
  videos.

  Args:
    train: `collect`'s rows of the 'train' videos scored with the test protocol (the only videos the fit sees; with
      several processes, every process's rows gathered, as for `test`).
    test: `collect`'s rows of the test videos (the test evaluation's own, so the test set is run once).
    num_classes, c, max_iter: as in `fusion.fit_linear_svm`.

  Returns:
    {'top1', 'top5', 'train_videos', 'test_videos'} of the SVM's test predictions.
  """
  from attn_har.models import fusion  # pylint: disable=import-outside-toplevel
  train = video_scores(train)
  svm = fusion.fit_linear_svm(fusion.svm_inputs(train["streams"]), train["label"], num_classes, c=c,
                              max_iter=max_iter)
  test = video_scores(test)
  scores = fusion.svm_scores(svm, fusion.svm_inputs(test["streams"]))
  return {"top1": _topk(scores, test["label"], 1), "top5": _topk(scores, test["label"], 5),
          "train_videos": int(len(train["label"])), "test_videos": int(len(test["label"]))}


def summary(result: Dict[str, Any]) -> Dict[str, float]:
  """Flat scalars for metric logging: loss, top1/top5 (video level), clip_top1/clip_top5, <stream>_top1."""
  out = {"loss": result["clip"]["loss"], "top1": result["video"]["top1"], "top5": result["video"]["top5"],
         "clip_top1": result["clip"]["top1"], "clip_top5": result["clip"]["top5"]}
  for s, r in result.get("streams", {}).items():
    out[f"{s}_top1"] = r["video"]["top1"]
    out[f"{s}_clip_top1"] = r["clip"]["top1"]
  return out
