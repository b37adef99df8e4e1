"""A training progress bar with rate and ETA (tqdm on stderr), and its no-op twin for non-interactive runs."""

import sys
from typing import Dict

import tqdm


class Progress:
  """Steps done / total, steps per second, ETA, and the latest metrics in the postfix.

  Attributes:
    enabled: False prints nothing.
  """

  def __init__(self, total: int, initial: int = 0, enabled: bool = True, desc: str = "train"):
    self.enabled = enabled
    self._bar = tqdm.tqdm(total=total, initial=initial, desc=desc, unit="step", dynamic_ncols=True,
                          file=sys.stderr, disable=not enabled, smoothing=0.1,
                          mininterval=0.1 if sys.stderr.isatty() else 30.0)

  def update(self, steps: int = 1, metrics: Dict[str, float] | None = None) -> None:
    if metrics:
      self._bar.set_postfix({k: f"{v:.3g}" for k, v in metrics.items()}, refresh=False)
    self._bar.update(steps)

  def write(self, text: str) -> None:
    """Prints a line without breaking the bar."""
    self._bar.write(text, file=sys.stderr)

  def close(self) -> None:
    self._bar.close()
