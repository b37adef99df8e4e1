"""Golden parameter counts (K = 100, 224x224x3) through jax.eval_shape: no compute.

Thesis tables 5.1 / 5.2 count like Keras's `count_params()`: trainable weights plus BatchNorm moving statistics.
"""

import pytest

from attn_har.backbones.mobilenet_v2 import block_widths
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


# Keras's `MobileNetV2(alpha=a, include_top=True, classes=1000).count_params()`: widths by Keras's rules
# (`mobilenet_v2.block_widths`; 0.35 and 1.0 also as the Keras fixture files and keras.applications report them).
KERAS_MOBILENET_V2 = {0.28: 1_571_416, 0.35: 1_691_208, 0.5: 1_987_224, 0.56: 2_102_744, 0.75: 2_663_064,
                      1.0: 3_538_984, 1.12: 4_164_376, 1.3: 5_431_048, 1.4: 6_156_712}


@pytest.mark.parametrize("alpha", list(KERAS_MOBILENET_V2))
def test_mobilenet_v2_parameter_counts_equal_keras_for_every_alpha(alpha):
  model = build_image_model("mobilenet_v2", None, num_classes=1000, alpha=alpha)
  assert count_params(model, (1, 224, 224, 3)) == KERAS_MOBILENET_V2[alpha]


def test_mobilenet_v2_widths_truncate_like_keras():
  # alpha 0.56: int(64 * 0.56) = 35 -> 32 channels in block_6 .. block_9 (rounding 35.84 gave 40: 998,676 params
  # at K = 100 instead of Keras's 949,844).
  first, widths, last = block_widths(0.56)
  assert (first, widths[6], widths[16], last) == (24, 32, 176, 1280)
  model = build_image_model("mobilenet_v2", None, num_classes=100, alpha=0.56)
  assert count_params(model, (1, 224, 224, 3)) == 949_844
  assert block_widths(1.4)[2] == 1792 and block_widths(1.0)[2] == 1280


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
