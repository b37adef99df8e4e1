"""The study's report (`docs/attention_quality.md`), written from the study's own files, never by hand.

  text = render(context)      # context: plan, accuracy, scores, rows, sanity, figures, log, machine, settings
  headline_rows(scores, ...)  # attention vs Grad-CAM (same model) vs vanilla Grad-CAM, paired on the same frames

Paired comparisons across models pair seed k of one model with seed k of the other on the same test frames (the
clip order of a store is fixed), and resample clips (all frames of all seeds of a clip together), as the table does.
"""

import datetime
import os
import pathlib
import platform
import subprocess
from typing import Any, Dict, List, Mapping, Sequence

import numpy as np

from attn_har.analysis import quality_report, stats

METRICS = ("pointing", "energy", "deletion", "insertion")
DIRECTION = quality_report.DIRECTION


def machine() -> str:
  """'<CPU model>, <n> cores' of this machine, from /proc/cpuinfo when readable."""
  name = platform.processor() or platform.machine()
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          name = line.split(":", 1)[1].strip()
          break
  except OSError:
    pass
  return f"{name}, {os.cpu_count()} CPU cores"


def commit(repo) -> str:
  """The repo's HEAD commit (with '+changes' when the tree differs), or 'unknown'."""
  try:
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True,
                          check=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo, capture_output=True,
                           text=True, check=True).stdout.strip()
    return head + ("+changes" if dirty else "")
  except (OSError, subprocess.CalledProcessError):
    return "unknown"


def _pair(runs_a: Sequence[Mapping], method_a: str, runs_b: Sequence[Mapping], method_b: str, stream: str,
          metric: str, seed: int = 0):
  """(mean A, mean B, paired difference interval A - B) over seeds present in both, or None."""
  b_by_seed = {r["seed"]: r for r in runs_b}
  a_vals, b_vals, clips = [], [], []
  for ra in runs_a:
    rb = b_by_seed.get(ra["seed"])
    if rb is None or stream not in ra["streams"] or stream not in rb["streams"]:
      continue
    ma, mb = ra["streams"][stream].get(method_a), rb["streams"][stream].get(method_b)
    if ma is None or mb is None or metric not in ma or metric not in mb \
        or list(ra["frame_clip"]) != list(rb["frame_clip"]):
      continue
    if metric in quality_report.PERTURB_METRICS and list(ra["perturbed"]) != list(rb["perturbed"]):
      continue
    frames = np.asarray(ra["perturbed"] if metric in quality_report.PERTURB_METRICS
                        else np.arange(len(ra["frame_clip"])), int)
    a_vals.append(np.asarray(ma[metric], np.float64))
    b_vals.append(np.asarray(mb[metric], np.float64))
    clips.append(np.asarray(ra["frame_clip"], int)[frames])
  if not a_vals:
    return None
  a, b, c = np.concatenate(a_vals), np.concatenate(b_vals), np.concatenate(clips)
  if not (np.isfinite(a) & np.isfinite(b)).any():
    return None
  d = stats.paired_difference(a, b, c, seed=seed).interval
  ia, ib = stats.cluster_bootstrap(a[np.isfinite(a)], c[np.isfinite(a)], seed=seed), \
      stats.cluster_bootstrap(b[np.isfinite(b)], c[np.isfinite(b)], seed=seed)
  return ia, ib, d


def _fmt(i: stats.Interval, signed: bool = False) -> str:
  f = "{:+.3f}" if signed else "{:.3f}"
  return f"{f.format(i.estimate)} [{f.format(i.low)}, {f.format(i.high)}]"


def _verdict(d: stats.Interval, metric: str) -> str:
  """'better', 'worse' or 'no difference' for A - B given the metric's direction (interval must exclude 0)."""
  if d.low > 0 or d.high < 0:
    up = d.low > 0
    return "better" if up == (DIRECTION[metric] == "↑") else "worse"
  return "no difference"


def headline_rows(scores: Sequence[Mapping], vanilla: str, seed: int = 0) -> List[Dict[str, Any]]:
  """Per attention model, stream and metric: its attention map vs its own Grad-CAM and vs the vanilla model's
  Grad-CAM (both 'combined' over stages), paired on the same frames.

  Returns:
    rows {'model', 'stream', 'metric', 'attention': Interval, 'own_gradcam', 'vs_own': Interval (difference),
    'vanilla_gradcam', 'vs_vanilla'} (entries None when a pairing is unavailable).
  """
  by_model: Dict[str, List[Mapping]] = {}
  for s in scores:
    by_model.setdefault(s["model"], []).append(s)
  rows = []
  for model, runs in by_model.items():
    if model == vanilla:
      continue
    for stream in runs[0]["streams"]:
      for metric in METRICS:
        own = _pair(runs, "attention/combined", runs, "gradcam/combined", stream, metric, seed)
        van = _pair(runs, "attention/combined", by_model.get(vanilla, []), "gradcam/combined", stream, metric, seed)
        if own is None and van is None:
          continue
        rows.append({"model": model, "stream": stream, "metric": metric,
                     "attention": (own or van)[0], "own_gradcam": own[1] if own else None,
                     "vs_own": own[2] if own else None, "vanilla_gradcam": van[1] if van else None,
                     "vs_vanilla": van[2] if van else None})
  return rows


