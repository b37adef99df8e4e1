"""Two-stream MobileNetV2, CBAM, on HMDB51 (thesis §4.3, §5.5).

Data: a pre-processed HMDB51 clip store (store=DIR). Without one the run stops and prints the
raw-data layout and the `python -m attn_har.data.preprocess` command; nothing is downloaded.
Run:      python launch.py --config=configs/hmdb51_cbam.py:store=STORE --workdir=runs/hmdb51_cbam
Smoke:    python launch.py --config=configs/hmdb51_cbam.py:smoke,store=STORE --workdir=/tmp/hmdb51_cbam
Args:     smoke, split=N, stream=rgb|flow|two_stream, temporal=, fusion=, backbone=, store=, steps=, ...
          (see attn_har/config/video.py)
Cost:     the default store (25 frames of 128x128, DIS flow, L = 5 pairs of consecutive video frames per frame, shared
          where stacks overlap): at most 5.3 MB (125 pairs; 3.6 MB for a 74-frame clip) and ~0.4-0.6 s of flow +
          ~0.1-0.3 s of decoding per clip on one core (the 2 real avi clips), so at most ~36 GB and ~1 h with 2
          workers for 6,766 clips (benchmarks/bench_flow.py). A training batch (64 clips x 5 frames at 112 px) is
          48 MB RGB + 161 MB flow (float32) on the host and reads up to ~340 MB of clip files.
Expected: not yet measured.
Runtime:  not yet measured (hardware: -).
"""

from attn_har.config.video import video_config


def get_config(arg=None):
  return video_config("hmdb51", "cbam", arg)
