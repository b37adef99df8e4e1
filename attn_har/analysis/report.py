"""The figures of one or more trained runs: stage grid, clip overlays, training curves.

  paths = write_report(['runs/synthetic_cbam'], 'out/')   # stage_grid.png, clip_overlay.gif, curves.png

Rows of the stage grid are (model, stream, source): the attention modules' own maps ('attention') and Grad-CAM
('Grad-CAM'); columns input / combined / early / medium / late (thesis Tables 6.2 and 6.3). The input column shows
what the stream reads: the RGB frame, or the middle flow field of the frame's stack in the Middlebury colour coding
(hue = direction, saturation = speed); the combined column overlays the map on it. Each row names the clip's true
class and the stream's prediction (arg-max of its frames' mean logits; class names from `<workdir>/results.json`).
The clip overlay shows, per frame, the RGB frame, its combined attention and Grad-CAM overlays, then the same for
the flow stream.
"""

import json
import pathlib
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from attn_har.analysis import figures, maps, overlay


def display_frame(stream: str, x: np.ndarray) -> np.ndarray:
  """What a stream's input looks like: the RGB frame as uint8, or the middle flow field colour-coded."""
  if stream == "flow":
    return overlay.flow_stack_to_color(x)
  return overlay.to_uint8(overlay.to_unit_image(x))


def _sources(e: maps.Explanation, size) -> Dict[str, Dict[str, np.ndarray]]:
  """{'attention': {column: [N, h, w]}, 'Grad-CAM': {...}} for the explanation's available maps."""
  out = {}
  for label, source, combined in (("attention", e.attention, maps.combined_attention(e, size)),
                                  ("Grad-CAM", e.gradcam, maps.combined_gradcam(e, size))):
    if combined is None:
      continue
    out[label] = dict(maps.by_stage(source), combined=combined)
  return out


def explain_clip(run, clip: Dict[str, Any], explainers: Optional[Dict[str, maps.Explainer]] = None
                 ) -> Dict[str, maps.Explanation]:
  """Explanations of every stream of `run` (a `Restored`) for one clip; the true class when known.

  Args:
    run: a restored run.
    clip: a clip from `attn_har.analysis.clips` ('rgb' / 'flow' [T, ...], 'label').
    explainers: reuse these per-stream explainers (default: new ones).
  """
  explainers = explainers or {s: maps.Explainer(v) for s, v in maps.stream_views(run.model, run.variables).items()}
  label = clip.get("label", -1)
  out = {}
  for stream, ex in explainers.items():
    key = "rgb" if stream == "image" else stream
    if key not in clip:
      raise KeyError(f"clip {clip.get('name')!r} lacks the {key!r} input of stream {stream!r}")
    out[stream] = ex(clip[key], None if label is None or label < 0 else label)
  return out


def class_names(workdir) -> Optional[List[str]]:
  """The run's class names (`<workdir>/results.json` 'classes'), or None when the file or the entry is missing."""
  path = pathlib.Path(workdir) / "results.json"
  try:
    classes = json.loads(path.read_text()).get("classes")
  except (OSError, ValueError):
    return None
  return [str(c) for c in classes] if isinstance(classes, list) else None


def class_name(index: int, classes: Optional[Sequence[str]] = None) -> str:
  """'<name>' (or 'class <index>' without names / out of range); 'unknown' for a negative index."""
  index = int(index)
  if index < 0:
    return "unknown"
  return str(classes[index]) if classes is not None and index < len(classes) else f"class {index}"


def stream_prediction(e: maps.Explanation, classes: Optional[Sequence[str]] = None) -> str:
  """The stream's prediction on the clip: arg-max of its frames' mean logits (e.logits [T, K]), with its softmax
  probability, e.g. 'walk (p=0.83)'."""
  logits = np.asarray(e.logits, np.float64).mean(0)
  probs = np.exp(logits - logits.max())
  probs /= probs.sum()
  k = int(probs.argmax())
  return f"{class_name(k, classes)} (p={probs[k]:.2f})"


def input_caption(key: str, x: np.ndarray, t: int) -> str:
  """What the input column shows for frame t of a stream input x [T, H, W, C]."""
  if key == "flow":
    fields = x.shape[-1] // 2
    return (f"flow of frame {t + 1}/{x.shape[0]}, field {fields // 2 + 1}/{fields}\n"
            "hue = direction, saturation = speed")
  return f"RGB frame {t + 1}/{x.shape[0]}"


