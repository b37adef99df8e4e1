"""Metric logging: `<workdir>/metrics.jsonl` (one JSON object per line) and TensorBoard events in `<workdir>/tb/`.

Each line is {'step': int, 'split': 'train'|'val'|'test', <name>: float, ...}. TensorBoard scalars are tagged
'<split>/<name>' and written with tensorboardX (no TensorFlow needed); only process 0 writes.

After a restart each step is held once: `truncate(workdir, step)` drops the rows an interrupted run logged after
its last checkpoint (and the test rows, written again at the end), and `MetricWriter` rebuilds TensorBoard's
events from the kept rows.
"""

import json
import math
import os
import pathlib
import shutil
from typing import Any, Dict

import jax
import numpy as np


def _scalar(value: Any) -> float | None:
  if isinstance(value, (bool, np.bool_)):
    return float(value)
  try:
    arr = np.asarray(value)
  except (TypeError, ValueError):
    return None
  if arr.ndim == 0 and np.issubdtype(arr.dtype, np.number):
    return float(arr)
  return None


class MetricWriter:
  """Appends metrics to metrics.jsonl and TensorBoard.

  Attributes:
    path: the JSON-lines file.
  """

  def __init__(self, workdir, tensorboard: bool = True):
    self.workdir = pathlib.Path(workdir)
    self.path = self.workdir / "metrics.jsonl"
    self.active = jax.process_index() == 0
    self._tb = None
    if self.active and tensorboard:
      from tensorboardX import SummaryWriter
      shutil.rmtree(self.workdir / "tb", ignore_errors=True)
      self._tb = SummaryWriter(str(self.workdir / "tb"))
      for row in read_rows(self.path) if self.path.is_file() else []:
        for k, v in row.items():
          if k not in ("step", "split") and v is not None:
            self._tb.add_scalar(f"{row['split']}/{k}", v, int(row["step"]))
      self._tb.flush()

  def write(self, step: int, split: str, metrics: Dict[str, Any]) -> Dict[str, float]:
    """Writes the scalar entries of `metrics`; returns them as floats (non-finite values become None in JSON)."""
    scalars = {k: v for k, v in ((k, _scalar(v)) for k, v in metrics.items()) if v is not None}
    if not self.active:
      return scalars
    row = {"step": int(step), "split": split}
    row.update({k: (v if math.isfinite(v) else None) for k, v in scalars.items()})
    with open(self.path, "a") as f:
      f.write(json.dumps(row) + "\n")
    if self._tb is not None:
      for k, v in scalars.items():
        self._tb.add_scalar(f"{split}/{k}", v, int(step))
      self._tb.flush()
    return scalars

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()



def read_rows(path) -> list:
  """The rows of a metrics.jsonl; a malformed line raises ValueError naming the file and line."""
  path = pathlib.Path(path)
  rows = []
  for i, line in enumerate(path.read_text().splitlines(), 1):
    if line.strip():
      try:
        rows.append(json.loads(line))
      except ValueError as e:
        raise ValueError(f"{path}:{i}: not a JSON metrics row ({e})") from None
  return rows


def truncate(workdir, step: int) -> None:
  """Keeps the train/val rows up to `step` (the checkpoint a run resumes from; 0 = none), atomically."""
  path = pathlib.Path(workdir) / "metrics.jsonl"
  if not path.is_file():
    return
  lines = [line for line in path.read_text().splitlines() if line.strip()]
  kept = [line for line, row in zip(lines, read_rows(path)) if row["step"] <= step and row["split"] != "test"]
  if len(kept) == len(lines):
    return
  tmp = path.with_suffix(".jsonl.tmp")
  tmp.write_text("".join(line + "\n" for line in kept))
  os.replace(tmp, path)
