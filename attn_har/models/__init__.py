"""Image models (backbone + attention + head); see `build_image_model`."""

from attn_har.models.image import ImageClassifier, build_image_model

__all__ = ["ImageClassifier", "build_image_model"]
