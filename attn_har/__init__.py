"""attn_har: visual attention in human action recognition (JAX/Flax).

Sub-packages: `backbones`, `attention`, `models`, `inspect`, `data`, `video`, `train`, `analysis`.
Nothing is imported here, so `import attn_har` has no side effects.
"""

__version__ = "0.1.0"