def _reference_cells(rows: Sequence[Mapping], model: str, stream: str) -> Dict[str, str]:
  """{metric: 'name mean [lo, hi]'} of the reference map the quality table pairs `model`'s combined attention with
  (`quality_report.table_rows` picks the stream's best reference per metric)."""
  by_method = {r["method"]: r for r in rows
               if r["model"] == model and r["stream"] == stream and r["clips"] in ("all", "moving")}
  out = {}
  for metric in METRICS:
    ref = (by_method.get("attention/combined") or {}).get(metric, {}).get("vs_reference", {}).get("reference")
    if ref in by_method and by_method[ref][metric]["n"]:
      s = by_method[ref][metric]
      out[metric] = f"{ref} {s['mean']:.3f} [{s['lo']:.3f}, {s['hi']:.3f}]"
  return out


def accuracy_table(accuracy: Mapping[str, Mapping[int, Mapping[str, float]]]) -> List[str]:
  """Markdown lines: test top-1 per model (fused, flow, RGB): mean ± sd over seeds and each seed."""
  lines = ["| model | seeds | two-stream top-1 (mean ± sd) | per seed | flow stream | RGB stream | train wall s |",
           "|---|---:|---:|---|---:|---:|---:|"]
  for model, per_seed in accuracy.items():
    seeds = sorted(per_seed)

    def stat(key):
      v = [per_seed[s][key] for s in seeds if per_seed[s].get(key) is not None]
      if not v:
        return "n/a"
      a = stats.across_seeds(v)
      return f"{a['mean']:.3f} ± {a['std']:.3f}"
    walls = [per_seed[s].get("wall_seconds") or 0 for s in seeds]
    lines.append(f"| {model} | {len(seeds)} | {stat('fused')} | "
                 + ", ".join(f"{per_seed[s]['fused']:.3f}" for s in seeds)
                 + f" | {stat('flow')} | {stat('rgb')} | {np.mean(walls):.0f} |")
  return lines


def _wall(log: Sequence[Mapping]) -> Dict[str, float]:
  parts: Dict[str, float] = {}
  for e in log:
    parts[e["part"]] = parts.get(e["part"], 0.0) + float(e["seconds"])
  return parts


def _minutes(s: float) -> str:
  return f"{s / 60:.1f} min"


def summary_lines(head: Sequence[Mapping]) -> List[str]:
  """Generated sentences: per stream and metric, how many mechanisms beat / tie / lose to vanilla Grad-CAM."""
  lines = []
  for stream in sorted({r["stream"] for r in head}):
    for metric in METRICS:
      rows = [r for r in head if r["stream"] == stream and r["metric"] == metric and r["vs_vanilla"] is not None]
      if not rows:
        continue
      verdicts = {r["model"]: _verdict(r["vs_vanilla"], metric) for r in rows}
      better = [m for m, v in verdicts.items() if v == "better"]
      worse = [m for m, v in verdicts.items() if v == "worse"]
      tie = [m for m, v in verdicts.items() if v == "no difference"]
      lines.append(f"- {stream} stream, {metric} {DIRECTION[metric]}: attention better than the vanilla model's "
                   f"Grad-CAM for {len(better)} of {len(rows)} mechanisms ({', '.join(better) or 'none'}), worse for "
                   f"{len(worse)} ({', '.join(worse) or 'none'}), no difference the clips support for {len(tie)} "
                   f"({', '.join(tie) or 'none'}).")
  return lines


def _protocol(protocol: Mapping[str, Any]) -> str:
  """'5 temporal views x 1 frame x 1 centre crop per video' from a results.json 'protocol' entry."""
  t = (protocol or {}).get("test") or {}
  if not t:
    return "the recipe's"
  crops = "1 centre crop" if t.get("crops") == 1 else f"{t.get('crops')} crops"
  return f"{t.get('views')} temporal views x {t.get('frames')} frame(s) x {crops} per video"


