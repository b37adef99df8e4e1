"""`ClipOptions`: how a stored clip becomes model inputs, shared by training, evaluation and analysis.

  opts = ClipOptions.from_config(config.data)              # a run's options
  opts = opts.for_store(store.manifest, ('rgb', 'flow'))   # None fields take the store's values

`attn_har.data.pipeline.operations(opts, train=...)` turns them into the Grain op list; `make_loader` and
`make_eval_loader` take them next to their loader-level arguments (store, subset, batch size, seed, ...).
"""

import dataclasses
from typing import Any, Mapping, Optional, Sequence, Tuple, Union

from attn_har.data import quantize, stacking, store

_PAIRING_WORDS = {"video_frames": "flow between consecutive video frames",
                  "stored_frames": "flow between the stored, sampled frames"}


@dataclasses.dataclass(frozen=True)
class ClipOptions:
  """Frame sampling, flow stacking and augmentation of one clip.

  Attributes:
    num_frames: T, start frames sampled per item (TSN segments: random in train, centres otherwise).
    flow_length: L, fields per flow stack; None = the store's (0 when the flow stream is not read).
    stacking: 'consecutive' | 'anchored'; None = the store's.
    pairing: 'video_frames' | 'stored_frames' (`attn_har.data.stacking.PAIRINGS`); None = the store's. A store
      made with another pairing is refused with the command that rebuilds it.
    bidirectional: also read backward fields (4L channels; the store must hold them).
    image_size: output S or (H, W).
    scale: RandomCrop area range (train only).
    flip_prob: horizontal flip probability (train only).
    clip_px: flow quantisation range; None = the store's.
    flow_scale: flow pixels are divided by it.
    rescale_flow: scale flow vectors with the crop-to-image_size resize.
    flow_mean_subtraction: subtract each flow field's spatial mean (`attn_har.data.flow_mean`).
  """
  num_frames: int
  flow_length: Optional[int] = None
  stacking: Optional[str] = None
  bidirectional: bool = False
  image_size: Union[int, Tuple[int, int]] = 112
  scale: Tuple[float, float] = (0.5, 1.0)
  flip_prob: float = 0.5
  clip_px: Optional[float] = None
  flow_scale: float = 1.0
  rescale_flow: bool = True
  pairing: Optional[str] = None
  flow_mean_subtraction: bool = False

  @classmethod
  def from_config(cls, c: Any, **overrides) -> "ClipOptions":
    """The options of the `data` config section `c` (num_frames, flow_length, stacking, pairing, image_size,
    crop_scale, flip_prob, flow_mean_subtraction); `overrides` replace fields."""
    opts = cls(num_frames=c.num_frames, flow_length=c.flow_length, stacking=c.stacking, image_size=c.image_size,
               scale=tuple(c.crop_scale), flip_prob=c.flip_prob, pairing=c.get("pairing"),
               flow_mean_subtraction=bool(c.get("flow_mean_subtraction", False)))
    return dataclasses.replace(opts, **overrides)

  def replace(self, **changes) -> "ClipOptions":
    """A copy with `changes` applied."""
    return dataclasses.replace(self, **changes)

  def for_store(self, manifest: Mapping[str, Any], streams: Sequence[str]) -> "ClipOptions":
    """A copy whose None fields take the values of a store (its manifest); flow_length is 0 without 'flow'.

    Raises:
      ValueError: flow_length < 1 while the flow stream is read; a store made with another pairing, or (pairing
        'video_frames') with fewer pairs per frame than flow_length (the message gives the rebuild command).
    """
    flow_meta = manifest.get("flow") or {}
    if "flow" not in streams:
      return self.replace(flow_length=0, stacking=self.stacking or "consecutive",
                          clip_px=self.clip_px or quantize.DEFAULT_CLIP_PX,
                          pairing=self.pairing or stacking.DEFAULT_PAIRING)
    flow_length = self.flow_length
    if flow_length is None:
      flow_length = int(flow_meta.get("length", 1))
    if flow_length < 1:
      raise ValueError(f"flow_length must be >= 1 when the flow stream is read, got {flow_length}")
    pairing = self.pairing or stacking.DEFAULT_PAIRING
    if "flow" in manifest:   # a store's manifest; one without a recorded pairing predates it
      stored = flow_meta.get("pairing", stacking.LEGACY_PAIRING)
      pairing = self.pairing or stored
      if pairing != stored:
        raise ValueError(
            f"the clip store holds flow with pairing {stored!r} ({_PAIRING_WORDS[stored]}), but pairing {pairing!r} "
            f"({_PAIRING_WORDS[pairing]}) was asked for (data.pairing); rebuild the store with: "
            f"{store.rebuild_command(manifest, pairing=pairing)}  (or set data.pairing={stored} to read it as it is)")
      length = flow_meta.get("length")
      if pairing == "video_frames" and length is not None and flow_length > int(length):
        raise ValueError(
            f"flow_length {flow_length} exceeds the {length} consecutive video-frame pairs the store keeps per frame; "
            f"use data.flow_length <= {length} or rebuild the store with: "
            f"{store.rebuild_command(manifest, length=flow_length)}")
    return self.replace(flow_length=flow_length, stacking=self.stacking or flow_meta.get("pairs", "consecutive"),
                        clip_px=float(self.clip_px or flow_meta.get("clip_px", quantize.DEFAULT_CLIP_PX)),
                        pairing=pairing)
