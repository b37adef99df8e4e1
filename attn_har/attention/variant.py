"""The two architectures every attention mechanism offers: 'paper' (the published design) and 'thesis' (the thesis
code's architecture, docs/thesis_code.md)."""

VARIANTS = ("paper", "thesis")


def check_variant(owner: str, variant: str) -> None:
  """Raises ValueError naming `owner` and the valid choices when `variant` is not one of `VARIANTS`."""
  if variant not in VARIANTS:
    raise ValueError(f"{owner}: unknown variant {variant!r}; valid choices: {', '.join(map(repr, VARIANTS))}")
