"""Checks of the `model` config section, run before any work; each error names the valid choices.

Also the one table of model-level names the config uses: `STREAM_INPUTS`, `DTYPES` (config name -> jnp dtype) and
`LIFTS` ('auto' is 'fold', `attn_har.models.build.lift_mode`).
"""

import jax.numpy as jnp
import ml_collections

from attn_har.attention.variant import VARIANTS
from attn_har.layers.pointwise import MODES as POINTWISE_MODES
from attn_har.registry import check_choice, lookup

# The batch keys each model.stream reads.
STREAM_INPUTS = {"image": ("image",), "rgb": ("rgb",), "flow": ("flow",), "two_stream": ("rgb", "flow")}
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
LIFTS = ("auto", "vmap", "fold")


def inputs_of(m: ml_collections.ConfigDict) -> tuple:
  """The batch keys model section `m` reads: ('image',), ('rgb',), ('flow',) or ('rgb', 'flow')."""
  return lookup(STREAM_INPUTS, m.stream, "model.stream")


def check(m: ml_collections.ConfigDict) -> None:
  """Raises KeyError naming `model.<key>` and its valid choices for an unknown name in the model section."""
  from attn_har.attention import ATTENTION  # pylint: disable=import-outside-toplevel
  from attn_har.backbones import BACKBONES  # pylint: disable=import-outside-toplevel
  inputs_of(m)
  backbone = lookup(BACKBONES, m.backbone, "model.backbone")
  from attn_har.models.image import settable_fields  # pylint: disable=import-outside-toplevel
  accepted = settable_fields(backbone)
  unknown = sorted(set(m.backbone_kwargs) - set(accepted))
  if unknown:
    raise KeyError(f"model.backbone_kwargs: {unknown} not accepted by backbone {m.backbone!r}; valid keys: "
                   f"{list(accepted)}")
  if not m.alpha > 0:
    raise ValueError(f"model.alpha must be > 0, got {m.alpha}")
  lookup({"none": None, **ATTENTION}, m.attention, "model.attention")
  check_choice(VARIANTS, m.variant, "model.variant")
  lookup(DTYPES, m.dtype, "model.dtype")
  check_choice(LIFTS, m.lift, "model.lift")
  check_choice(POINTWISE_MODES, m.pointwise, "model.pointwise")
  if m.stream != "image":
    from attn_har.models.build import TEMPORAL_MODELS  # pylint: disable=import-outside-toplevel
    from attn_har.models.fusion import FUSIONS  # pylint: disable=import-outside-toplevel
    from attn_har.models.lstm import READOUTS  # pylint: disable=import-outside-toplevel
    from attn_har.models.temporal import CONSENSUS  # pylint: disable=import-outside-toplevel
    lookup(TEMPORAL_MODELS, m.temporal, "model.temporal")
    check_choice(CONSENSUS, m.get("frame_consensus", "softmax"), "model.frame_consensus")
    lookup(FUSIONS, m.fusion, "model.fusion")
    check_choice(READOUTS, m.lstm.readout, "model.lstm.readout")
