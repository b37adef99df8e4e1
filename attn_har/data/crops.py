"""Evaluation crops of the test protocol (Simonyan & Zisserman 2014, §6): 1, 3 or 10 spatial views per frame.

  crops=1    the largest centred square (`transforms.FixedCrop`).
  crops=3    the left / centre / right (top / centre / bottom) largest squares (`transforms.FixedCrop`).
  crops=10   a square of side `fraction` x the short side at the four corners and the centre (views 0-4: top-left,
             top-right, bottom-left, bottom-right, centre), and the same five flipped horizontally (views 5-9).
             S&Z cut 224 px from 256 px frames: fraction 0.875.

The crop of an element is `element['view'] % crops` (`pipeline.make_eval_loader` numbers a clip's views). A
10-crop view only marks its flip ('crop_flip'): the flip itself (`FlipMarked`) runs after `transforms.ToFloat`,
where the flow is in signed pixels and its u channels (even indices) can be negated; v channels are kept.
"""

import dataclasses

import grain
import numpy as np

from attn_har.data import transforms

CROPS = (1, 3, 10)
CORNERS = ("top_left", "top_right", "bottom_left", "bottom_right", "centre")


def check_crops(crops: int, key: str = "crops") -> int:
  """`crops` when it is 1, 3 or 10; else ValueError naming `key`."""
  if crops not in CROPS:
    raise ValueError(f"{key} must be one of {CROPS} (centre; left/centre/right; 4 corners + centre, each also "
                     f"flipped), got {crops}")
  return int(crops)


def corner_box(h: int, w: int, side: int, corner: int):
  """(top, left) of a `side` square at corner `corner` (index into `CORNERS`) of an h x w frame."""
  return {0: (0, 0), 1: (0, w - side), 2: (h - side, 0), 3: (h - side, w - side),
          4: ((h - side) // 2, (w - side) // 2)}[corner]


@dataclasses.dataclass(frozen=True)
class TenCrop(grain.transforms.Map):
  """The corner / centre square of view `element['view'] % 10`; views 5-9 are marked for flipping ('crop_flip').

  Attributes:
    fraction: the square's side as a fraction of the frame's short side, in (0, 1].
  """
  fraction: float = 0.875

  def __post_init__(self):
    if not 0 < self.fraction <= 1:
      raise ValueError(f"the 10-crop side fraction (eval.crop_fraction) must lie in (0, 1], got {self.fraction}")

  def map(self, element):
    key = "rgb" if "rgb" in element else "flow"
    h, w = element[key].shape[1:3]
    side = max(1, int(round(self.fraction * min(h, w))))
    crop = int(element.get("view", 0)) % 10
    top, left = corner_box(h, w, side, crop % 5)
    out = dict(element)
    for k in transforms.FRAME_KEYS:
      if k in element:
        out[k] = element[k][:, top:top + side, left:left + side]
    out["crop_hw"] = np.asarray([side, side], np.int32)
    out["crop_flip"] = np.int32(crop >= 5)
    return out


@dataclasses.dataclass(frozen=True)
class FlipMarked(grain.transforms.Map):
  """Flips the elements `TenCrop` marked ('crop_flip' = 1): all frames, u channels of the flow negated."""

  def map(self, element):
    if int(element.get("crop_flip", 0)):
      return transforms.flip(element)
    out = dict(element)
    out["flipped"] = np.int32(0)
    return out


def eval_crop_ops(crops: int, fraction: float = 0.875):
  """(crop op before `ToFloat`, flip op after `Resize` or None) of the `crops`-view protocol."""
  check_crops(crops)
  if crops == 10:
    return TenCrop(fraction), FlipMarked()
  return transforms.FixedCrop(crops), None
