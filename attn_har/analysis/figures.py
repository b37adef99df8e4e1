"""Figure writers: the stage grid (thesis Tables 6.2/6.3), clip overlays as GIF/MP4, training curves.

matplotlib is used through its object API on the Agg canvas (`Figure` + `FigureCanvasAgg`), so nothing touches
pyplot's global backend state and it runs headless.
"""

import pathlib
from typing import Dict, List, Mapping, Optional, Sequence, Union

import cv2
import imageio.v2 as imageio
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
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


def stage_grid(rows: Sequence[Mapping], path: PathLike, columns: Sequence[str] = STAGE_COLUMNS,
               cmap: str = "inferno", title: Optional[str] = None) -> pathlib.Path:
  """Writes the thesis's attention table as one PNG: one row per model, one column per stage.

  The 'combined' column is an overlay of the combined map on the image; stage columns show each map at its own
  resolution (nearest-neighbour, so the feature-map grid stays visible), min-max normalised.

  Args:
    rows: dicts with 'label' (str), 'image' ([H, W, 3] frame, any range) and 'maps' ({column: map [h, w]});
      a column absent from 'maps' is drawn as 'n/a'.
    path: output .png path.
    columns: column names, in order ('combined' gets the overlay).
    cmap: matplotlib colormap.
    title: optional figure title.

  Returns:
    The written path.
  """
  if not rows:
    raise ValueError("stage_grid needs at least one row")
  fig = Figure(figsize=(2.0 * len(columns) + 1.6, 2.0 * len(rows) + (0.5 if title else 0.2)))
  axes = fig.subplots(len(rows), len(columns), squeeze=False)
  for r, row in enumerate(rows):
    for key in ("label", "image", "maps"):
      if key not in row:
        raise KeyError(f"stage_grid row {r} lacks key {key!r} (needs 'label', 'image', 'maps')")
    for c, col in enumerate(columns):
      ax = axes[r][c]
      ax.set_xticks([])
      ax.set_yticks([])
      m = row["maps"].get(col)
      if m is None:
        ax.text(0.5, 0.5, "n/a", ha="center", va="center", transform=ax.transAxes)
      elif col == "combined":
        ax.imshow(overlay.overlay(row["image"], m, cmap=cmap))
      else:
        ax.imshow(combine.normalize(m), cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
      if r == 0:
        ax.set_title(col, fontsize=10)
      if c == 0:
        ax.set_ylabel(row["label"], fontsize=8, rotation=0, ha="right", va="center")
  if title:
    fig.suptitle(title)
  fig.tight_layout()
  return _save(fig, path)


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


def training_curves(metrics: Union[PathLike, Sequence[Mapping]], path: PathLike,
                    keys: Sequence[str] = ("loss", "top1"), splits: Sequence[str] = ("train", "val"),
                    title: Optional[str] = None) -> pathlib.Path:
  """Plots loss and top-1 against step for the train and validation splits, as one PNG.

  Args:
    metrics: a metrics.jsonl path or its records ({'step', 'split', 'loss', 'top1', ...}).
    path: output .png path.
    keys: one panel per metric key.
    splits: one line per split; a split with no record of a key is skipped.
    title: optional figure title.
  """
  records = read_metrics(metrics) if isinstance(metrics, (str, pathlib.Path)) else list(metrics)
  fig = Figure(figsize=(5.0 * len(keys), 3.6))
  axes = fig.subplots(1, len(keys), squeeze=False)[0]
  plotted = 0
  for ax, key in zip(axes, keys):
    for split in splits:
      pts = sorted((r["step"], r[key]) for r in records
                   if r.get("split") == split and key in r and "step" in r and r[key] is not None)
      if pts:
        steps, values = zip(*pts)
        ax.plot(steps, values, marker="o" if len(pts) < 30 else None, markersize=3, label=split)
        plotted += 1
    ax.set_xlabel("step")
    ax.set_ylabel(key)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
      ax.legend()
  if plotted == 0:
    raise ValueError(f"no records with 'step', 'split' in {list(splits)} and any of {list(keys)} to plot")
  if title:
    fig.suptitle(title)
  fig.tight_layout()
  return _save(fig, path)
