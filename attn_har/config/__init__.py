"""Experiment configuration: ml-collections config files `configs/<name>.py` with `get_config(arg=None)`.

Modules (import them directly; nothing is imported here):
  args      parsing of config arguments ('smoke,split=2,stream=rgb,backbone=resnet50_v2') and typed overrides.
  loader    `load_config('configs/x.py:args')`: import, call get_config, lock (names are checked by the packages
            that own them: `attn_har.train.check.check_config`).
  base      `base_config()`: the fields every config has.
  video     the shared base of the video configs (ucf101, hmdb51, synthetic).
  image     the shared base of the image-prototype configs (cifar100, imagenette).
"""
