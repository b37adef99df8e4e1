"""Two-stream MobileNetV2, no attention, on the built-in synthetic action set (thesis §4.3, §5.5).

Data: generated and pre-processed (Farnebäck flow, 9-pixel window) into the cache on first use; only motion separates
the classes, so the RGB stream stays near chance and the flow stream carries the result.
Run:      python launch.py --config=configs/synthetic_baseline.py --workdir=runs/synthetic_baseline
Smoke:    python launch.py --config=configs/synthetic_baseline.py:smoke --workdir=/tmp/synthetic_baseline
Args:     smoke, split=N, stream=rgb|flow|two_stream, temporal=, fusion=, backbone=, store=, steps=, ...
          (see attn_har/config/video.py; the recipe: configs/_synthetic.py)
Expected: not yet measured.
Runtime:  not yet measured (hardware: -).
"""

from _synthetic import synthetic_config


def get_config(arg=None):
  return synthetic_config("none", arg)
