"""Two-stream MobileNetV2, no attention, on UCF101 (thesis §4.3, §5.5).

Data: a pre-processed UCF101 clip store (store=DIR). Without one the run stops and prints the
raw-data layout and the `python -m attn_har.data.preprocess` command; nothing is downloaded.
Run:      python launch.py --config=configs/ucf101_baseline.py:store=STORE --workdir=runs/ucf101_baseline
Smoke:    python launch.py --config=configs/ucf101_baseline.py:smoke,store=STORE --workdir=/tmp/ucf101_baseline
Args:     smoke, split=N, stream=rgb|flow|two_stream, temporal=, fusion=, backbone=, store=, steps=, ...
          (see attn_har/config/video.py)
Cost:     the default store (25 frames of 128x128, DIS flow, L = 5 pairs of consecutive video frames per frame, shared
          where stacks overlap): 5.3 MB and ~0.4-0.9 s of flow (125 pairs) + ~0.1-0.5 s of decoding per clip on one
          core (the 4 real clips), so ~71 GB and ~2 h with 2 workers for 13,320 clips (benchmarks/bench_flow.py:
          L = 10 is ~180 pairs per clip). A training batch (64 clips x 5 frames at 112 px) is 48 MB RGB + 161 MB flow
          (float32) on the host and reads ~340 MB of clip files (each item reads its whole clip).
Expected: not yet measured.
Runtime:  not yet measured (hardware: -).
"""

from attn_har.config.video import video_config


def get_config(arg=None):
  return video_config("ucf101", "none", arg)
