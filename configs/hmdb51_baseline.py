"""Two-stream MobileNetV2, no attention, on HMDB51 (thesis §4.3, §5.5).

Data: a pre-processed HMDB51 clip store (store=DIR). Without one the run stops and prints the
raw-data layout and the `python -m attn_har.data.preprocess` command; nothing is downloaded.
Run:      python launch.py --config=configs/hmdb51_baseline.py:store=STORE --workdir=runs/hmdb51_baseline
Smoke:    python launch.py --config=configs/hmdb51_baseline.py:smoke,store=STORE --workdir=/tmp/hmdb51_baseline
Args:     smoke, split=N, stream=rgb|flow|two_stream, temporal=, fusion=, backbone=, store=, steps=, ...
          (see attn_har/config/video.py)
Expected: not yet measured.
Runtime:  not yet measured (hardware: -).
"""

from attn_har.config.video import video_config


def get_config(arg=None):
  return video_config("hmdb51", "none", arg)
