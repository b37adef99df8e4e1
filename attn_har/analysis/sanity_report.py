"""The model-parameter randomisation check (`attn_har.analysis.sanity`) of every map method of trained runs.

For each run and stream: the stream's frame model is re-initialised in a cascade from the top (classifier) down,
one block at a time (`sanity.layer_order`, depth 2: 'backbone/block_5', 'head', ...); after each step every map
method of the quality table (`quality_table.method_maps`: attention stages, Grad-CAM, Guided Grad-CAM, and the
input-derived reference map as a control that ignores the weights) is recomputed for the same frames and classes
and compared with the trained model's maps (rank correlation of absolute values, SSIM). A method whose maps still
correlate above `sanity.FLAG_THRESHOLD` once every layer is random is flagged: it does not explain the model.

Writes sanity.md (final correlation and flag per method), sanity.json (per-step means) and one
sanity_<model>_<stream>.png per stream (correlation and SSIM against the cascade step).
"""

import json
import pathlib
from typing import Dict, Sequence

import numpy as np

from attn_har.analysis import maps, quality_table, sanity
from attn_har.analysis.quality_report import REFERENCES

INPUT_CONTROLS = ("flow_magnitude", "frame_difference")


def _model_dependent(method: str) -> bool:
  return method not in REFERENCES or method in INPUT_CONTROLS


def check_run(workdir, which: str = "best", subset: str = "test", frames: int = 8, seed: int = 0,
              out_dir=None, log=print) -> dict:
  """Runs the cascade on `frames` test frames (2 per clip) per stream of one run.

  Returns:
    {'model', 'seed', 'streams': {stream: `sanity.summary(...)` plus 'plot', the png path when out_dir is given}}.
  """
  from attn_har.analysis import clips as clips_lib  # pylint: disable=import-outside-toplevel
  from attn_har.analysis.restore import restore  # pylint: disable=import-outside-toplevel
  run = restore(workdir, which)
  data = clips_lib.eval_clips(run.config, workdir, subset, max(1, frames // 2), 2, True)
  out = {}
  for name, view in maps.stream_views(run.model, run.variables).items():
    key = "rgb" if name == "image" else name
    x = np.concatenate([c[key] for c in data])[:frames]
    labels = np.concatenate([np.full(c[key].shape[0], c["label"]) for c in data])[:frames]
    inputs = {k: v[:frames] for k, v in quality_table.input_maps(key, data, None).items()}
    explainer = maps.Explainer(view, guided=True)

    def method_maps(e, x, y, inputs=inputs):
      all_maps = quality_table.method_maps(e, x, y, seed, inputs)
      return {m: v for m, v in all_maps.items() if _model_dependent(m)}

    layers = sanity.layer_order(view.model, view.variables, x, depth=2)
    fresh = sanity.fresh_variables(view.model, x, seed + 1)
    log(f"{run.config.name}: randomisation check of stream {name!r}: {len(layers)} layers x {x.shape[0]} frames")
    result = sanity.randomization_test(sanity.explainer_maps_fn(explainer, method_maps), view.variables,
                                       sanity.cascade(view.variables, fresh, layers), x, labels)
    out[name] = sanity.summary(result)
    if out_dir is not None:
      path = pathlib.Path(out_dir) / f"sanity_{run.config.name}_{name}.png"
      out[name]["plot"] = str(sanity.plot(result, path, title=f"{run.config.name}, {name} stream"))
  return {"model": run.config.name, "seed": int(getattr(run.config, "seed", 0)), "streams": out}


def to_markdown(results: Sequence[dict]) -> str:
  """One row per run / stream / method: |Spearman| and SSIM with every layer random, and the flag."""
  lines = ["### Model-parameter randomisation check", "",
           f"Rank correlation (of absolute values) and SSIM between the trained model's map and the map with every "
           f"layer re-initialised; a method above {sanity.FLAG_THRESHOLD} is flagged: it does not depend on the "
           f"model's weights.", "", "| model | seed | stream | method | \\|Spearman\\| | SSIM | flagged |",
           "|---|---|---|---|---|---|---|"]
  for r in results:
    for stream, s in r["streams"].items():
      for method, m in s["methods"].items():
        lines.append(f"| {r['model']} | {r['seed']} | {stream} | {method} | {m['final_spearman_abs']:.3f} | "
                     f"{m['ssim'][-1]:.3f} | {'yes' if m['flagged'] else 'no'} |")
  return "\n".join(lines) + "\n"


def write_sanity(workdirs: Sequence, out_dir, which: str = "best", subset: str = "test", frames: int = 8,
                 seed: int = 0, log=print) -> Dict[str, pathlib.Path]:
  """Runs `check_run` on each workdir; writes sanity.md, sanity.json and the plots into out_dir."""
  out_dir = pathlib.Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  results = [check_run(w, which, subset, frames, seed, out_dir, log) for w in workdirs]
  md, js = out_dir / "sanity.md", out_dir / "sanity.json"
  md.write_text(to_markdown(results))
  js.write_text(json.dumps(results, indent=1, allow_nan=True))
  return {"sanity_markdown": md, "sanity_json": js}
