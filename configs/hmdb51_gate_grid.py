"""Two-stream MobileNetV2, attention-gated grid heads, on HMDB51 (thesis §4.3, §5.5).

Data: a pre-processed HMDB51 clip store (store=DIR). Without one the run stops and prints the
raw-data layout and the `python -m attn_har.data.preprocess` command; nothing is downloaded.
Run:      python launch.py --config=configs/hmdb51_gate_grid.py:store=STORE --workdir=runs/hmdb51_gate_grid
Smoke:    python launch.py --config=configs/hmdb51_gate_grid.py:smoke,store=STORE --workdir=/tmp/hmdb51_gate_grid
Args:     smoke, split=N, stream=rgb|flow|two_stream, temporal=, fusion=, backbone=, store=, steps=, ...
          (see attn_har/config/video.py)
Expected: not yet measured.
Runtime:  not yet measured (hardware: -).
"""

from attn_har.config.video import video_config


def get_config(arg=None):
  return video_config("hmdb51", "gate_grid", arg)
