"""The attention-quality table from per-frame scores (`quality_table.evaluate_run`), with honest statistics.

  rows = table_rows(runs)            # runs: evaluate_run results; several seeds of one model share its name
  write_table(rows, out_dir, meta)   # quality.md and quality.json

Statistics (`attn_har.analysis.stats`):
  - intervals are clip-level bootstrap 95 % percentile intervals: clips are resampled with all their frames
    (and, with several training seeds, the clip's frames of every seed), because frames of one clip are not
    independent;
  - every method is compared with the best reference map of its stream and metric (input-derived or data-free) on
    the same frames: the paired difference and its clip-bootstrap interval;
  - across training seeds: the mean and standard deviation of the per-seed means;
  - per-class pointing game, and, for the flow stream, static clips (an actor without motion) in rows of their
    own, left out of the main rows.
"""

import json
import pathlib
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from attn_har.analysis import stats
from attn_har.analysis.quality_table import METRICS, PERTURB_METRICS

DIRECTION = {"pointing": "↑", "energy": "↑", "deletion": "↓", "insertion": "↑", "road_morf": "↓", "road_lerf": "↑"}
REFERENCES = ("flow_magnitude", "frame_difference", "location_prior", "center_bias", "uniform", "random")


def _frames(run: Mapping, stream: str, subset: str, metric: str) -> np.ndarray:
  """Positions in the metric's value list (one value per frame, or per perturbed frame) of the frames in `subset`
  ('all', 'moving', 'static' clips), and the frame index of each: ([n], [n])."""
  frames = np.asarray(run["perturbed"] if metric in PERTURB_METRICS else np.arange(len(run["frame_clip"])), int)
  positions = np.arange(frames.size)
  if subset != "all" and stream == "flow":
    static = np.asarray(run["static"], bool)[np.asarray(run["frame_clip"], int)[frames]]
    positions = np.flatnonzero(static if subset == "static" else ~static)
  return positions, frames[positions]


def _pooled(runs: Sequence[Mapping], stream: str, method: str, metric: str, subset: str):
  """(values, clip ids, labels, per-seed means) of one method over the runs (seeds) of one model."""
  vals, clusters, labels, per_seed = [], [], [], []
  for run in runs:
    rec = run["streams"][stream].get(method)
    if rec is None:
      continue
    positions, frames = _frames(run, stream, subset, metric)
    v = np.asarray(rec[metric], np.float64)[positions]
    vals.append(v)
    clusters.append(np.asarray(run["frame_clip"], int)[frames])
    labels.append(np.asarray(run["frame_label"], int)[frames])
    if np.isfinite(v).any():
      per_seed.append(float(np.nanmean(v)))
  if not vals:
    return None
  return np.concatenate(vals), np.concatenate(clusters), np.concatenate(labels), per_seed


def _summary(values: np.ndarray, clusters: np.ndarray, per_seed: List[float], seed: int) -> Dict[str, Any]:
  ok = np.isfinite(values)
  if not ok.any():
    return {"mean": float("nan"), "lo": float("nan"), "hi": float("nan"), "n": 0, "clips": 0}
  ci = stats.cluster_bootstrap(values[ok], clusters[ok], seed=seed)
  out = {"mean": ci.estimate, "lo": ci.low, "hi": ci.high, "se": ci.se, "n": ci.n_frames, "clips": ci.n_clips}
  if len(per_seed) > 1:
    out["seeds"] = stats.across_seeds(per_seed)
  return out


def _best_reference(pooled: Mapping[str, Any], metric: str) -> Optional[str]:
  """The reference map with the best mean of `metric` among the pooled methods ({method: `_pooled` result})."""
  best, best_value = None, None
  for name in REFERENCES:
    p = pooled.get(name)
    if p is None or not np.isfinite(p[0]).any():
      continue
    v = float(np.nanmean(p[0]))
    better = best_value is None or (v < best_value if DIRECTION[metric] == "↓" else v > best_value)
    if better:
      best, best_value = name, v
  return best


def _subsets(group: Sequence[Mapping], stream: str) -> List[str]:
  """'all' clips; for the flow stream with static clips, 'moving' (when any) and 'static' apart."""
  static = [s for r in group for s in r["static"]]
  if stream != "flow" or not any(static):
    return ["all"]
  return (["moving"] if not all(static) else []) + ["static"]


