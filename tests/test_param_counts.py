"""Golden parameter counts (K = 100, 224x224x3) through jax.eval_shape: no compute.

Thesis tables 5.1 / 5.2 count like Keras's `count_params()`: trainable weights plus BatchNorm moving statistics.
"""

import pytest

from attn_har.inspect import count_params
from attn_har.models import build_image_model

THESIS = {
    ("mobilenet_v2", None): 2_386_084,
    ("mobilenet_v2", "l2pa"): 3_784_420,
    ("mobilenet_v2", "gate"): 3_126_928,
    ("mobilenet_v2", "gate_grid"): 3_126_928,
    ("mobilenet_v2", "residual"): 2_629_044,
    ("mobilenet_v2", "cbam"): 2_387_870,
    ("resnet50_v2", None): 23_769_700,
    ("resnet50_v2", "l2pa"): 28_395_620,
    ("resnet50_v2", "gate"): 28_581_136,
    ("resnet50_v2", "gate_grid"): 28_581_136,
    ("resnet50_v2", "residual"): 33_274_980,
    ("resnet50_v2", "cbam"): 23_943_933,
}

# Published designs (variant='paper'); computed by this code base, pinned against drift.
PAPER = {
    ("mobilenet_v2", None): 2_386_084,
    ("mobilenet_v2", "l2pa"): 3_014_564,
    ("mobilenet_v2", "gate"): 2_547_175,
    ("mobilenet_v2", "gate_grid"): 2_547_175,
    ("mobilenet_v2", "residual"): 2_988_884,
    ("mobilenet_v2", "cbam"): 2_417_831,
    ("resnet50_v2", None): 23_769_700,
    ("resnet50_v2", "l2pa"): 27_855_460,
    ("resnet50_v2", "gate"): 24_457_191,
    ("resnet50_v2", "gate_grid"): 24_457_191,
    ("resnet50_v2", "residual"): 36_663_908,
    ("resnet50_v2", "cbam"): 26_302_324,
}


@pytest.mark.parametrize("backbone,attention", list(THESIS))
def test_thesis_parameter_counts(backbone, attention):
  model = build_image_model(backbone, attention, num_classes=100, variant="thesis")
  assert count_params(model, (1, 224, 224, 3)) == THESIS[backbone, attention]


@pytest.mark.parametrize("backbone,attention", list(PAPER))
def test_paper_parameter_counts(backbone, attention):
  model = build_image_model(backbone, attention, num_classes=100, variant="paper")
  assert count_params(model, (1, 224, 224, 3)) == PAPER[backbone, attention]


def test_count_params_collections():
  model = build_image_model("mobilenet_v2", None, num_classes=100)
  # 17,056 BatchNorm channels, each with a moving mean and variance (Keras: 34,112 non-trainable).
  assert count_params(model, (1, 224, 224, 3), collections=("params",)) == 2_386_084 - 34_112


def test_thesis_l2pa_head_depends_on_resolution():
  model = build_image_model("mobilenet_v2", "l2pa", num_classes=100, variant="thesis")
  # 32x32 input: the maps flatten to 16 + 4 + 1 = 21 head inputs (docs/thesis_code.md §2).
  assert count_params(model, (1, 32, 32, 3)) == 2_752_228


def test_flow_input_channels_add_conv1_weights():
  model = build_image_model("mobilenet_v2", "cbam", num_classes=100, variant="thesis")
  # 10 optical-flow channels instead of 3: 3 * 3 * 7 * 32 more weights in Conv1.
  assert count_params(model, (1, 224, 224, 10)) == 2_387_870 + 2_016
