"""Checks of the `data` config section, run before any work; each error names the valid choices."""

import ml_collections

from attn_har.registry import check_choice, lookup


def check(c: ml_collections.ConfigDict, stream: str) -> None:
  """Raises KeyError / ValueError naming `data.<key>` for the data section of a `stream` model ('image', ...)."""
  if stream == "image":
    from attn_har.data.images import IMAGE_DATASETS  # pylint: disable=import-outside-toplevel
    lookup(IMAGE_DATASETS, c.dataset, "data.dataset (image)")
  else:
    from attn_har.data.datasets import DATASETS  # pylint: disable=import-outside-toplevel
    from attn_har.data.flow import FLOW_METHODS  # pylint: disable=import-outside-toplevel
    from attn_har.data.stacking import PAIRINGS, STACKING_MODES  # pylint: disable=import-outside-toplevel
    source = lookup(DATASETS, c.dataset, "data.dataset (video)")
    check_choice(source.split_ids, str(c.split), f"data.split of {c.dataset}")
    lookup(FLOW_METHODS, c.flow_method, "data.flow_method")
    check_choice(STACKING_MODES, c.stacking, "data.stacking")
    if c.get("pairing") is not None:
      check_choice(PAIRINGS, c.pairing, "data.pairing")
    if c.num_frames < 1 or c.flow_length < 1:
      raise ValueError(f"data.num_frames and data.flow_length must be >= 1, got {c.num_frames}, {c.flow_length}")
  if not 0.0 <= c.val_fraction < 1.0:
    raise ValueError(f"data.val_fraction must lie in [0, 1), got {c.val_fraction}")
