"""Metric logging: `<workdir>/metrics.jsonl` (one JSON object per line) and TensorBoard events in `<workdir>/tb/`.

Each line is {'step': int, 'split': 'train'|'val'|'test', <name>: float, ...}. TensorBoard scalars are tagged
'<split>/<name>' and written with tensorboardX (no TensorFlow needed); only process 0 writes.
"""

import json
import math
import pathlib
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
      self._tb = SummaryWriter(str(self.workdir / "tb"))

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

