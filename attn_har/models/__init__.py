"""All model assembly: image classifiers, stream models over time, two-stream fusion; `build_model(config.model)`.

Model protocol (what the trainer, evaluation and analysis rely on; every model `build_model` returns follows it):
  __call__(batch, train) -> {'logits': [B, K] float32, 'features': [B, D] float32,
                             'streams' (two-stream only): {'rgb': [B, K], 'flow': [B, K]}}
      `batch` is the loader's dict; the model reads its own keys. `train` is positional.
  inputs: tuple[str, ...]      the batch keys it reads ('image',), ('rgb',), ('flow',) or ('rgb', 'flow').
  frame_models() -> {stream: (variable path, image classifier)}   the per-frame image models (Grad-CAM and
      attention maps run on them with the variables at that path).

Files:
  image       `ImageClassifier` (backbone + attention + classifier, array in), `ImageModel`, `build_image_model`.
  lift        a per-frame module applied over time (`nn.vmap` or folding T into the batch).
  temporal    `FrameAverage`, `TemporalAttentionPool`; lstm: `CNNLSTM`.
  two_stream  `TwoStream`; fusion: `FUSIONS` and the post-hoc linear SVM.
  build       `build_model`, `sample_batch`, `TEMPORAL_MODELS`, `STREAM_MODELS`.
  one_input   `OneInput`: `inputs`, `frame_models` and the batch-key check of the one-input models.
  check       the model config section's checks.
"""

from attn_har.models.build import build_model, sample_batch
from attn_har.models.image import ImageClassifier, ImageModel, build_image_model

__all__ = ["ImageClassifier", "ImageModel", "build_image_model", "build_model", "sample_batch"]
