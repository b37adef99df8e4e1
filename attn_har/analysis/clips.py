"""Clips to analyse, pre-processed exactly as the run's evaluation pipeline does it.

  eval_clips(config, workdir, 'test', count=4)   # from the run's clip store (with masks when stored)
  clip_from_file(path, config)                   # a store clip (.npz) or a video file (flow computed here)

Each clip is a dict of numpy arrays without a batch axis: 'rgb' [T, H, W, 3] in [-1, 1], 'flow' [T, H, W, 2L]
(pixels), 'mask' [T, H, W] in {0, 1} when known (with flow: 'flow_mask', the union of the masks each stack
covers), 'rgb_next' [T, H, W, 3] when asked for (the video frame after each RGB frame), 'label' (int, -1 when
unknown) and 'name'.
"""

import pathlib
from typing import Dict, List, Optional

import ml_collections
import numpy as np

from attn_har.models.check import inputs_of

CLIP_KEYS = ("rgb", "flow", "mask", "flow_mask", "rgb_next")
VIDEO_SUFFIXES = (".avi", ".mp4", ".mkv", ".mov", ".webm", ".mpg", ".mpeg")


def streams_of(config: ml_collections.ConfigDict) -> tuple:
  """The input streams a video config reads."""
  s = config.model.stream
  if s == "image":
    raise ValueError("image models (model.stream='image') have no clips; pass images to analysis.maps instead")
  return inputs_of(config.model)


def clip_options(config: ml_collections.ConfigDict, num_frames: Optional[int] = None):
  """The run's `ClipOptions` (`config.data`), with `num_frames` frames per clip when given."""
  from attn_har.data.clip_options import ClipOptions  # pylint: disable=import-outside-toplevel
  return ClipOptions.from_config(config.data, num_frames=num_frames or config.data.num_frames)


def run_store(config: ml_collections.ConfigDict, workdir) -> pathlib.Path:
  """The clip store a run evaluated on: its split view when it made one, else the config's store.

  A missing synthetic store is regenerated (deterministically, the same bytes); a missing real store raises.
  """
  from attn_har.data import prepare  # pylint: disable=import-outside-toplevel
  view = pathlib.Path(workdir) / prepare.VIEW_DIR
  if (view / "manifest.json").is_file():
    return view
  return prepare.prepare_store(config, log=lambda *_: None)


def eval_clips(config: ml_collections.ConfigDict, workdir, subset: str = "test", count: Optional[int] = None,
               num_frames: Optional[int] = None, next_rgb: bool = False) -> List[Dict]:
  """The first `count` clips of a subset of the run's store, through the evaluation pipeline (centre crop).

  Args:
    config: the run's config.
    workdir: the run directory (for its split view).
    subset: 'train', 'val' or 'test'.
    count: how many clips (default all).
    num_frames: frames per clip (default `config.data.num_frames`; the models are per-frame, any T works).
    next_rgb: also give 'rgb_next' (needs a store that keeps every frame, as the synthetic one does).
  """
  from attn_har.data import pipeline  # pylint: disable=import-outside-toplevel
  from attn_har.data.store import ClipStore  # pylint: disable=import-outside-toplevel
  store = run_store(config, workdir)
  ids = ClipStore(store).ids(config.data.split, subset)
  c = config.data
  it = pipeline.make_eval_loader(store, clip_options(config, num_frames), split=c.split, subset=subset,
                                 batch_size=1, views=1, crops=1, workers=0, streams=streams_of(config),
                                 with_mask=None, prefetch=0, to_device=False, next_rgb=next_rgb)
  out = []
  for batch in it:
    if count is not None and len(out) >= count:
      break
    if not int(batch["valid"][0]):
      continue
    clip = {k: np.asarray(batch[k][0]) for k in CLIP_KEYS if k in batch}
    clip["label"] = int(batch["label"][0])
    clip["name"] = ids[int(batch["index"][0])]
    out.append(clip)
  return out


def _raw_from_video(path: pathlib.Path, config: ml_collections.ConfigDict) -> Dict:
  """A video file as the run's store would hold it: the sampled frames (`stacking.store_frames`) and the flow of
  the video-frame pairs their stacks need (`stacking.required_video_pairs`), with `config.data`'s pairing."""
  from attn_har.data import decode, flow, quantize, stacking  # pylint: disable=import-outside-toplevel
  from attn_har.data.datasets import DATASETS, pairing_of  # pylint: disable=import-outside-toplevel
  from attn_har.registry import lookup  # pylint: disable=import-outside-toplevel
  c = config.data
  video = decode.read_frames(str(path))
  pairing = pairing_of(c)
  count = lookup(DATASETS, c.dataset, "data.dataset").store_frames(c)
  rows = stacking.store_frames(len(video), count, c.flow_length, pairing)
  pairs = stacking.required_video_pairs(rows, len(video), c.flow_length, c.stacking, pairing, False)
  fields = flow.compute_pairs(flow.make_solver(c.flow_method), video, pairs)
  return {"rgb": video[rows], "flow": quantize.quantize(fields), "pairs": pairs,
          "frame_indices": rows.astype(np.int32), "clip_px": quantize.DEFAULT_CLIP_PX}


def clip_from_file(path, config: ml_collections.ConfigDict, num_frames: Optional[int] = None,
                   label: int = -1) -> Dict:
  """Loads one clip from a file and pre-processes it like the run's evaluation pipeline.

  Args:
    path: a clip-store file (.npz with 'rgb', 'flow', 'pairs', optional 'mask') or a video file (frames are
      sampled uniformly as the store would, and the flow pairs computed with `config.data.flow_method`).
    config: the run's config.
    num_frames: frames per clip (default `config.data.num_frames`).
    label: the class to record (-1 = unknown).
  """
  from attn_har.data import pipeline  # pylint: disable=import-outside-toplevel
  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"clip file {path} not found")
  if path.suffix == ".npz":
    with np.load(path) as z:
      raw = {k: z[k] for k in z.files}
    missing = [k for k in ("rgb", "flow", "pairs") if k not in raw]
    if missing:
      raise KeyError(f"{path} lacks arrays {missing} (a clip-store .npz has rgb, flow, pairs, optional mask)")
    raw["clip_px"] = None
  elif path.suffix.lower() in VIDEO_SUFFIXES:
    raw = _raw_from_video(path, config)
  else:
    raise ValueError(f"unsupported clip file {path}: use a clip-store .npz or a video ({', '.join(VIDEO_SUFFIXES)})")
  from attn_har.data import quantize  # pylint: disable=import-outside-toplevel
  clip_px = raw.pop("clip_px") or quantize.DEFAULT_CLIP_PX
  element = dict(raw, frames=int(raw["rgb"].shape[0]), label=label, id=str(path))
  streams = streams_of(config)
  if "flow" not in streams:
    element = {k: v for k, v in element.items() if k not in ("flow", "pairs")}
  opts = clip_options(config, num_frames).replace(clip_px=clip_px).for_store({}, streams)  # no flow: L = 0
  ops = pipeline.operations(opts, train=False)
  rng = np.random.default_rng(0)
  for op in ops:
    element = op.random_map(element, rng) if hasattr(op, "random_map") else op.map(element)
  clip = {k: np.asarray(element[k]) for k in CLIP_KEYS if k in element}
  clip["label"], clip["name"] = int(label), path.name
  return clip
