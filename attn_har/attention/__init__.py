"""Attention mechanisms, one file each, and their registry `ATTENTION`.

What a mechanism provides (today's protocol; the backbones and `models.image.ImageClassifier` rely on it):

  Class attributes
    placement: ClassVar[str]   'head' or 'trunk'.
    inside_block_variants: ClassVar[tuple[str, ...]]   trunk only, optional: variants whose module sits inside
        every residual block, on the residual branch before the add (paper CBAM); other variants are inserted
        after the blocks at the backbone's attachment points (`attn_har.backbones.attach`).
  Fields
    variant: str = 'paper'     'paper' (the published design) or 'thesis' (the thesis code's architecture).
    dtype, param_dtype         compute and parameter dtypes; normalisations run in float32.
    bn_axis_name               optional: the mapped axis (`nn.vmap`'s time axis) its BatchNorms reduce over.
  Trunk protocol
    __call__(x [B, H, W, C], train) -> [B, H, W, C]   a feature map of the same shape.
  Head protocol (replaces the backbone's classifier)
    constructed with num_classes=K and num_scales=len(taps);
    __call__(taps, out, train) -> logits [B, K] float32, where taps are the backbone's feature maps at the
        attachment points ([B, h_i, w_i, c_i], early to late) and out its last feature map [B, h, w, D];
    features(taps, out, train) -> [B, F]   what the classifier consumes (for the SVM fusion and analysis).
  Maps
    every module sows its normalised map, float32: `self.sow('intermediates', 'attention', a)`, a [B, h, w]
    ([B, h, w, C] for residual attention's mask; analysis averages the channels); `attn_har.inspect.attention_maps`
    collects them.

Still decided by name elsewhere (to be moved onto the classes): residual attention's attachment points and unit
wrapping (`backbones/attach.py`, `backbones/mobilenet_v2.py`) and the ResNet gate widths (`models/image.py`).
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
