"""Figure writers: the stage grid (thesis Tables 6.2/6.3), clip overlays as GIF/MP4, training curves.

The stage grid shows, per row, the input frame, the maps per stage and one colour bar for them, and names the true
class and the prediction; the training curves label every curve with what it measures (the two-stream training
objective and the fused validation loss are different quantities and get separate axes).

matplotlib is used through its object API on the Agg canvas (`Figure` + `FigureCanvasAgg`), so nothing touches
pyplot's global backend state and it runs headless.
"""

import pathlib
from typing import Dict, List, Mapping, Optional, Sequence, Union

import cv2
import imageio.v2 as imageio
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from attn_har.analysis import combine, overlay
from attn_har.train import metrics_log

PathLike = Union[str, pathlib.Path]
STAGE_COLUMNS = ("combined", "early", "medium", "late")


def _save(fig: Figure, path: PathLike, dpi: int = 100) -> pathlib.Path:
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  FigureCanvasAgg(fig)
  fig.savefig(path, dpi=dpi)
  return path


def _row_text(row: Mapping) -> str:
  """The row's label, then its true class and prediction when given."""
  lines = [str(row["label"])]
  if row.get("truth") is not None:
    lines.append(f"true: {row['truth']}")
  if row.get("prediction") is not None:
    lines.append(f"pred: {row['prediction']}")
  return "\n".join(lines)


