"""Small layers shared by the backbones and attention modules (Keras defaults, fast depthwise conv)."""

from attn_har.layers.depthwise import DepthwiseConv

__all__ = ["DepthwiseConv"]