def render(ctx: Mapping[str, Any]) -> str:
  """The whole markdown report.

  Args:
    ctx: {'command', 'repo', 'root', 'scene', 'plan', 'accuracy', 'scores', 'rows', 'head', 'sanity_md',
      'figures' ({caption: relative path}), 'stage_shapes' ({model: {stream: {stage: [h, w]}}}), 'log',
      'settings', 'vanilla'}.
  """
  wall = _wall(ctx["log"])
  models = list(ctx["accuracy"])
  seeds = sorted({r.seed for r in ctx["plan"]})
  lines = [
      "# Attention quality: does learned attention explain the model better than Grad-CAM?", "",
      f"Generated by `{ctx['command']}` (attn_har commit {commit(ctx['repo'])}, "
      f"{datetime.date.today().isoformat()}); do not edit by hand, re-run the command.", "",
      f"- **Machine:** {machine()}, no GPU. XLA's CPU results differ between processor types, so another machine "
      "gives other numbers within the spread of the seeds, not the same ones.",
      f"- **Scope:** the '{ctx['scene']}' synthetic scene (attn_har/data/synthetic.py), two-stream MobileNetV2 "
      f"alpha 0.35, {len(models)} models ({', '.join(models)}) x {len(seeds)} training seeds ({seeds}), "
      f"the recipe of `configs/{ctx['plan'][0].config}.py`.",
      f"- **Wall time:** {_minutes(sum(wall.values()))} in all, summed over every launch of the study: "
      + ", ".join(f"{k} {_minutes(v)}" for k, v in wall.items()) + ".",
      "", "## Test accuracy", "",
      f"Test protocol (from results.json): {_protocol(ctx.get('protocol'))}, on the scene's "
      f"{ctx['settings'].get('videos', '')} test videos; the two-stream score fuses the streams' softmax scores.", ""]
  lines += accuracy_table(ctx["accuracy"])
  shapes = ctx.get("stage_shapes") or {}
  if shapes:
    lines += ["", "Attention map grids per stage (rows x columns of the maps each stream's model produces):", ""]
    for model, per_stream in shapes.items():
      for stream, stages in per_stream.items():
        if not stages:
          continue
        lines.append(f"- {model}, {stream}: " + ", ".join(f"{k} {v[0]}x{v[1]}" for k, v in stages.items()))
  lines += ["", "## The answer: attention maps vs Grad-CAM, paired on the same frames", "",
            "Each mechanism's combined attention map, its own model's Grad-CAM and the vanilla model's Grad-CAM "
            "(both combined over stages), scored on the same test frames against the actor's ground-truth mask "
            "(RGB: the frame's mask; flow: the union over the stack's frames). Mean [95 % clip-bootstrap "
            "interval]; differences are attention minus Grad-CAM with their paired interval; seeds pooled (seed k "
            "of a model paired with seed k of the vanilla model). The best reference map of the stream "
            "(input-derived or data-free) is the bar any map must clear.", ""]
  lines += summary_lines(ctx["head"])
  for stream in sorted({r["stream"] for r in ctx["head"]}):
    lines += ["", f"### {stream} stream", "",
              "| model | metric | attention | own Grad-CAM | attention - own | vanilla Grad-CAM | attention - vanilla "
              "| best reference |", "|---|---|---|---|---|---|---|---|"]
    for r in ctx["head"]:
      if r["stream"] != stream:
        continue
      ref = _reference_cells(ctx["rows"], r["model"], stream).get(r["metric"], "")
      cells = [r["model"], f"{r['metric']} {DIRECTION[r['metric']]}", _fmt(r["attention"]),
               _fmt(r["own_gradcam"]) if r["own_gradcam"] else "—",
               _fmt(r["vs_own"], True) if r["vs_own"] else "—",
               _fmt(r["vanilla_gradcam"]) if r["vanilla_gradcam"] else "—",
               _fmt(r["vs_vanilla"], True) if r["vs_vanilla"] else "—", ref]
      lines.append("| " + " | ".join(cells) + " |")
  if ctx.get("sanity_md"):
    lines += ["", "## Sanity check (cascading parameter randomisation, seed 0 of each model)", "",
              ctx["sanity_md"].replace("\n# ", "\n### ").replace("\n## ", "\n### ")]
  if ctx.get("figures"):
    lines += ["", "## Figures", ""]
    for caption, path in ctx["figures"].items():
      lines += [f"**{caption}**", "", f"![{caption}]({path})", ""]
  lines += ["", "## Full table", "",
            f"Every method, stage and reference map, with paired differences to the best reference, seed spreads "
            f"and per-class pointing: [{ctx['full_table']}]({ctx['full_table']}).", "",
            "## Settings", ""]
  lines += [f"- {k}: {v}" for k, v in ctx["settings"].items()]
  return "\n".join(lines) + "\n"


def write(path, text: str) -> None:
  """Writes the report (parent folders created)."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(text)


def stage_shapes_of(explanations: Mapping[str, Any]) -> Dict[str, Dict[str, List[int]]]:
  """{stream: {stage: [h, w]}} of the attention maps in `report.explain_clip`'s explanations."""
  from attn_har.analysis import maps  # pylint: disable=import-outside-toplevel
  out = {}
  for stream, e in explanations.items():
    out[stream] = {k: list(np.asarray(m).shape[-2:]) for k, m in maps.by_stage(e.attention).items()}
  return out

