"""The attention-quality table: every attention mechanism and Grad-CAM against reference maps, on mask data.

For each model (a training workdir), each stream and each *method* (a source of maps), every evaluated frame gets
a map that is resized to the frame (bilinear) and min-max normalised (`combine.normalize`, the same for every
method, so a constant map carries no location and scores like the uniform map), then scored with
`attn_har.analysis.quality`: pointing game and energy inside the ground-truth mask, deletion and insertion AUC
of the stream's per-frame probability of the true class.

Methods:
  attention/<stage>, attention/combined   the mechanism's own maps (sown by its attention modules)
  gradcam/<stage>, gradcam/combined        Grad-CAM (logits, ReLU, min-max) at the default layers, true class
  center_bias, uniform, random             reference maps (`quality.BASELINES`)

Perturbation baselines: RGB deletion replaces pixels by 0 (mid grey in [-1, 1] input), RGB insertion starts from
a Gaussian blur (RISE); flow uses zero motion for both.
"""

import json
import math
import pathlib
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from attn_har.analysis import combine, maps, quality

METRICS = ("pointing", "energy", "deletion", "insertion")
DIRECTION = {"pointing": "↑", "energy": "↑", "deletion": "↓", "insertion": "↑"}
PERTURB_BASELINES = {"rgb": ("zeros", "blur"), "image": ("zeros", "blur"), "flow": ("zeros", "zeros")}


def method_maps(explainer: maps.Explainer, x: np.ndarray, labels: np.ndarray, seed: int = 0
                ) -> Dict[str, np.ndarray]:
  """All maps of one stream for frames x [N, H, W, C], each resized and normalised to [N, H, W].

  Args:
    explainer: the stream's `maps.Explainer`.
    x: pre-processed frames [N, H, W, C].
    labels: [N] true classes (Grad-CAM explains them).
    seed: seed of the random reference map.
  """
  size = x.shape[1:3]
  e = explainer(x, labels)
  out = {}
  for family, source, combined in (("attention", e.attention, maps.combined_attention(e, size)),
                                   ("gradcam", e.gradcam, maps.combined_gradcam(e, size))):
    for stage, m in maps.by_stage(source).items():
      out[f"{family}/{stage}"] = combine.normalize(combine.resize(m, size))
    if combined is not None:
      out[f"{family}/combined"] = combined
  shape = (x.shape[0],) + tuple(size)
  for name, factory in quality.BASELINES.items():
    out[name] = combine.normalize(factory(shape, seed))
  return out


def score_stream(explainer: maps.Explainer, x: np.ndarray, masks: np.ndarray, labels: np.ndarray,
                 steps: int = 16, seed: int = 0, perturb: Optional[np.ndarray] = None
                 ) -> Dict[str, Dict[str, List[float]]]:
  """Per-frame metrics of every method for one stream.

  Args:
    explainer: the stream's `maps.Explainer` (its view's frame model is the one perturbed).
    x: pre-processed frames [N, H, W, C].
    masks: ground-truth masks [N, H, W] (non-zero = actor).
    labels: [N] true classes.
    steps: deletion / insertion steps.
    seed: seed of the random map and of tie-breaking.
    perturb: boolean [N]: frames that also get deletion / insertion curves (default all; they cost
      2 (steps + 1) forward passes per frame and method).

  Returns:
    {method: {metric: [values]}}: N pointing / energy values, one deletion / insertion value per perturbed frame.
  """
  x = np.asarray(x, np.float32)
  masks = np.asarray(masks) > 0.5
  labels = np.asarray(labels).astype(np.int32)
  if masks.shape != x.shape[:3] or labels.shape != x.shape[:1]:
    raise ValueError(f"frames {x.shape}, masks {masks.shape} and labels {labels.shape} disagree")
  perturb = np.ones(x.shape[0], bool) if perturb is None else np.asarray(perturb, bool)
  view = explainer.view
  all_maps = method_maps(explainer, x, labels, seed)
  deletion_base, insertion_base = PERTURB_BASELINES.get(view.name, ("zeros", "blur"))
  probs = explainer.probabilities
  out = {}
  for method, m in all_maps.items():
    rec = {"pointing": quality.pointing_game(m, masks).tolist(), "energy": quality.energy_inside(m, masks).tolist(),
           "deletion": [], "insertion": []}
    for i in np.flatnonzero(perturb):
      fn = lambda b, c=int(labels[i]): probs(b)[:, c]
      rec["deletion"].append(quality.deletion_auc(fn, x[i], m[i], steps=steps, baseline=deletion_base, seed=seed))
      rec["insertion"].append(quality.insertion_auc(fn, x[i], m[i], steps=steps, baseline=insertion_base,
                                                    seed=seed))
    out[method] = rec
  return out


