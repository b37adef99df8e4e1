"""The attention-quality study: plan order, resumable training and scoring, paired comparisons in the report."""

import json
import pathlib

import numpy as np
import pytest

from attn_har.analysis import quality_table, study, study_doc

FAKE_LAUNCH = """
import json, pathlib, sys
args = dict(a.split("=", 1) for a in sys.argv[1:])
workdir = pathlib.Path(args["--workdir"])
if "fail" in str(workdir) and not (workdir.parent / "fixed").exists():
  sys.exit(3)
workdir.mkdir(parents=True, exist_ok=True)
seed = int(args["--config"].split("seed=")[1].split(",")[0])
(workdir / "results.json").write_text(json.dumps({"test": {"top1": 0.1 * seed}, "wall_seconds_this_run": 1.0,
                                                  "config_arg": args["--config"]}))
"""


def test_plan_is_seed_major_and_checks_models():
  plan = study.study_plan("marked", (0, 1), ("baseline", "cbam"))
  assert [r.name for r in plan] == ["synthetic_marked_baseline_seed0", "synthetic_marked_cbam_seed0",
                                    "synthetic_marked_baseline_seed1", "synthetic_marked_cbam_seed1"]
  assert study.study_plan("motion", (0,), ("gate",))[0].config == "synthetic_gate"
  with pytest.raises(KeyError, match="unknown models"):
    study.study_plan("marked", (0,), ("cbma",))


def test_training_skips_finished_runs_and_resumes_after_a_failure(tmp_path):
  launcher = tmp_path / "fake_launch.py"
  launcher.write_text(FAKE_LAUNCH)
  root = tmp_path / "root"
  plan = [study.Run("baseline", 0, "synthetic_marked_baseline"), study.Run("cbam", 0, "fail"),
          study.Run("cbam", 1, "synthetic_marked_cbam")]
  with pytest.raises(RuntimeError, match="fail_seed0 failed .*exit status 3.*fail_seed0.log"):
    study.train_runs(plan, root, log=lambda s: None, launcher=launcher, config_arg="smoke")
  assert (root / "synthetic_marked_baseline_seed0" / "results.json").exists()
  assert not (root / "synthetic_marked_cbam_seed1").exists()
  first = (root / "synthetic_marked_baseline_seed0" / "results.json").stat().st_mtime_ns
  (root / "fixed").write_text("")
  study.train_runs(plan, root, log=lambda s: None, launcher=launcher, config_arg="smoke")
  assert (root / "synthetic_marked_baseline_seed0" / "results.json").stat().st_mtime_ns == first  # not re-run
  done = [e["run"] for e in study.read_log(root) if e["part"] == "train"]
  assert done == ["synthetic_marked_baseline_seed0", "fail_seed0", "synthetic_marked_cbam_seed1"]
  r = json.loads((root / "synthetic_marked_cbam_seed1" / "results.json").read_text())
  assert r["config_arg"].endswith("synthetic_marked_cbam.py:seed=1,smoke")
  assert study.test_accuracy(plan[2:], root)["cbam"][1]["fused"] == pytest.approx(0.1)


def test_scores_are_cached_per_settings(tmp_path, monkeypatch):
  calls = []

  def fake_evaluate(workdir, **settings):
    calls.append((pathlib.Path(workdir).name, settings["seed"]))
    return {"model": "m", "seed": 0, "value": len(calls)}
  monkeypatch.setattr(quality_table, "evaluate_run", fake_evaluate)
  plan = [study.Run("cbam", 0, "c"), study.Run("cbam", 1, "c")]
  first = study.score_runs(plan, tmp_path, {"seed": 0}, log=lambda s: None)
  again = study.score_runs(plan, tmp_path, {"seed": 0}, log=lambda s: None)
  assert [r["value"] for r in again] == [r["value"] for r in first] == [1, 2] and len(calls) == 2
  study.score_runs(plan[:1], tmp_path, {"seed": 1}, log=lambda s: None)  # other settings: scored again
  assert calls[-1] == ("c_seed0", 1)


