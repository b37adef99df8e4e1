"""Two-stream MobileNetV2, CBAM, on the built-in synthetic action set (thesis §4.3, §5.5).

Data: generated and pre-processed (Farnebäck flow, 9-pixel window) into the cache on first use; only motion separates
the classes, so the RGB stream stays near chance and the flow stream carries the result.
Run:      python launch.py --config=configs/synthetic_cbam.py --workdir=runs/synthetic_cbam
Smoke:    python launch.py --config=configs/synthetic_cbam.py:smoke --workdir=/tmp/synthetic_cbam
Args:     smoke, split=N, stream=rgb|flow|two_stream, temporal=, fusion=, backbone=, store=, steps=, ...
          (see attn_har/config/video.py; the recipe: configs/_synthetic.py)
Default:  `python launch.py` (no --config) runs this file into <cache>/runs/synthetic_cbam.
Expected: 60 test videos (10 classes, chance 0.10), seeds 0 / 1 / 2: test top-1 two-stream 0.717 / 0.767 / 0.667
          (mean 0.72 ± 0.05 sd; top-5 0.99), its flow stream alone 0.73 ± 0.03, its RGB stream alone 0.09 ± 0.03
          (XLA's CPU results differ between processor types and code versions: before the train step was compiled
          as two programs the seeds gave 0.633 / 0.700 / 0.750, before the 1x1 convolutions ran as matrix products
          0.600 / 0.817 / 0.650, before frames were folded into the batch 0.600 / 0.733 / 0.683, and seed 0 0.800
          in an earlier measurement).
Runtime:  2 min 56 s to 3 min 52 s wall with empty data and compilation caches (first step after 33.5-45.7 s, 800
          steps); with the caches warm 2 min 18 s (first step after 6.8 s); hardware: 2 CPU cores (AMD EPYC), no
          GPU, idle.
"""

from _synthetic import synthetic_config


def get_config(arg=None):
  return synthetic_config("cbam", arg)
