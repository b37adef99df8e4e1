"""Attention mechanisms, one file each, and their registry `ATTENTION`.

Adding a mechanism: write its class (the protocol below) in its own file, add it to `ATTENTION` (or, from user
code, `ATTENTION['name'] = MyModule` at run time), and name it in a config (`model.attention=name`). Nothing else
compares mechanism names: `attn_har.models.build_image_model` resolves the name once into an
`attn_har.backbones.attach.Attachment`, and the backbones read every mechanism-specific fact from the class.

The mechanism protocol
  Class attributes (only `placement` is required)
    placement: ClassVar[str]   'head' (replaces the backbone's classifier) or 'trunk' (a module in the trunk).
    inside_block_variants: ClassVar[tuple[str, ...]]   trunk: variants whose module sits inside every residual
        block, on the residual branch before the add (paper CBAM); other variants go after blocks.
    replaces_block: ClassVar[Mapping[family, tuple[variant, ...]]]   trunk: variants that replace the block at
        each position instead of following it, per backbone family ('mobilenet', 'resnet'; thesis residual
        attention on MobileNetV2).
    family_positions: ClassVar[Mapping[family, tuple[str, ...]]]   default block names per backbone family
        when they differ from the backbone's defaults for the placement.
    family_defaults: ClassVar[Mapping[(family, variant | None), Mapping]]   settings per backbone family (and
        variant; None = any), overridden by the user's (ResNet gate widths, thesis residual p and t).
    at_level(settings, level, num_levels) -> settings   optional staticmethod: per-attachment-point settings
        (residual attention's shortcuts 2, 1, 0).
  Fields
    variant: str = 'paper'     'paper' (the published design) or 'thesis' (the thesis code's architecture).
    dtype, param_dtype         compute and parameter dtypes; normalisations run in float32.
    bn_axis_name               optional: given the backbone's mapped BatchNorm axis (`nn.vmap`'s time axis).
    unit                       optional (trunk): given the host backbone's stride-1 residual block factory,
                               `unit(name=...)`, [B, H, W, C] -> [B, H, W, C] (residual attention's units).
  Trunk protocol
    __call__(x [B, H, W, C], train) -> [B, H, W, C]   a feature map of the same shape.
  Head protocol (replaces the backbone's classifier)
    constructed with num_classes=K and num_scales=len(taps);
    __call__(taps, out, train) -> {'logits': [B, K] float32, 'features': [B, F]}, where taps are the backbone's
        feature maps at the attachment points ([B, h_i, w_i, c_i], early to late) and out its last feature map
        [B, h, w, D]; features are what the classifier consumes;
    features(taps, out, train) -> [B, F]   the same features without building the classifier (stream models
        that read per-frame features: LSTM, temporal attention pooling).
  Maps
    every module sows its normalised map, float32: `self.sow('intermediates', 'attention', a)`, a [B, h, w]
    ([B, h, w, C] for residual attention's mask; analysis averages the channels); `attn_har.inspect.attention_maps`
    collects them. tests/test_new_mechanism.py adds a sixth mechanism this way.
"""

from attn_har.attention.cbam import CBAM
from attn_har.attention.gate import AttentionGate, GridAttentionGate
from attn_har.attention.l2pa import LearnToPayAttention
from attn_har.attention.residual import ResidualAttention

ATTENTION = {
    "l2pa": LearnToPayAttention,
    "gate": AttentionGate,
    "gate_grid": GridAttentionGate,
    "residual": ResidualAttention,
    "cbam": CBAM,
}

__all__ = ["ATTENTION", "AttentionGate", "CBAM", "GridAttentionGate", "LearnToPayAttention",
           "ResidualAttention"]
