"""Attention mechanisms, one file each, and their registry.

Each class has `placement`: 'head' modules (L2PA, gates) read local feature maps tapped from the backbone plus
its last feature map and produce the logits; 'trunk' modules (CBAM, residual attention) transform feature maps
inside the backbone. Every module sows its normalised map (float32) as `intermediates/.../attention`.
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