def table_rows(runs: Sequence[Mapping], seed: int = 0) -> List[Dict[str, Any]]:
  """One row per model / stream / clip subset / method: every metric's mean, interval, seed spread, the paired
  difference to the stream's best reference map, and per-class pointing.

  Args:
    runs: `quality_table.evaluate_run` results; runs with the same 'model' are seeds of one model.
    seed: bootstrap seed.
  """
  by_model: Dict[str, List[Mapping]] = {}
  for run in runs:
    by_model.setdefault(run["model"], []).append(run)
  rows = []
  for model, group in by_model.items():
    names = group[0].get("class_names") or []
    for stream in group[0]["streams"]:
      methods = list(group[0]["streams"][stream])
      for subset in _subsets(group, stream):
        pooled = {k: {m: _pooled(group, stream, m, k, subset) for m in methods} for k in METRICS}
        best = {k: _best_reference(pooled[k], k) for k in METRICS}
        for method in methods:
          row = {"model": model, "stream": stream, "clips": subset, "method": method, "seeds": len(group)}
          for k in METRICS:
            p = pooled[k][method]
            row[k] = _summary(p[0], p[1], p[3], seed)
            ref = best[k]
            if ref is not None and ref != method and method not in REFERENCES:
              q = pooled[k][ref]
              if (np.isfinite(p[0]) & np.isfinite(q[0])).any():
                d = stats.paired_difference(p[0], q[0], p[1], seed=seed).interval
                row[k]["vs_reference"] = {"reference": ref, "mean": d.estimate, "lo": d.low, "hi": d.high,
                                          "clips": d.n_clips}
          values, _, labels, _ = pooled["pointing"][method]
          row["pointing_per_class"] = {
              (names[c] if c < len(names) else str(c)): float(np.nanmean(values[labels == c]))
              for c in np.unique(labels) if np.isfinite(values[labels == c]).any()}
          rows.append(row)
  return rows


def _cell(s: Mapping) -> str:
  return "n/a" if s["n"] == 0 else f"{s['mean']:.3f} [{s['lo']:.3f}, {s['hi']:.3f}]"


def _diff_cell(s: Mapping) -> str:
  d = s.get("vs_reference")
  if d is None:
    return "—"
  return f"{d['mean']:+.3f} [{d['lo']:+.3f}, {d['hi']:+.3f}] vs {d['reference']}"


def to_markdown(rows: Sequence[Mapping], title: str = "Attention quality on ground-truth masks") -> str:
  """Markdown: the main table (mean [95 % clip-bootstrap interval]), paired differences, seeds, per class."""
  head = ["model", "stream", "clips", "method"] + [f"{k} {DIRECTION[k]}" for k in METRICS] + ["frames (perturbed)"]
  lines = [f"### {title}", "", "Mean [95 % clip-bootstrap interval]; the arrow says which way is better.", "",
           "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for r in rows:
    cells = [r["model"], r["stream"], r["clips"], r["method"]] + [_cell(r[k]) for k in METRICS]
    cells.append(f"{r['pointing']['n']} ({r['deletion']['n']})")
    lines.append("| " + " | ".join(cells) + " |")
  learned = [r for r in rows if r["method"] not in REFERENCES]
  lines += ["", "### Paired differences to the best reference map (same frames)", "",
            "Method minus the stream's best reference map for that metric; an interval that excludes 0 is a "
            "difference the clips support.", "",
            "| model | stream | clips | method | " + " | ".join(METRICS) + " |", "|" + "---|" * (4 + len(METRICS))]
  for r in learned:
    lines.append("| " + " | ".join([r["model"], r["stream"], r["clips"], r["method"]] +
                                   [_diff_cell(r[k]) for k in METRICS]) + " |")
  seeded = [r for r in rows if r["seeds"] > 1]
  if seeded:
    lines += ["", "### Across training seeds (mean ± standard deviation of the per-seed means)", "",
              "| model | stream | clips | method | seeds | " + " | ".join(METRICS) + " |",
              "|" + "---|" * (5 + len(METRICS))]
    for r in seeded:
      cells = [r["model"], r["stream"], r["clips"], r["method"], str(r["seeds"])]
      cells += [f"{r[k]['seeds']['mean']:.3f} ± {r[k]['seeds']['std']:.3f}" if "seeds" in r[k] else "n/a"
                for k in METRICS]
      lines.append("| " + " | ".join(cells) + " |")
  classes = sorted({c for r in rows for c in r["pointing_per_class"]})
  if classes:
    lines += ["", "### Pointing game per class", "", "| model | stream | clips | method | " + " | ".join(classes)
              + " |", "|" + "---|" * (4 + len(classes))]
    for r in rows:
      pc = r["pointing_per_class"]
      lines.append("| " + " | ".join([r["model"], r["stream"], r["clips"], r["method"]] +
                                     [f"{pc[c]:.2f}" if c in pc else "" for c in classes]) + " |")
  return "\n".join(lines) + "\n"


def write_table(rows: Sequence[Mapping], out_dir, meta: Optional[Mapping[str, Any]] = None) -> Dict[str, pathlib.Path]:
  """Writes quality.md and quality.json into out_dir; returns their paths."""
  out_dir = pathlib.Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  md, js = out_dir / "quality.md", out_dir / "quality.json"
  text = to_markdown(rows)
  if meta:
    text += "\n" + "\n".join(f"- {k}: {v}" for k, v in meta.items()) + "\n"
  md.write_text(text)
  js.write_text(json.dumps({"meta": dict(meta or {}), "rows": list(rows)}, indent=1, allow_nan=True))
  return {"markdown": md, "json": js}
