"""Two-stream MobileNetV2, Learn-to-Pay-Attention (L2PA), on the built-in synthetic action set (thesis §4.3, §5.5).

Data: generated and pre-processed (Farnebäck flow, 9-pixel window) into the cache on first use; only motion separates
the classes, so the RGB stream stays near chance and the flow stream carries the result.
Run:      python launch.py --config=configs/synthetic_l2pa.py --workdir=runs/synthetic_l2pa
Smoke:    python launch.py --config=configs/synthetic_l2pa.py:smoke --workdir=/tmp/synthetic_l2pa
Args:     smoke, split=N, stream=rgb|flow|two_stream, temporal=, fusion=, backbone=, store=, steps=, ...
          (see attn_har/config/video.py)
Expected: not yet measured.
Runtime:  not yet measured (hardware: -).
"""

from attn_har.config.video import video_config


def get_config(arg=None):
  return video_config("synthetic", "l2pa", arg)
