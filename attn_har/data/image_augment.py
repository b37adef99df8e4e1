"""Grain ops for the image prototypes: the thesis's Keras `ImageDataGenerator` augmentation, done right.

`RandomAffine` draws rotation U(+-20 deg), shear U(+-20 deg), zoom zx, zy ~ U(0.8, 1.2) independently (Keras's
zoom_range=0.2) and a horizontal flip, composes them with the crop-and-resize to the output size, and applies
ONE `cv2.warpAffine` per image (bilinear, border replicated like Keras's fill_mode='nearest'). The same matrix
with no augmentation is `CenterResize`: the largest centred square scaled to the output, so evaluation never
distorts the aspect ratio (the seed code's test-time resize did). `ChannelShift` adds one U(+-r) intensity
to all channels and clips to [0, 255] (Keras's channel_shift_range; 50 for CIFAR in the thesis).
Images are uint8 [H, W, 3] RGB until `Normalize` maps them to float32 in [-1, 1] (resnet_v2 preprocessing).
"""

import dataclasses
import math
from typing import Tuple

import cv2
import grain
import numpy as np


def _base_matrix(h: int, w: int, size: Tuple[int, int]) -> np.ndarray:
  """3x3 matrix taking the largest centred square of an h x w image onto an output of `size` (h, w)."""
  side = min(h, w)
  s = np.diag([size[1] / side, size[0] / side, 1.0])
  t = np.eye(3)
  t[:2, 2] = (-(w - side) / 2, -(h - side) / 2)
  return s @ t


def affine_matrix(h: int, w: int, size: Tuple[int, int], rotation_deg: float = 0.0, shear_deg: float = 0.0,
                  zoom: Tuple[float, float] = (1.0, 1.0), flip: bool = False) -> np.ndarray:
  """2x3 source->output matrix: augment about the output centre, after the centre-square resize.

  zoom > 1 magnifies (the output shows a smaller region); a flip mirrors the output horizontally.
  """
  c = np.eye(3)
  c[:2, 2] = (-(size[1] - 1) / 2, -(size[0] - 1) / 2)
  a = math.radians(rotation_deg)
  rot = np.asarray([[math.cos(a), math.sin(a), 0], [-math.sin(a), math.cos(a), 0], [0, 0, 1]])
  shear = np.asarray([[1, -math.sin(math.radians(shear_deg)), 0], [0, math.cos(math.radians(shear_deg)), 0],
                      [0, 0, 1]])
  scale = np.diag([zoom[0], zoom[1], 1.0])
  mirror = np.diag([-1.0 if flip else 1.0, 1.0, 1.0])
  m = np.linalg.inv(c) @ mirror @ rot @ shear @ scale @ c @ _base_matrix(h, w, size)
  return m[:2]


def warp(image: np.ndarray, matrix: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
  """One bilinear warp of an [H, W, C] image to `size` with replicated borders."""
  return cv2.warpAffine(image, matrix, (size[1], size[0]), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


@dataclasses.dataclass(frozen=True)
class RandomAffine(grain.transforms.RandomMap):
  """Rotation, shear, zoom and flip with the resize to `image_size`, one warp per image.

  Attributes:
    image_size: output (h, w).
    rotation: max |rotation| in degrees.
    shear: max |shear| in degrees.
    zoom: (min, max) zoom per axis, drawn independently for x and y.
    flip_prob: horizontal flip probability.
  """
  image_size: Tuple[int, int]
  rotation: float = 20.0
  shear: float = 20.0
  zoom: Tuple[float, float] = (0.8, 1.2)
  flip_prob: float = 0.5

  def random_map(self, element, rng: np.random.Generator):
    h, w = element["image"].shape[:2]
    m = affine_matrix(h, w, self.image_size, rng.uniform(-self.rotation, self.rotation),
                      rng.uniform(-self.shear, self.shear), tuple(rng.uniform(*self.zoom, 2)),
                      bool(rng.random() < self.flip_prob))
    return {**element, "image": warp(element["image"], m, self.image_size)}


@dataclasses.dataclass(frozen=True)
class CenterResize(grain.transforms.Map):
  """The largest centred square resized to `image_size` (the RandomAffine matrix without augmentation)."""
  image_size: Tuple[int, int]

  def map(self, element):
    h, w = element["image"].shape[:2]
    return {**element, "image": warp(element["image"], affine_matrix(h, w, self.image_size), self.image_size)}


@dataclasses.dataclass(frozen=True)
class ChannelShift(grain.transforms.RandomMap):
  """Adds one intensity ~ U(-shift, shift) to every channel, clipped to [0, 255] (uint8 in and out)."""
  shift: float = 50.0

  def random_map(self, element, rng: np.random.Generator):
    delta = rng.uniform(-self.shift, self.shift)
    image = np.clip(element["image"].astype(np.float32) + np.float32(delta), 0, 255)
    return {**element, "image": np.rint(image).astype(np.uint8)}


@dataclasses.dataclass(frozen=True)
class Normalize(grain.transforms.Map):
  """uint8 image -> float32 x / 127.5 - 1; label -> int32."""

  def map(self, element):
    return {**element, "image": element["image"].astype(np.float32) * np.float32(1 / 127.5) - np.float32(1.0),
            "label": np.int32(element["label"])}
