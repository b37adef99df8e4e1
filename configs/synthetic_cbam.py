"""Two-stream MobileNetV2, CBAM, on the built-in synthetic action set (thesis §4.3, §5.5).

Data: generated and pre-processed (Farnebäck flow, 9-pixel window) into the cache on first use; only motion separates
the classes, so the RGB stream stays near chance and the flow stream carries the result.
Run:      python launch.py --config=configs/synthetic_cbam.py --workdir=runs/synthetic_cbam
Smoke:    python launch.py --config=configs/synthetic_cbam.py:smoke --workdir=/tmp/synthetic_cbam
Args:     smoke, split=N, stream=rgb|flow|two_stream, temporal=, fusion=, backbone=, store=, steps=, ...
          (see attn_har/config/video.py)
Default:  `python launch.py` (no --config) runs this file into <cache>/runs/synthetic_cbam.
Expected: measured once per setting, seed 0, 60 test videos (10 classes): test top-1 fused 0.40 (top-5 0.85),
          flow stream alone 0.35, RGB stream alone 0.18 (chance 0.10). An earlier setting (2:1 fusion, 1 view)
          gave fused 0.45, flow 0.52, RGB 0.08. Below the 0.5 target: more steps are needed.
Runtime:  9 min 35 s wall from an empty cache (17 s data generation + DIS flow, ~4 min compile, 600 steps)
          on the shared 2-core CPU at load ~4.5; 18 min at load ~8 (hardware: 2 shared CPU cores, no GPU).
"""

from attn_har.config.video import video_config


def get_config(arg=None):
  return video_config("synthetic", "cbam", arg)
