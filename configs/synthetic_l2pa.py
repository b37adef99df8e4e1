"""Two-stream MobileNetV2, Learn-to-Pay-Attention (L2PA), on the built-in synthetic action set (thesis §4.3, §5.5).

Data: generated and pre-processed (Farnebäck flow, 9-pixel window) into the cache on first use; only motion separates
the classes, so the RGB stream stays near chance and the flow stream carries the result.
Run:      python launch.py --config=configs/synthetic_l2pa.py --workdir=runs/synthetic_l2pa
Smoke:    python launch.py --config=configs/synthetic_l2pa.py:smoke --workdir=/tmp/synthetic_l2pa
Args:     smoke, split=N, stream=rgb|flow|two_stream, temporal=, fusion=, backbone=, store=, steps=, ...
          (see attn_har/config/video.py; the recipe: configs/_synthetic.py)
Expected: seed 0, 60 test videos (10 classes, chance 0.10): test top-1 two-stream 0.92 (top-5 1.00), its
          flow stream alone 0.92, its RGB stream alone 0.08.
Runtime:  6 min 58 s wall with the data cached (800 steps), hardware: 2 CPU cores, no GPU.
"""

from _synthetic import synthetic_config


def get_config(arg=None):
  return synthetic_config("l2pa", arg)
