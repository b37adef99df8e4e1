"""Post-hoc explanations: Grad-CAM, guided backpropagation and Guided Grad-CAM for any flax model."""

from attn_har.explain.gradcam import (GradCAM, gradcam, gradcam_layers, gradcam_multi, guided_gradcam,
                                     normalize_map)
from attn_har.explain.guided_backprop import eval_guided, guided_backprop, guided_relu

__all__ = ["GradCAM", "eval_guided", "gradcam", "gradcam_layers", "gradcam_multi", "guided_backprop", "guided_gradcam",
           "guided_relu", "normalize_map"]
