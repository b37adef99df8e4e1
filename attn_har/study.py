"""The attention-quality study in one resumable command: train, score, check, draw, write docs/attention_quality.md.

  python -m attn_har.study [--scene marked] [--seeds 0,1,2] [--root runs/attention_study]
                           [--doc docs/attention_quality.md] [--parts train,score,sanity,figures,doc]

The vanilla model and the five mechanisms (L2PA, gate, grid gate, residual, CBAM) x the seeds are trained with
`launch.py` (configs/synthetic_marked_<model>.py, or configs/synthetic_<model>.py for --scene motion), every map
method of `attn_har.analysis.quality_table` is scored on the test clips of each run, the parameter-randomisation
check runs on seed 0 of each model, stage grids and curves are drawn, and the report is written from these files.
Killed and re-run, it continues where it stopped (finished runs and scores are kept; a half-trained run resumes
from its checkpoint). `--parts train` alone trains; the parts split the study into sessions of any length.
"""

import argparse
import json
import pathlib
import shutil
import sys
import time


def parse_flags(argv):
  from attn_har.analysis import study  # pylint: disable=import-outside-toplevel
  p = argparse.ArgumentParser(prog="python -m attn_har.study", description=__doc__.split("\n\n")[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
  p.add_argument("--scene", default="marked", choices=sorted(study.SCENES))
  p.add_argument("--seeds", default="0,1,2", help="training seeds, comma separated")
  p.add_argument("--models", default=",".join(study.MODELS), help="models, comma separated")
  p.add_argument("--root", default="runs/attention_study", help="folder of the study's runs, scores and logs")
  p.add_argument("--doc", default="docs/attention_quality.md", help="the report; its figures go to <doc stem>/")
  p.add_argument("--parts", default="train,score,sanity,figures,doc")
  p.add_argument("--clips", type=int, default=0, help="test clips scored per run (0 = all)")
  p.add_argument("--perturb_clips", type=int, default=40, help="test clips per run (spread evenly) that get the "
                 "deletion / insertion / ROAD curves, the bulk of the scoring time; pointing and energy use all")
  p.add_argument("--road", action="store_true", help="also score ROAD: its noisy linear imputation (a sparse solve "
                 "per image, 25-50 ms at 72x72 here) costs about 12 min per run at the default clip counts")
  p.add_argument("--sanity_frames", type=int, default=8)
  p.add_argument("--config_arg", default="", help="extra config arguments of every run (e.g. 'smoke')")
  return p.parse_args(argv)


def score_settings(flags) -> dict:
  """The `quality_table.evaluate_run` settings of the study (part of each cached score's key)."""
  from attn_har.analysis import quality_table  # pylint: disable=import-outside-toplevel
  return {"which": "best", "subset": "test", "count": flags.clips or None, "perturb_per_clip": 1, "steps": 16,
          "seed": 0, "prior_clips": None, "static_px": 0.25, "guided": True, "perturb_clips": flags.perturb_clips,
          "road_fractions": tuple(quality_table.ROAD_FRACTIONS) if flags.road else ()}


def run_figures(plan, root, assets, log) -> dict:
  """Stage grids per stream (first seed of every model, one test clip), curves of the CBAM and vanilla runs, and
  the attention map grid of every stage (stage_shapes.json)."""
  from attn_har.analysis import study  # pylint: disable=import-outside-toplevel
  from attn_har.analysis import figures, report, study_doc  # pylint: disable=import-outside-toplevel
  from attn_har.analysis.restore import restore  # pylint: disable=import-outside-toplevel
  from attn_har.analysis import clips as clips_lib  # pylint: disable=import-outside-toplevel
  t0 = time.time()
  rows, shapes, out = [], {}, {}
  firsts = [r for r in plan if r.seed == min(x.seed for x in plan)]
  for run in firsts:
    workdir = root / run.name
    r = restore(workdir, "best")
    clip = clips_lib.eval_clips(r.config, workdir, "test", 1, 8)[0]
    explanations = report.explain_clip(r, clip)
    rows += report.grid_rows(run.model, clip, explanations, classes=report.class_names(workdir))
    shapes[run.model] = study_doc.stage_shapes_of(explanations)
    if run.model in ("cbam", "baseline"):
      out[f"Training curves, {run.name}"] = figures.training_curves(
          workdir / "metrics.jsonl", assets / f"curves_{run.model}.png", title=run.name,
          stream_loss_weight=r.config.get("train", {}).get("stream_loss_weight"))
  for stream in ("flow", "rgb"):
    picked = [row for row in rows if f"\n{stream} stream" in row["label"]]
    if picked:
      out[f"{stream} stream: attention and Grad-CAM per stage, one test clip, seed 0 of every model"] = \
          figures.stage_grid(picked, assets / f"stage_grid_{stream}.png")
  (assets / "stage_shapes.json").write_text(json.dumps(shapes, indent=1))
  study.log_part(root, "figures", "all", time.time() - t0)
  log(f"figures in {assets}")
  return out


def main(argv=None) -> int:
  from attn_har import xla_cpu  # pylint: disable=import-outside-toplevel
  xla_cpu.configure()  # before jax is imported (attn_har.xla_cpu)
  from attn_har.analysis import study  # pylint: disable=import-outside-toplevel
  flags = parse_flags(argv)
  from attn_har import compile_cache  # pylint: disable=import-outside-toplevel
  compile_cache.enable()
  parts = set(flags.parts.split(","))
  unknown = parts - {"train", "score", "sanity", "figures", "doc"}
  if unknown:
    print(f"error: unknown parts {sorted(unknown)}", file=sys.stderr)
    return 2
  root = pathlib.Path(flags.root).resolve()
  root.mkdir(parents=True, exist_ok=True)
  doc = pathlib.Path(flags.doc)
  assets = doc.parent / doc.stem
  assets.mkdir(parents=True, exist_ok=True)
  plan = study.study_plan(flags.scene, [int(s) for s in flags.seeds.split(",")], flags.models.split(","))
  settings = score_settings(flags)
  if "train" in parts:
    study.train_runs(plan, root, config_arg=flags.config_arg)
  scores = None
  if "score" in parts or "doc" in parts:
    scores = study.score_runs(plan, root, settings)
  if "sanity" in parts and not (root / "sanity" / "sanity.json").exists():
    from attn_har.analysis import sanity_report  # pylint: disable=import-outside-toplevel
    t0 = time.time()
    firsts = [root / r.name for r in plan if r.seed == min(x.seed for x in plan)]
    sanity_report.write_sanity(firsts, root / "sanity", "best", "test", flags.sanity_frames, 0)
    study.log_part(root, "sanity", "all", time.time() - t0)
  figs = {}
  if "figures" in parts:
    figs = run_figures(plan, root, assets, print)
  if "doc" in parts:
    from attn_har.analysis import quality_report, study_doc  # pylint: disable=import-outside-toplevel
    rows = quality_report.table_rows(scores, 0)
    full = quality_report.write_table(rows, assets, {"settings": settings, "runs": [r.name for r in plan]})
    sanity_md = ""
    if (root / "sanity" / "sanity.md").exists():
      sanity_md = (root / "sanity" / "sanity.md").read_text()
      for png in (root / "sanity").glob("*.png"):
        shutil.copy(png, assets / png.name)
        figs[f"Sanity check: {png.stem}"] = png.name
    if not figs:
      figs = {f"Figure {p.stem}": p.name for p in sorted(assets.glob("*.png"))}
    figs = {k: f"{assets.name}/{pathlib.Path(v).name}" for k, v in figs.items()}
    shapes_path = assets / "stage_shapes.json"
    accuracy = study.test_accuracy(plan, root)
    ctx = {"command": "python -m attn_har.study " + " ".join(argv if argv is not None else sys.argv[1:]),
           "repo": study.REPO, "root": root, "scene": flags.scene, "plan": plan, "accuracy": accuracy,
           "scores": scores, "rows": rows,
           "head": study_doc.headline_rows(scores, next((r.config for r in plan if r.model == "baseline"), "")),
           "protocol": json.loads((root / plan[0].name / "results.json").read_text()).get("protocol") or {},
           "sanity_md": sanity_md, "figures": figs,
           "stage_shapes": json.loads(shapes_path.read_text()) if shapes_path.exists() else {},
           "log": study.read_log(root), "full_table": f"{assets.name}/{full['markdown'].name}",
           "settings": {**settings, "videos": scores[0]["clips"] if scores else "",
                        "frames per clip": scores[0]["frames"] if scores else ""}}
    study_doc.write(doc, study_doc.render(ctx))
    print(f"wrote {doc}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
