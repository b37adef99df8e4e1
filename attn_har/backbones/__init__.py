"""Backbones and their registry. Each returns (last feature map, taps) from `__call__(x, train)`; `keras_weights`
loads Keras's ImageNet weight files into MobileNetV2 and ResNet50V2/101V2."""

import functools

from attn_har.backbones.mobilenet_v2 import MobileNetV2
from attn_har.backbones.resnet_v2 import ResNetV2

BACKBONES = {
    "mobilenet_v2": MobileNetV2,
    "resnet18_v2": functools.partial(ResNetV2, depth=18),
    "resnet34_v2": functools.partial(ResNetV2, depth=34),
    "resnet50_v2": functools.partial(ResNetV2, depth=50),
    "resnet101_v2": functools.partial(ResNetV2, depth=101),
}

__all__ = ["BACKBONES", "MobileNetV2", "ResNetV2"]
