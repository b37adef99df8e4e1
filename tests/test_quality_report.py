"""The quality table's statistics on hand-built per-frame scores: intervals, seeds, paired differences, static clips."""

import json

import numpy as np
import pytest

from attn_har.analysis import quality_report
from attn_har.analysis.quality_table import METRICS

CLIPS, T = 6, 2


def _run(seed, static=(), flow_hits=None, name="m"):
  """A fake `evaluate_run` result: 6 clips x 2 frames, clip k of class k % 3, one perturbed frame per clip."""
  rng = np.random.default_rng(seed)
  n = CLIPS * T
  perturbed = list(range(0, n, T))

  def rec(hits):
    hits = np.asarray(hits, float)
    return {"pointing": hits.tolist(), "energy": (hits * 0.5).tolist(),
            **{k: (hits[perturbed] * 0.25).tolist() for k in METRICS[2:]}}

  attention = rng.integers(0, 2, n)
  flow_hits = attention if flow_hits is None else np.asarray(flow_hits)
  return {"model": name, "seed": seed, "step": 1, "clips": CLIPS, "frames": n, "mask_area": 0.1,
          "class_names": ["a", "b", "c"], "frame_clip": np.repeat(np.arange(CLIPS), T).tolist(),
          "frame_label": np.repeat(np.arange(CLIPS) % 3, T).tolist(), "perturbed": perturbed,
          "static": [k in static for k in range(CLIPS)],
          "streams": {"rgb": {"attention/combined": rec(attention), "center_bias": rec(np.zeros(n)),
                              "uniform": rec(np.full(n, 0.1))},
                      "flow": {"attention/combined": rec(flow_hits), "flow_magnitude": rec(flow_hits),
                               "uniform": rec(np.full(n, 0.1))}}}


def _rows(runs):
  return {(r["model"], r["stream"], r["clips"], r["method"]): r for r in quality_report.table_rows(runs)}


def test_rows_carry_a_clip_bootstrap_interval_around_the_mean():
  rows = _rows([_run(0)])
  r = rows[("m", "rgb", "all", "attention/combined")]
  hits = np.asarray(_run(0)["streams"]["rgb"]["attention/combined"]["pointing"])
  assert r["pointing"]["mean"] == pytest.approx(hits.mean())
  assert r["pointing"]["lo"] <= r["pointing"]["mean"] <= r["pointing"]["hi"]
  assert (r["pointing"]["n"], r["pointing"]["clips"], r["deletion"]["n"]) == (12, 6, 6)
  # per class: clip k has class k % 3
  per_class = {c: hits.reshape(CLIPS, T)[np.arange(CLIPS) % 3 == i].mean() for i, c in enumerate("abc")}
  assert r["pointing_per_class"] == pytest.approx(per_class)


def test_paired_difference_is_against_the_best_reference_and_zero_for_identical_maps():
  rows = _rows([_run(0)])
  rgb = rows[("m", "rgb", "all", "attention/combined")]["pointing"]["vs_reference"]
  assert rgb["reference"] == "uniform"                           # 0.1 beats the centre bias's 0
  flow = rows[("m", "flow", "all", "attention/combined")]["pointing"]["vs_reference"]
  assert flow["reference"] == "flow_magnitude"
  assert (flow["mean"], flow["lo"], flow["hi"]) == (0.0, 0.0, 0.0)  # the map equals the flow magnitude
  assert "vs_reference" not in rows[("m", "flow", "all", "uniform")]["pointing"]


def test_static_clips_get_rows_of_their_own_in_the_flow_stream_only():
  rows = _rows([_run(0, static=(1, 4))])
  assert ("m", "flow", "all", "uniform") not in rows
  moving, still = rows[("m", "flow", "moving", "uniform")], rows[("m", "flow", "static", "uniform")]
  assert (moving["pointing"]["clips"], still["pointing"]["clips"]) == (4, 2)
  assert (moving["deletion"]["n"], still["deletion"]["n"]) == (4, 2)
  assert rows[("m", "rgb", "all", "uniform")]["pointing"]["clips"] == 6


def test_runs_of_one_model_pool_as_seeds_with_their_spread():
  runs = [_run(0), _run(1), _run(2, name="other")]
  rows = _rows(runs)
  r = rows[("m", "rgb", "all", "attention/combined")]
  means = [np.mean(x["streams"]["rgb"]["attention/combined"]["pointing"]) for x in runs[:2]]
  assert r["seeds"] == 2 and r["pointing"]["n"] == 24
  assert r["pointing"]["seeds"]["mean"] == pytest.approx(np.mean(means))
  assert r["pointing"]["seeds"]["std"] == pytest.approx(np.std(means, ddof=1))
  assert rows[("other", "rgb", "all", "attention/combined")]["seeds"] == 1


def test_write_table_writes_markdown_and_json(tmp_path):
  rows = quality_report.table_rows([_run(0, static=(2,)), _run(1)])
  paths = quality_report.write_table(rows, tmp_path, {"runs": 2})
  text = paths["markdown"].read_text()
  assert "| m | flow | static | uniform |" in text and "Paired differences" in text and "Across training seeds" in text
  assert json.loads(paths["json"].read_text())["rows"][0]["pointing"]["n"] == 24