def stage_grid_figure(rows: Sequence[Mapping], columns: Sequence[str] = STAGE_COLUMNS, cmap: str = "inferno",
                      title: Optional[str] = None, show_input: Optional[bool] = None) -> Figure:
  """The stage-grid `Figure` (see `stage_grid`), not yet saved: for tests and notebooks that inspect its axes.

  Returns:
    A Figure whose first `len(rows) * num_columns` axes are the grid (row-major), followed by the colour bar's axes
    (its ylabel names the map scale).
  """
  if not rows:
    raise ValueError("stage_grid needs at least one row")
  for r, row in enumerate(rows):
    for key in ("label", "image", "maps"):
      if key not in row:
        raise KeyError(f"stage_grid row {r} lacks key {key!r} (needs 'label', 'image', 'maps')")
  if show_input is None:
    show_input = any(row.get("input") is not None for row in rows)
  shift = 1 if show_input else 0
  ncols = len(columns) + shift
  fig = Figure(figsize=(2.0 * ncols + 2.6, 2.1 * len(rows) + (0.6 if title else 0.3)), layout="constrained")
  axes = fig.subplots(len(rows), ncols, squeeze=False)
  for r, row in enumerate(rows):
    for ax in axes[r]:
      ax.set_xticks([])
      ax.set_yticks([])
    if show_input:
      ax = axes[r][0]
      shown = row.get("input")
      ax.imshow(overlay.to_uint8(overlay.to_unit_image(row["image"] if shown is None else shown)))
      if row.get("input_label"):
        ax.set_xlabel(row["input_label"], fontsize=7)
      if r == 0:
        ax.set_title("input", fontsize=10)
    for c, col in enumerate(columns):
      ax = axes[r][c + shift]
      m = row["maps"].get(col)
      if m is None:
        ax.text(0.5, 0.5, "n/a", ha="center", va="center", transform=ax.transAxes)
      elif col == "combined":
        ax.imshow(overlay.overlay(row["image"], m, cmap=cmap))
      else:
        ax.imshow(combine.normalize(m), cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.set_xlabel(f"{np.shape(m)[-2]} x {np.shape(m)[-1]}", fontsize=7)
      if r == 0:
        ax.set_title("combined (on input)" if col == "combined" else col, fontsize=10)
    axes[r][0].set_ylabel(_row_text(row), fontsize=8, rotation=0, ha="right", va="center")
  bar = fig.colorbar(ScalarMappable(Normalize(0.0, 1.0), cmap), ax=[a for row_axes in axes for a in row_axes[shift:]],
                     shrink=0.8, aspect=30)
  bar.set_label("map value, min-max normalised per map (0 = lowest, 1 = highest)", fontsize=8)
  if title:
    fig.suptitle(title)
  return fig


def stage_grid(rows: Sequence[Mapping], path: PathLike, columns: Sequence[str] = STAGE_COLUMNS,
               cmap: str = "inferno", title: Optional[str] = None, show_input: Optional[bool] = None
               ) -> pathlib.Path:
  """Writes the thesis's attention table as one PNG: one row per model (and stream, map method), one column per stage.

  Columns: 'input' (the frame the maps are of, as given in the row's 'input'), then `columns`: 'combined' overlays
  the combined map on the row's 'image' (alpha 0.7); stage columns show each map at its own resolution
  (nearest-neighbour, so the feature-map grid stays visible; its h x w is written under it), min-max normalised.
  One colour bar (0..1, the normalised map value) serves every map column. Each row is labelled with its 'label'
  and, when given, the true class and the prediction.

  Args:
    rows: dicts with 'label' (str), 'image' ([H, W, 3] frame the overlay is drawn on, any range) and 'maps'
      ({column: map [h, w]}; a column absent is drawn as 'n/a'); optional 'input' ([H, W, 3] image for the input
      column, e.g. the RGB frame or the colour-coded flow; default 'image'), 'input_label' (caption under it),
      'truth' and 'prediction' (str, shown under the label).
    path: output .png path.
    columns: map column names, in order ('combined' gets the overlay).
    cmap: matplotlib colormap of the maps and the colour bar.
    title: optional figure title.
    show_input: draw the input column (default: when any row has an 'input').

  Returns:
    The written path.
  """
  return _save(stage_grid_figure(rows, columns, cmap, title, show_input), path)


def side_by_side(panels: Sequence[np.ndarray], height: Optional[int] = None, pad: int = 2) -> np.ndarray:
  """Concatenates uint8 [H_i, W_i, 3] panels horizontally (resized to one height) with white gaps."""
  if not panels:
    raise ValueError("side_by_side needs at least one panel")
  height = int(height or max(p.shape[0] for p in panels))
  out = []
  for i, p in enumerate(panels):
    p = np.asarray(p)
    if p.ndim != 3 or p.shape[-1] != 3 or p.dtype != np.uint8:
      raise ValueError(f"panel {i} must be uint8 [H, W, 3], got {p.dtype} {p.shape}")
    if p.shape[0] != height:
      width = max(1, round(p.shape[1] * height / p.shape[0]))
      p = cv2.resize(p, (width, height), interpolation=cv2.INTER_NEAREST)
    if out:
      out.append(np.full((height, pad, 3), 255, np.uint8))
    out.append(p)
  return np.concatenate(out, axis=1)


def write_clip(frames: Sequence[np.ndarray], path: PathLike, fps: float = 7.0) -> pathlib.Path:
  """Writes uint8 [H, W, 3] frames as an animated GIF (.gif, loops) or an MP4 (.mp4, OpenCV 'mp4v').

  Args:
    frames: equal-shape uint8 RGB frames.
    path: output path; the suffix picks the format.
    fps: frames per second (the thesis's GIFs used 7).
  """
  path = pathlib.Path(path)
  frames = [np.asarray(f) for f in frames]
  if not frames:
    raise ValueError(f"no frames to write to {path}")
  if any(f.shape != frames[0].shape or f.dtype != np.uint8 or f.ndim != 3 for f in frames):
    raise ValueError(f"frames for {path} must be uint8 [H, W, 3] of one shape")
  path.parent.mkdir(parents=True, exist_ok=True)
  suffix = path.suffix.lower()
  if suffix == ".gif":
    imageio.mimsave(path, frames, duration=1000.0 / fps, loop=0)
  elif suffix == ".mp4":
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
      raise RuntimeError(f"OpenCV cannot open an MP4 writer for {path}; write a .gif instead")
    for f in frames:
      writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
  else:
    raise ValueError(f"unsupported clip format {suffix!r} for {path}; use .gif or .mp4")
  return path


def read_metrics(path: PathLike) -> List[Dict]:
  """Reads a metrics.jsonl (one JSON object per line); a malformed line raises naming file and line."""
  return metrics_log.read_rows(path)


def _series(records: Sequence[Mapping], split: str, key: str):
  """Sorted (steps, values) of `key` in the `split` rows, or None when no row has it."""
  pts = sorted((r["step"], r[key]) for r in records
               if r.get("split") == split and "step" in r and r.get(key) is not None)
  return tuple(map(np.asarray, zip(*pts))) if pts else None


def _plot(ax, series, label: str, **kw) -> int:
  if series is None:
    return 0
  steps, values = series
  ax.plot(steps, values, marker="o" if len(steps) < 30 else None, markersize=3, label=label, **kw)
  return 1


def _stream_names(records: Sequence[Mapping]) -> List[str]:
  """Streams with a per-stream training loss ('<stream>_loss' in train rows), e.g. ['flow', 'rgb']."""
  return sorted({k[:-len("_loss")] for r in records if r.get("split") == "train" for k in r
                 if k.endswith("_loss") and k != "loss" and r[k] is not None})


def training_curves_figure(metrics: Union[PathLike, Sequence[Mapping]], title: Optional[str] = None,
                           stream_loss_weight: Optional[float] = None) -> Figure:
  """The training-curves `Figure` (see `training_curves`), not yet saved."""
  records = read_metrics(metrics) if isinstance(metrics, (str, pathlib.Path)) else list(metrics)
  streams = _stream_names(records)
  fused = "fused" if streams else "model"
  train_loss, val_loss = _series(records, "train", "loss"), _series(records, "val", "loss")
  tops = [(_series(records, "train", "top1"), f"train top-1, {fused} prediction, training batches (per clip)"),
          (_series(records, "val", "clip_top1"), f"val top-1, {fused} prediction, per clip"),
          (_series(records, "val", "top1"), f"val top-1, {fused} prediction, per video (clip scores averaged)")]
  if train_loss is None and val_loss is None and all(s is None for s, _ in tops):
    raise ValueError("no records with 'step', split 'train' or 'val' and a 'loss' or 'top1' to plot")
  panels = 3 if streams else 2
  fig = Figure(figsize=(5.2 * panels, 4.0), layout="constrained")
  axes = list(fig.subplots(1, panels, squeeze=False)[0])
  if streams:
    # The logged training loss is the objective (fused CE + weight x mean stream CE), validation's the fused
    # prediction's NLL: different quantities, so they get separate axes.
    ax = axes.pop(0)
    w = "w" if stream_loss_weight is None else f"{stream_loss_weight:g}"
    _plot(ax, train_loss, f"train objective: CE(fused) + {w} x mean CE({', '.join(streams)})")
    for s in streams:
      _plot(ax, _series(records, "train", f"{s}_loss"), f"train CE, {s} stream alone", linestyle="--")
    ax.set_title("training loss (training batches)", fontsize=10)
    ax.set_ylabel("cross-entropy")
    ax = axes.pop(0)
    _plot(ax, val_loss, "val loss: NLL of the fused prediction, per clip", color="C1")
    if stream_loss_weight is not None and train_loss is not None:
      parts = [_series(records, "train", f"{s}_loss") for s in streams]
      if all(p is not None and np.array_equal(p[0], train_loss[0]) for p in parts):
        derived = train_loss[1] - stream_loss_weight * np.mean([p[1] for p in parts], axis=0)
        _plot(ax, (train_loss[0], derived), "train CE of the fused prediction (objective minus stream terms)",
              color="C0")
    ax.set_title("fused-prediction loss", fontsize=10)
    ax.set_ylabel("cross-entropy / NLL")
  else:
    ax = axes.pop(0)
    _plot(ax, train_loss, "train loss: CE, training batches")
    _plot(ax, val_loss, "val loss: NLL, per clip")
    ax.set_title("loss", fontsize=10)
    ax.set_ylabel("cross-entropy / NLL")
  ax = axes.pop(0)
  for series, label in tops:
    _plot(ax, series, label)
  ax.set_title("accuracy", fontsize=10)
  ax.set_ylabel("top-1 accuracy")
  for ax in fig.axes:
    ax.set_xlabel("training step")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
      ax.legend(fontsize=7)
  if title:
    fig.suptitle(title)
  return fig


def training_curves(metrics: Union[PathLike, Sequence[Mapping]], path: PathLike, title: Optional[str] = None,
                    stream_loss_weight: Optional[float] = None) -> pathlib.Path:
  """Plots losses and top-1 accuracy against the training step, each curve labelled with what it measures, as a PNG.

  Rows of metrics.jsonl (`attn_har.train.metrics_log`): train rows hold 'loss' (the training objective:
  CE(fused) + stream_loss_weight * mean_s CE(stream s) for a two-stream model, plain CE otherwise, with label
  smoothing when configured), '<stream>_loss' (each stream's own CE) and 'top1' (fused, on the training batch);
  val rows hold 'loss' (NLL of the fused prediction per clip), 'clip_top1' (per clip) and 'top1' (per video).
  A two-stream run therefore gets three panels: the training objective with the per-stream CEs, the validation
  loss (with the training CE of the fused prediction, derived, when `stream_loss_weight` is given), and
  accuracy. A single-stream or image run gets two: train and val loss on one axis (the same quantity), and accuracy.

  Args:
    metrics: a metrics.jsonl path or its records.
    path: output .png path.
    title: optional figure title.
    stream_loss_weight: the run's `train.stream_loss_weight` (named in the legend; lets the fused training CE be
      derived); None when unknown.
  """
  return _save(training_curves_figure(metrics, title, stream_loss_weight), path)
