"""Video and image data: official splits, decoding, frame sampling, optical flow, the pre-processed clip store
and the Grain pipelines.

Modules (import them directly; nothing is imported here):
  splits        official UCF101 / HMDB51 split readers.
  datasets      `DATASETS`, the registry of video dataset sources ('ucf101', 'hmdb51', 'folder', 'synthetic').
  synthetic     the built-in synthetic action dataset (`SyntheticActions`).
  decode        robust video decoding (`read_frames`, `read_sampled_frames`, `VideoDecodeError`).
  sampling      uniform and segment-based (TSN) frame index sampling.
  flow          optical flow (`FLOW_METHODS`: TV-L1, DIS, Farneback) over frame pairs.
  stacking      which flow pairs a stacking needs and how stacks are built from stored pairs.
  quantize      uint8 flow quantisation with exact dequantisation.
  store         the clip store: one .npz per clip plus a manifest (`ClipStore`, the read side).
  store_write   writing clips, their entries and the manifest (atomic, resumable).
  clip_pool     the per-clip pre-processing job and the pool of processes that runs it.
  store_build   `build_store`: pre-processing as a function (resumable, checksums verified, damaged clips redone).
  prepare       a run's store (`prepare_store`; built when the dataset is generated), the validation hold-out and
                a run's loaders (`RunData`).
  preprocess    the pre-processing CLI (`python -m attn_har.data.preprocess`): arguments over `build_store`.
  clip_options  `ClipOptions`: frame sampling, flow stacking and augmentation of one clip.
  pipeline      the Grain video pipelines (`operations`, `make_loader`, `make_eval_loader`).
  images        the image datasets and their loader.
  check         the checks of the `data` config section.
"""
