"""`VIDEO_MODELS`: per-stream video classifiers (a lifted frame model + temporal aggregation) by name."""

from attn_har.video.lstm import CNNLSTM
from attn_har.video.temporal_pool import FrameAverage, TemporalAttentionPool

VIDEO_MODELS = {
    "average": FrameAverage,
    "attention_pool": TemporalAttentionPool,
    "lstm": CNNLSTM,
}
