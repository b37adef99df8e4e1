"""Image prototype: MobileNetV2, residual attention, on Imagenette (thesis §6.1, Table 6.1).

Data: Imagenette as image folders (root=DIR) or a TFDS dir (data.tfds_dir=DIR), see
attn_har/data/images.py; nothing is downloaded. 100 epochs at batch 64 as in the thesis.
Run:      python launch.py --config=configs/imagenette_residual.py:root=DIR --workdir=runs/imagenette_residual
Smoke:    python launch.py --config=configs/imagenette_residual.py:smoke,root=DIR --workdir=/tmp/imagenette_residual
Args:     smoke, root=DIR, backbone=, size=, steps=, batch=, lr=, ...
          (see attn_har/config/image.py)
Expected: not yet measured here; the thesis (TF/Keras) reports test top-1 0.8504.
Runtime:  not yet measured (hardware: -).
"""

from attn_har.config.image import image_config


def get_config(arg=None):
  return image_config("imagenette", "residual", arg, image_size=224, num_steps=14800)
