"""Two-stream MobileNetV2, attention-gated grid heads, on the built-in synthetic action set (thesis §4.3, §5.5).

Data: generated and pre-processed (Farnebäck flow, 9-pixel window) into the cache on first use; only motion separates
the classes, so the RGB stream stays near chance and the flow stream carries the result.
Run:      python launch.py --config=configs/synthetic_gate_grid.py --workdir=runs/synthetic_gate_grid
Smoke:    python launch.py --config=configs/synthetic_gate_grid.py:smoke --workdir=/tmp/synthetic_gate_grid
Args:     smoke, split=N, stream=rgb|flow|two_stream, temporal=, fusion=, backbone=, store=, steps=, ...
          (see attn_har/config/video.py; the recipe: configs/_synthetic.py)
Expected: seed 0, 60 test videos (10 classes, chance 0.10): test top-1 two-stream 0.82 (top-5 1.00), its
          flow stream alone 0.82, its RGB stream alone 0.03.
Runtime:  7 min 57 s wall with the data cached (800 steps) while a test run shared the CPU, hardware: 2 CPU
          cores, no GPU.
"""

from _synthetic import synthetic_config


def get_config(arg=None):
  return synthetic_config("gate_grid", arg)
