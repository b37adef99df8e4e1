"""Evaluation aggregation with values: video scores average softmax (not logits) over views that disagree,
`collect` drops padding and keeps streams apart, `summary` names the right numbers."""

import numpy as np
import pytest

from attn_har.train import evaluate


def _softmax(x):
  e = np.exp(x - x.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


# Video 0 (label 0) has two views that disagree. View A is sure of class 0; view B puts a very negative logit on
# class 0 and leans to class 2. Mean softmax: [0.50, 0.13, 0.37] -> class 0; mean logits: [-10, 0, 0.5] -> class 2.
VIEWS = np.array([[10.0, 0.0, 0.0], [-30.0, 0.0, 1.0],   # video 0
                  [0.0, 2.0, 0.0]])                       # video 1 (label 1), one view
LABELS = np.array([0, 0, 1])
INDEX = np.array([0, 0, 1])


def test_video_scores_average_softmax_over_views_that_disagree():
  assert _softmax(VIEWS[:2]).mean(0).argmax() == 0 and VIEWS[:2].mean(0).argmax() == 2   # the case is real
  r = evaluate.score_metrics(VIEWS, LABELS, INDEX, 3)
  assert r["video"]["top1"] == 1.0 and r["video"]["count"] == 2
  assert r["clip"]["top1"] == pytest.approx(2 / 3) and r["clip"]["count"] == 3
  np.testing.assert_array_equal(r["confusion"], [[1, 0, 0], [0, 1, 0], [0, 0, 0]])
  assert r["per_class"][:2] == [1.0, 1.0] and np.isnan(r["per_class"][2])
  nll = -np.log(_softmax(VIEWS)[np.arange(3), LABELS]).mean()
  assert r["clip"]["loss"] == pytest.approx(nll, rel=1e-9)


def test_video_top5_ranks_by_mean_softmax():
  # 7 classes; the label's mean softmax is 6th of 7 although one view ranks it first.
  logits = np.array([[5.0, 0, 0, 0, 0, 0, 0], [-40.0, 6, 5, 4, 3, 2, -50]])
  r = evaluate.score_metrics(logits, np.array([0, 0]), np.array([4, 4]), 7)
  probs = _softmax(logits).mean(0)
  rank = int((probs > probs[0]).sum())
  assert r["video"]["top5"] == float(rank < 5)
  assert r["clip"]["top5"] == 0.5


def _batch(rows, labels, index, valid, streams=None):
  out = {"logits": np.asarray(rows, np.float32)}
  if streams:
    out["streams"] = {k: np.asarray(v, np.float32) for k, v in streams.items()}
  batch = {"label": np.asarray(labels), "index": np.asarray(index), "valid": np.asarray(valid)}
  return batch, out


def test_collect_drops_padding_and_keeps_streams_apart():
  b1, o1 = _batch([[1, 0], [0, 1]], [0, 1], [0, 1], [1, 1], {"rgb": [[2, 0], [0, 2]], "flow": [[3, 0], [0, 3]]})
  b2, o2 = _batch([[5, 5], [9, 9]], [1, 0], [2, 0], [1, 0], {"rgb": [[6, 6], [8, 8]], "flow": [[7, 7], [8, 8]]})
  outputs = {id(b1): o1, id(b2): o2}
  c = evaluate.collect(lambda v, b: outputs[id(b)], None, [b1, b2])
  np.testing.assert_array_equal(c["logits"], [[1, 0], [0, 1], [5, 5]])
  np.testing.assert_array_equal(c["label"], [0, 1, 1])
  np.testing.assert_array_equal(c["index"], [0, 1, 2])
  np.testing.assert_array_equal(c["streams"]["rgb"], [[2, 0], [0, 2], [6, 6]])
  np.testing.assert_array_equal(c["streams"]["flow"], [[3, 0], [0, 3], [7, 7]])
  with pytest.raises(ValueError, match="no batches"):
    evaluate.collect(lambda v, b: None, None, [])


def test_evaluate_scores_each_stream_on_its_own_logits():
  # The fused output is right on both videos, rgb on none, flow on one.
  b, o = _batch([[3, 0], [0, 3]], [0, 1], [0, 1], [1, 1], {"rgb": [[0, 3], [3, 0]], "flow": [[3, 0], [3, 0]]})
  r = evaluate.evaluate(lambda v, batch: o, None, [b], 2)
  assert r["video"]["top1"] == 1.0
  assert r["streams"]["rgb"]["video"]["top1"] == 0.0 and r["streams"]["flow"]["video"]["top1"] == 0.5
  s = evaluate.summary(r)
  assert s == {"loss": r["clip"]["loss"], "top1": 1.0, "top5": 1.0, "clip_top1": 1.0, "clip_top5": 1.0,
               "rgb_top1": 0.0, "rgb_clip_top1": 0.0, "flow_top1": 0.5, "flow_clip_top1": 0.5}


def test_summary_takes_video_level_top1_and_clip_level_loss():
  r = evaluate.score_metrics(VIEWS, LABELS, INDEX, 3)
  s = evaluate.summary(r)
  assert s["top1"] == r["video"]["top1"] == 1.0
  assert s["clip_top1"] == r["clip"]["top1"] == pytest.approx(2 / 3)
  assert s["loss"] == r["clip"]["loss"] and s["top5"] == r["video"]["top5"]