def grid_rows(name: str, clip: Dict[str, Any], explanations: Dict[str, maps.Explanation],
              frame: Optional[int] = None, classes: Optional[Sequence[str]] = None) -> List[Dict]:
  """Stage-grid rows (`figures.stage_grid`) of one model for frame `frame` (default the middle) of a clip.

  Each row carries 'label' (model, stream, map method), 'image' and 'input' (the stream's input as shown by
  `display_frame`), 'input_label', 'maps', 'truth' (the clip's class) and 'prediction' (`stream_prediction`).

  Args:
    name: the model's name.
    clip: the clip ('rgb' / 'flow' [T, ...], 'label').
    explanations: from `explain_clip`.
    frame: the frame shown.
    classes: class names (default 'class <k>').
  """
  rows = []
  label = clip.get("label")
  truth = class_name(-1 if label is None else label, classes)
  for stream, e in explanations.items():
    key = "rgb" if stream == "image" else stream
    x = clip[key]
    t = x.shape[0] // 2 if frame is None else int(frame)
    image = display_frame(key, x[t])
    prediction = stream_prediction(e, classes)
    for source, cols in _sources(e, x.shape[1:3]).items():
      rows.append({"label": f"{name}\n{stream} stream, {source}", "image": image, "input": image,
                   "input_label": input_caption(key, x, t), "maps": {c: m[t] for c, m in cols.items()},
                   "truth": truth, "prediction": prediction})
  return rows


def clip_frames(clip: Dict[str, Any], explanations: Dict[str, maps.Explanation], scale: int = 2) -> List[np.ndarray]:
  """Per-frame panels: for each stream its input, combined attention overlay and combined Grad-CAM overlay.

  Args:
    clip: the clip the explanations belong to.
    explanations: from `explain_clip`.
    scale: nearest-neighbour up-scaling of each panel (small inputs stay visible).
  """
  frames = []
  num = min(clip[("rgb" if s == "image" else s)].shape[0] for s in explanations)
  for t in range(num):
    panels = []
    for stream, e in explanations.items():
      key = "rgb" if stream == "image" else stream
      x = clip[key]
      base = display_frame(key, x[t])
      panels.append(base)
      for cols in _sources(e, x.shape[1:3]).values():
        panels.append(overlay.overlay(base, cols["combined"][t]))
    panels = [np.repeat(np.repeat(p, scale, 0), scale, 1) for p in panels]
    frames.append(figures.side_by_side(panels))
  return frames


def write_report(workdirs: Sequence, out_dir, clip_path=None, which: str = "best", subset: str = "test",
                 num_frames: int = 8, clip_format: str = "gif", log=print) -> Dict[str, pathlib.Path]:
  """Writes stage_grid.png (all models as rows), clip overlays and training curves per model.

  Args:
    workdirs: training run directories.
    out_dir: output directory.
    clip_path: a clip file (`clips.clip_from_file`); default the first clip of `subset` of each run's store.
    which: 'best' or 'latest' checkpoint.
    subset: store subset for the default clip.
    num_frames: frames of the clip.
    clip_format: 'gif' or 'mp4'.
    log: progress messages.

  Returns:
    {'stage_grid': path, 'clip[:<name>]': path, 'curves[:<name>]': path}; with one workdir the per-model files
    are clip_overlay.<fmt> and curves.png, with several they get the model name as a suffix.
  """
  from attn_har.analysis import clips as clips_lib  # pylint: disable=import-outside-toplevel
  from attn_har.analysis.restore import restore  # pylint: disable=import-outside-toplevel
  if clip_format not in ("gif", "mp4"):
    raise ValueError(f"clip_format must be 'gif' or 'mp4', got {clip_format!r}")
  if not workdirs:
    raise ValueError("write_report needs at least one workdir")
  out_dir = pathlib.Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  paths, rows, seen = {}, [], {}
  single = len(workdirs) == 1
  for workdir in workdirs:
    run = restore(workdir, which)
    name = run.config.name or pathlib.Path(workdir).name
    seen[name] = seen.get(name, 0) + 1
    if seen[name] > 1:
      name = f"{name}_{seen[name]}"
    if clip_path:
      clip = clips_lib.clip_from_file(clip_path, run.config, num_frames=num_frames)
    else:
      clip = clips_lib.eval_clips(run.config, workdir, subset, count=1, num_frames=num_frames)[0]
    log(f"{name}: explaining clip {clip['name']!r} (step {run.step})")
    explanations = explain_clip(run, clip)
    rows += grid_rows(name, clip, explanations, classes=class_names(workdir))
    suffix = "" if single else f"_{name}"
    key = "" if single else f":{name}"
    paths["clip" + key] = figures.write_clip(clip_frames(clip, explanations),
                                             out_dir / f"clip_overlay{suffix}.{clip_format}")
    metrics = pathlib.Path(workdir) / "metrics.jsonl"
    if metrics.is_file():
      weight = run.config.get("train", {}).get("stream_loss_weight")
      paths["curves" + key] = figures.training_curves(metrics, out_dir / f"curves{suffix}.png", title=name,
                                                      stream_loss_weight=weight)
    else:
      log(f"{name}: no {metrics}; no training curves")
  paths["stage_grid"] = figures.stage_grid(rows, out_dir / "stage_grid.png")
  return paths
