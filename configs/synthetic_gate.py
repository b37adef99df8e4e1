"""Two-stream MobileNetV2, attention-gated heads, on the built-in synthetic action set (thesis §4.3, §5.5).

Data: generated and pre-processed (Farnebäck flow, 9-pixel window) into the cache on first use; only motion separates
the classes, so the RGB stream stays near chance and the flow stream carries the result.
Run:      python launch.py --config=configs/synthetic_gate.py --workdir=runs/synthetic_gate
Smoke:    python launch.py --config=configs/synthetic_gate.py:smoke --workdir=/tmp/synthetic_gate
Args:     smoke, split=N, stream=rgb|flow|two_stream, temporal=, fusion=, backbone=, store=, steps=, ...
          (see attn_har/config/video.py; the recipe: configs/_synthetic.py)
Expected: seed 0, 60 test videos (10 classes, chance 0.10): test top-1 two-stream 0.85 (top-5 0.97), its
          flow stream alone 0.85, its RGB stream alone 0.15.
Runtime:  5 min 44 s wall with the data cached (800 steps), hardware: 2 CPU cores, no GPU.
"""

from _synthetic import synthetic_config


def get_config(arg=None):
  return synthetic_config("gate", arg)