def _scores(model, seed, attention, gradcam, clips=4, frames=3):
  frame_clip = np.repeat(np.arange(clips), frames)
  n = frame_clip.size
  rec = {"attention/combined": {"pointing": attention, "energy": attention},
         "gradcam/combined": {"pointing": gradcam, "energy": gradcam}}
  return {"model": model, "seed": seed, "frame_clip": frame_clip, "frame_label": np.zeros(n, int),
          "perturbed": np.arange(0), "static": [False] * clips, "streams": {"flow": rec}}


def test_headline_pairs_attention_with_own_and_vanilla_gradcam_on_the_same_frames():
  rng = np.random.default_rng(0)
  hit = (rng.random(12) < 0.5).astype(float)
  scores = [_scores("baseline", s, hit, hit) for s in (0, 1)]
  scores += [_scores("cbam", s, np.ones(12), hit) for s in (0, 1)]      # attention always points at the actor
  scores += [_scores("gate", s, hit, hit) for s in (0, 1)]              # attention equals Grad-CAM
  rows = {(r["model"], r["metric"]): r for r in study_doc.headline_rows(scores, "baseline")}
  cbam = rows[("cbam", "pointing")]
  assert cbam["vs_vanilla"].estimate == pytest.approx(1 - hit.mean())
  assert cbam["vs_vanilla"].low > 0 and study_doc._verdict(cbam["vs_vanilla"], "pointing") == "better"
  gate = rows[("gate", "pointing")]
  assert gate["vs_own"].estimate == 0 and gate["vs_own"].low == gate["vs_own"].high == 0
  assert study_doc._verdict(gate["vs_vanilla"], "pointing") == "no difference"
  lines = study_doc.summary_lines(list(rows.values()))
  assert any("better than the vanilla model's Grad-CAM for 1 of 2 mechanisms (cbam)" in s for s in lines), lines


def test_accuracy_table_reports_mean_and_spread_over_seeds():
  acc = {"cbam": {0: {"fused": 0.5, "flow": 0.4}, 1: {"fused": 0.7, "flow": 0.6}}}
  line = study_doc.accuracy_table(acc)[2]
  assert "0.600 ± 0.141" in line and "0.500, 0.700" in line, line


def test_cli_rejects_unknown_parts():
  from attn_har import study as cli
  assert cli.main(["--parts", "train,plots", "--root", "/nonexistent/never"]) == 2




def test_report_renders_accuracy_answer_and_references(tmp_path):
  from attn_har.analysis import quality_report
  hit = np.tile([1.0, 0.0, 1.0], 4)
  scores = [_scores("baseline", 0, hit, hit), _scores("cbam", 0, np.ones(12), hit)]
  for s in scores:
    s["streams"]["flow"]["uniform"] = {"pointing": np.zeros(12), "energy": np.zeros(12)}
    for rec in s["streams"]["flow"].values():
      rec.update({k: [] for k in ("deletion", "insertion", "road_morf", "road_lerf")})
    s["class_names"] = ["a"]
  plan = [study.Run("baseline", 0, "synthetic_marked_baseline"), study.Run("cbam", 0, "synthetic_marked_cbam")]
  ctx = {"command": "python -m attn_har.study", "repo": tmp_path, "root": tmp_path, "scene": "marked", "plan": plan,
         "accuracy": {"baseline": {0: {"fused": 0.5}}, "cbam": {0: {"fused": 0.6, "flow": 0.55}}},
         "scores": scores, "rows": quality_report.table_rows(scores),
         "head": study_doc.headline_rows(scores, "baseline"), "sanity_md": "# Sanity\n\nok", "figures": {"g": "a/g.png"},
         "stage_shapes": {"cbam": {"flow": {"late": [3, 3]}}}, "log": [{"part": "train", "run": "x", "seconds": 120}],
         "full_table": "a/quality.md", "settings": {"videos": 4}}
  text = study_doc.render(ctx)
  assert "| cbam | 1 | 0.600 ± 0.000 | 0.600 | 0.550 ± 0.000 | n/a |" in text
  assert "cbam, flow: late 3x3" in text and "2.0 min in all" in text and "![g](a/g.png)" in text
  assert "| cbam | pointing ↑ | 1.000 [1.000, 1.000] |" in text and "uniform 0.000" in text
