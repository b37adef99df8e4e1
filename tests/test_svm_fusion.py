"""S&Z SVM fusion (`models.fusion.svm_inputs` / `fit_linear_svm`, `train.evaluate.svm_fusion`): a Crammer & Singer
linear SVM on the stacked, L2-normalised softmax scores of the two streams, fitted on training videos only."""

import numpy as np
import pytest
from sklearn.svm import LinearSVC

from attn_har.models import fusion
from attn_har.train import evaluate


def _scores(labels, rng, k=3):
  """Toy stream scores: the RGB stream confidently names class (y + 1) % k (a systematic confusion), the flow stream
  leans weakly to y. Averaging the two is wrong on every video; the stacked scores are linearly separable."""
  n = len(labels)
  rgb = np.full((n, k), 0.05) + rng.uniform(0, 0.02, (n, k))
  rgb[np.arange(n), (labels + 1) % k] = 0.9
  flow = np.full((n, k), 0.3) + rng.uniform(0, 0.05, (n, k))
  flow[np.arange(n), labels] = 0.45
  norm = lambda x: x / x.sum(-1, keepdims=True)
  return {"rgb": norm(rgb), "flow": norm(flow)}


def test_svm_inputs_stack_l2_normalised_stream_scores():
  s = {"rgb": np.array([[3.0, 4.0]]), "flow": np.array([[1.0, 0.0]])}
  np.testing.assert_allclose(fusion.svm_inputs(s), [[0.6, 0.8, 1.0, 0.0]], atol=1e-7)
  with pytest.raises(KeyError, match="flow"):
    fusion.svm_inputs({"rgb": s["rgb"]})


def test_svm_classifies_separable_toy_scores_perfectly_where_averaging_fails():
  rng = np.random.default_rng(0)
  y_train, y_test = np.repeat(np.arange(3), 20), np.repeat(np.arange(3), 10)
  train, test = _scores(y_train, rng), _scores(y_test, rng)
  assert np.mean(((test["rgb"] + test["flow"]) / 2).argmax(-1) == y_test) == 0.0   # the average fusion fails
  svm = fusion.fit_linear_svm(fusion.svm_inputs(train), y_train, 3, c=1.0)
  assert np.mean(fusion.svm_scores(svm, fusion.svm_inputs(train)).argmax(-1) == y_train) == 1.0
  assert np.mean(fusion.svm_scores(svm, fusion.svm_inputs(test)).argmax(-1) == y_test) == 1.0
  # It is scikit-learn's Crammer & Singer machine: the same decisions.
  ref = LinearSVC(multi_class="crammer_singer", C=1.0, max_iter=10000, random_state=0)
  ref.fit(fusion.svm_inputs(train), y_train)
  np.testing.assert_allclose(fusion.svm_scores(svm, fusion.svm_inputs(test)),
                             ref.decision_function(fusion.svm_inputs(test)), rtol=1e-5, atol=1e-6)


def test_svm_with_two_or_missing_classes_ranks_unseen_classes_last():
  x = np.array([[0.0, 1.0], [0.1, 0.9], [1.0, 0.0], [0.9, 0.2]])
  y = np.array([3, 3, 1, 1])                          # classes 0 and 2 have no training videos
  svm = fusion.fit_linear_svm(x, y, 4)
  scores = fusion.svm_scores(svm, x)
  np.testing.assert_array_equal(scores.argmax(-1), y)
  assert np.all(np.isfinite(scores)) and np.all(scores[:, [0, 2]] == fusion.ABSENT_SCORE)
  with pytest.raises(ValueError, match="labels"):
    fusion.fit_linear_svm(x, y + 1, 4)


def _batches(scores, labels, index, batch=4):
  """Evaluation batches of per-view stream log-scores; the last one padded ('valid' = 0)."""
  n = len(labels)
  pad = -n % batch
  rows = {s: np.log(np.concatenate([v, v[:pad]])) for s, v in scores.items()}
  label, idx = np.concatenate([labels, labels[:pad]]), np.concatenate([index, index[:pad]])
  valid = np.r_[np.ones(n, np.int32), np.zeros(pad, np.int32)]
  return [{"rgb": rows["rgb"][i:i + batch], "flow": rows["flow"][i:i + batch], "label": label[i:i + batch],
           "index": idx[i:i + batch], "valid": valid[i:i + batch]} for i in range(0, n + pad, batch)]


def test_svm_fusion_is_fitted_on_training_videos_only(monkeypatch):
  rng = np.random.default_rng(1)
  y_train, y_test = np.repeat(np.arange(3), 6), np.repeat(np.arange(3), 3)
  train, test = _scores(y_train, rng), _scores(y_test, rng)
  # Two views per training video (the second a copy): the fit sees one row per video, the mean of its views.
  views = {s: np.repeat(v, 2, axis=0) for s, v in train.items()}
  subsets = {"train": _batches(views, np.repeat(y_train, 2), np.repeat(np.arange(18), 2)),
             "test": _batches(test, y_test, np.arange(9)),
             "val": None}   # reading it fails the test
  asked, fitted = [], []
  fit = fusion.fit_linear_svm

  def spy(features, labels, *args, **kwargs):
    fitted.append((np.array(features), np.array(labels)))
    return fit(features, labels, *args, **kwargs)

  monkeypatch.setattr(fusion, "fit_linear_svm", spy)

  def batches_of(subset):
    asked.append(subset)
    return subsets[subset]

  eval_fn = lambda v, b: {"logits": b["rgb"], "streams": {"rgb": b["rgb"], "flow": b["flow"]}}
  test_rows = evaluate.collect(eval_fn, None, batches_of("test"))      # the test evaluation's own rows
  r = evaluate.svm_fusion(evaluate.collect(eval_fn, None, batches_of("train")), test_rows, 3, c=1.0)
  assert asked == ["test", "train"] and len(fitted) == 1
  features, labels = fitted[0]
  np.testing.assert_allclose(features, fusion.svm_inputs(train), atol=1e-6)    # exactly the training videos
  np.testing.assert_array_equal(labels, y_train)
  assert r["train_videos"] == 18 and r["test_videos"] == 9 and r["top1"] == 1.0