def evaluate_run(workdir, which: str = "best", subset: str = "test", count: Optional[int] = 20,
                 num_frames: Optional[int] = None, perturb_per_clip: int = 1, steps: int = 16, seed: int = 0,
                 log: Callable[[str], None] = print) -> Dict[str, Any]:
  """Scores every stream of one trained run on clips of its store with ground-truth masks.

  Args:
    workdir: the run directory.
    which: 'best' or 'latest' checkpoint.
    subset: the store subset to read ('test' by default).
    count: clips to use (default 20; None = all).
    num_frames: frames per clip (default the run's `data.num_frames`).
    perturb_per_clip: frames per clip (spread evenly) that get deletion / insertion curves.
    steps: deletion / insertion steps.
    seed: seed of the random map and of tie-breaking.
    log: progress messages.

  Returns:
    {'model': name, 'step': int, 'clips': int, 'frames': int, 'mask_area': float,
     'streams': {stream: {method: {metric: values}}}}.
  """
  from attn_har.analysis import clips as clips_lib  # pylint: disable=import-outside-toplevel
  from attn_har.analysis.restore import restore  # pylint: disable=import-outside-toplevel
  run = restore(workdir, which)
  data = clips_lib.eval_clips(run.config, workdir, subset, count, num_frames)
  if not data or "mask" not in data[0]:
    raise ValueError(f"the store of {workdir} has no ground-truth masks in subset {subset!r} (synthetic data has)")
  t = data[0]["mask"].shape[0]
  picks = np.zeros(t, bool)
  picks[np.unique(np.round(np.linspace(0, t - 1, perturb_per_clip + 2)[1:-1]).astype(int))] = True
  masks = np.concatenate([c["mask"] for c in data])
  labels = np.concatenate([np.full(t, c["label"]) for c in data])
  perturb = np.tile(picks, len(data))
  streams = {}
  for name, view in maps.stream_views(run.model, run.variables).items():
    key = "rgb" if name == "image" else name
    x = np.concatenate([c[key] for c in data])
    log(f"{run.config.name}: scoring stream {name!r} on {x.shape[0]} frames of {len(data)} clips")
    streams[name] = score_stream(maps.Explainer(view), x, masks, labels, steps, seed, perturb)
  return {"model": run.config.name, "step": run.step, "clips": len(data), "frames": int(masks.shape[0]),
          "mask_area": float(quality.mask_area(masks > 0.5).mean()), "streams": streams}


def summarize(values: Iterable[float]) -> Dict[str, float]:
  """Mean, standard error and count of the finite values (NaN entries, e.g. empty masks, are left out)."""
  v = np.asarray([x for x in values if x is not None and math.isfinite(x)], np.float64)
  if v.size == 0:
    return {"mean": float("nan"), "sem": float("nan"), "n": 0}
  sem = float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else 0.0
  return {"mean": float(v.mean()), "sem": sem, "n": int(v.size)}


def table_rows(results: Mapping[str, Mapping[str, Mapping[str, Mapping[str, Sequence[float]]]]]) -> List[Dict]:
  """Flattens {model: {stream: {method: {metric: values}}}} into summary rows, one per model/stream/method."""
  rows = []
  for model, streams in results.items():
    for stream, methods in streams.items():
      for method, metrics in methods.items():
        row = {"model": model, "stream": stream, "method": method}
        for k in METRICS:
          row[k] = summarize(metrics.get(k, []))
        rows.append(row)
  return rows


def to_markdown(rows: Sequence[Mapping], title: str = "Attention quality on ground-truth masks") -> str:
  """A markdown table: mean ± standard error per metric (arrows: which way is better)."""
  head = ["model", "stream", "method"] + [f"{k} {DIRECTION[k]}" for k in METRICS] + ["frames (perturbed)"]
  lines = [f"### {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for r in rows:
    cells = [r["model"], r["stream"], r["method"]]
    for k in METRICS:
      s = r[k]
      cells.append("n/a" if s["n"] == 0 else f"{s['mean']:.3f} ± {s['sem']:.3f}")
    cells.append(f"{r['pointing']['n']} ({r['deletion']['n']})")
    lines.append("| " + " | ".join(cells) + " |")
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
