"""Video and image data: official splits, decoding, frame sampling, optical flow, the pre-processed clip store
and the Grain pipelines.

Modules (import them directly; nothing is imported here):
  splits      official UCF101 / HMDB51 split readers.
  datasets    `DATASETS`, the registry of video dataset sources ('ucf101', 'hmdb51', 'folder', 'synthetic').
  decode      robust video decoding (`read_frames`, `read_sampled_frames`, `VideoDecodeError`).
  sampling    uniform and segment-based (TSN) frame index sampling.
  flow        optical flow (`FLOW_METHODS`: TV-L1, DIS, Farneback) over frame pairs.
  stacking    which flow pairs a stacking needs and how stacks are built from stored pairs.
  quantize    uint8 flow quantisation with exact dequantisation.
  preprocess  the resumable, parallel pre-processing CLI (`python -m attn_har.data.preprocess`).
"""
