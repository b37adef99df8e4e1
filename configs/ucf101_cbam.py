"""Two-stream MobileNetV2, CBAM, on UCF101 (thesis §4.3, §5.5).

Data: a pre-processed UCF101 clip store (store=DIR). Without one the run stops and prints the
raw-data layout and the `python -m attn_har.data.preprocess` command; nothing is downloaded.
Run:      python launch.py --config=configs/ucf101_cbam.py:store=STORE --workdir=runs/ucf101_cbam
Smoke:    python launch.py --config=configs/ucf101_cbam.py:smoke,store=STORE --workdir=/tmp/ucf101_cbam
Args:     smoke, split=N, stream=rgb|flow|two_stream, temporal=, fusion=, backbone=, store=, steps=, ...
          (see attn_har/config/video.py)
Expected: not yet measured.
Runtime:  not yet measured (hardware: -).
"""

from attn_har.config.video import video_config


def get_config(arg=None):
  return video_config("ucf101", "cbam", arg)
