"""The model-complexity tables: the thesis's 12 image models (tables 5.1-5.2, 224x224x3, K = 100) and the paper variants.

Each row builds its model with `attn_har.models.build_image_model`; `measure` counts parameters (`count_params`,
Keras's convention: BN statistics included) and FLOPs (`count_flops`, the thesis's keras-flops convention) by tracing
only, and `format_table` sets them beside the thesis's numbers (for the paper table: the thesis's numbers of the
same backbone + attention, so Δ is what the paper design changes).
"""

import dataclasses
from typing import Optional

import flax.linen as nn

from attn_har.inspect.flops import count_flops
from attn_har.inspect.params import count_params
from attn_har.models import build_image_model

INPUT_SHAPE = (1, 224, 224, 3)
NUM_CLASSES = 100


@dataclasses.dataclass(frozen=True)
class ModelRow:
  """One model of a table.

  Attributes:
    backbone: `build_image_model` backbone name.
    attention: attention name, or None for the plain backbone.
    variant: 'thesis' or 'paper'.
    params: the thesis's parameter count for this model (None where it has none).
    flops: the thesis's FLOP count for this model (None where it has none).
  """
  backbone: str
  attention: Optional[str]
  variant: str = "thesis"
  params: Optional[int] = None
  flops: Optional[int] = None

  def build(self, num_classes: int = NUM_CLASSES) -> nn.Module:
    return build_image_model(backbone=self.backbone, attention=self.attention, num_classes=num_classes,
                             variant=self.variant)


_MNV2, _R50 = "mobilenet_v2", "resnet50_v2"

# Thesis tables 5.2 (MobileNetV2) and 5.1 (ResNet50V2), in the thesis's row order.
THESIS_MODELS = {
    "MobileNetV2": ModelRow(_MNV2, None, params=2_386_084, flops=612_982_808),
    "MobileNetV2 + L2PA": ModelRow(_MNV2, "l2pa", params=3_784_420, flops=615_937_969),
    "MobileNetV2 + gated": ModelRow(_MNV2, "gate", params=3_126_928, flops=620_158_221),
    "MobileNetV2 + gated grid": ModelRow(_MNV2, "gate_grid", params=3_126_928, flops=631_959_315),
    "MobileNetV2 + residual attention": ModelRow(_MNV2, "residual", params=2_629_044, flops=687_043_220),
    "MobileNetV2 + CBAM": ModelRow(_MNV2, "cbam", params=2_387_870, flops=614_629_354),
    "ResNet50V2": ModelRow(_R50, None, params=23_769_700, flops=6_988_783_832),
    "ResNet50V2 + L2PA": ModelRow(_R50, "l2pa", params=28_395_620, flops=6_999_088_113),
    "ResNet50V2 + gated": ModelRow(_R50, "gate", params=28_581_136, flops=7_052_632_493),
    "ResNet50V2 + gated grid": ModelRow(_R50, "gate_grid", params=28_581_136, flops=7_090_390_451),
    "ResNet50V2 + residual attention": ModelRow(_R50, "residual", params=33_274_980, flops=12_879_604_452),
    "ResNet50V2 + CBAM": ModelRow(_R50, "cbam", params=23_943_933, flops=7_000_117_000),
}

# The same models with the attention modules as their papers define them; the reference numbers stay the thesis's,
# so the table shows what the paper designs change.
PAPER_MODELS = {
    name: dataclasses.replace(row, variant="paper") for name, row in THESIS_MODELS.items() if row.attention is not None
}

TABLES = {"thesis": THESIS_MODELS, "paper": PAPER_MODELS}


@dataclasses.dataclass(frozen=True)
class Measured:
  """A counted row: ours beside the thesis's (None where the thesis has no number)."""
  name: str
  params: int
  flops: int
  thesis_params: Optional[int]
  thesis_flops: Optional[int]


def measure(name: str, row: ModelRow) -> Measured:
  """Counts one row's parameters and FLOPs at 224x224x3 (tracing only)."""
  model = row.build()
  return Measured(name, count_params(model, INPUT_SHAPE), count_flops(model, INPUT_SHAPE), row.params, row.flops)


def _num(n: Optional[int]) -> str:
  return "-" if n is None else f"{n:,}"


def _delta(ours: int, theirs: Optional[int]) -> str:
  return "-" if theirs is None else f"{100.0 * (ours - theirs) / theirs:+.3f}%"


def format_table(rows: list[Measured]) -> str:
  """A fixed-width text table: name, params (ours, thesis, Δ), FLOPs (ours, thesis, Δ)."""
  header = ("model", "params", "thesis params", "Δ", "FLOPs", "thesis FLOPs", "Δ")
  cells = [header] + [(m.name, _num(m.params), _num(m.thesis_params), _delta(m.params, m.thesis_params),
                       _num(m.flops), _num(m.thesis_flops), _delta(m.flops, m.thesis_flops)) for m in rows]
  widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
  fmt = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
  lines = [fmt(header), "  ".join("-" * w for w in widths)] + [fmt(r) for r in cells[1:]]
  return "\n".join(lines)
