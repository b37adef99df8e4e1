"""Image prototype: MobileNetV2, Learn-to-Pay-Attention (L2PA), on CIFAR-100 (thesis §6.1, Table 6.1).

Data: CIFAR-100 as image folders (root=DIR) or a TFDS dir (data.tfds_dir=DIR), see
attn_har/data/images.py; nothing is downloaded. 100 epochs at batch 64 as in the thesis.
Run:      python launch.py --config=configs/cifar100_l2pa.py:root=DIR --workdir=runs/cifar100_l2pa
Smoke:    python launch.py --config=configs/cifar100_l2pa.py:smoke,root=DIR --workdir=/tmp/cifar100_l2pa
Args:     smoke, root=DIR, backbone=, size=, steps=, batch=, lr=, ...
          (see attn_har/config/image.py)
Expected: not yet measured here; the thesis (TF/Keras) reports test top-1 0.5379.
Runtime:  not yet measured (hardware: -).
"""

from attn_har.config.image import image_config


def get_config(arg=None):
  return image_config("cifar100", "l2pa", arg, image_size=224, num_steps=78200)
