"""A built-in synthetic action dataset whose classes are defined by motion alone.

Each clip shows one textured "actor" polygon doing the class's motion (moving left, rotating, growing, ...)
over a cluttered textured background, with `num_distractors` other polygons that drift and turn slowly. The
actor and the distractors draw shape, colour and texture from one distribution that does not depend on the
class, and translation paths are centred on a uniformly drawn mid point, so one frame of a 'move_left' clip
and one of a 'move_right' clip are identically distributed: only motion tells the classes apart. Every frame
carries the actor's ground-truth mask (drawn on top, so never occluded).

Clip `i` has label `i % num_classes` and is generated from `np.random.default_rng([seed, i])` alone, so any
clip can be produced independently, in any order, in any process, with the same bytes.

  ds = SyntheticActions()              # 10 classes x 30 clips, 64x64, 16 frames
  c = ds.clip(3)                        # {'rgb': uint8 [T, H, W, 3], 'mask': uint8 [T, H, W] in {0, 1},
                                        #  'label': 3, 'name': 'move_down/clip_000'}
  ds.split_of(3)                        # 'train' | 'val' | 'test', stratified 60/20/20 per class

Two scenes (`scene`):
  'motion'  the set above: the actor is the main moving thing, so the flow's own magnitude finds it.
  'marked'  motion alone does not find the actor. The actor is marked by its appearance: a cross-shaped sprite with a
            striped two-colour texture, while the `num_distractors` distractors are irregular polygons with smooth
            colour texture. Every distractor performs a motion of a class drawn at random, with the actor's own path
            generator (same speed statistics), and a camera pan moves the whole scene (background, actor and
            distractors) by up to `PAN_SPEED * size` pixels per frame. The flow-magnitude map therefore points
            at a distractor at least as often as at the actor: on clips 0-119 at 96x96 (Farnebäck flow with a
            9-pixel window over consecutive frames, stacks of L = 5 starting at frames 2, 5 and 8, a stack's truth
            the union of its frames' masks) its maximum lies on the actor in 0.16 of the stacks, on one of the two
            distractors in 0.46 (0.23 each) and on the panning background in 0.38; in the 'motion' scene it lies on
            the actor in 0.61 (`tests/test_synthetic_marked.py`). One frame shows where the actor is, not what it
            does.
"""

import math

import cv2
import numpy as np

# Motions in class order; `num_classes` takes the first n. Each is (kind, parameter).
MOTIONS = (
    ("move_left", ("translate", (-1.0, 0.0))),
    ("move_right", ("translate", (1.0, 0.0))),
    ("move_up", ("translate", (0.0, -1.0))),
    ("move_down", ("translate", (0.0, 1.0))),
    ("rotate_cw", ("rotate", -1.0)),
    ("rotate_ccw", ("rotate", 1.0)),
    ("grow", ("scale", 1.0)),
    ("shrink", ("scale", -1.0)),
    ("oscillate", ("oscillate", (1.0, 0.0))),
    ("static", ("static", None)),
    ("move_up_left", ("translate", (-math.sqrt(0.5), -math.sqrt(0.5)))),
    ("move_up_right", ("translate", (math.sqrt(0.5), -math.sqrt(0.5)))),
    ("move_down_left", ("translate", (-math.sqrt(0.5), math.sqrt(0.5)))),
    ("move_down_right", ("translate", (math.sqrt(0.5), math.sqrt(0.5)))),
    ("oscillate_vertical", ("oscillate", (0.0, 1.0))),
    ("circle", ("circle", None)),
)
SPLIT_FRACTIONS = (("train", 0.6), ("val", 0.2), ("test", 0.2))
RADIUS = 0.17        # object radius at scale 1, as a fraction of the frame size
SCALE_RANGE = (0.5, 1.4)   # start/end scale of grow (reversed for shrink)
ROTATION_SPEED = (12.0, 20.0)  # degrees per frame of rotate_cw / rotate_ccw
PAN_SPEED = 0.015    # 'marked' scene: largest camera pan per frame, as a fraction of the frame size
SCENES = ("motion", "marked")
# Bumped whenever the clips a (seed, index) pair produces change; part of the default store name.
GENERATOR_VERSION = 2


def _sprite(rng: np.random.Generator, radius: float):
  """A textured irregular polygon with its area centroid at the canvas centre.

  Returns:
    (rgb float32 [S, S, 3], alpha float32 [S, S], extent): extent bounds the distance of any polygon point
    from the centre, so rotations and scalings about the centre stay within extent * scale.
  """
  n = int(rng.integers(5, 9))
  angles = (np.arange(n) + rng.uniform(-0.35, 0.35, n)) * (2 * math.pi / n) + rng.uniform(0, 2 * math.pi)
  radii = radius * rng.uniform(0.55, 1.0, n)
  pts = np.stack([radii * np.cos(angles), radii * np.sin(angles)], -1)
  x, y = pts[:, 0], pts[:, 1]
  cross = x * np.roll(y, -1) - np.roll(x, -1) * y
  centroid = np.stack([((x + np.roll(x, -1)) * cross).sum(), ((y + np.roll(y, -1)) * cross).sum()]) / (
      3 * cross.sum())
  pts = pts - centroid
  extent = float(np.sqrt((pts ** 2).sum(1)).max()) + 1.0
  half = int(math.ceil(extent)) + 1
  s = 2 * half + 1
  pts = pts + half
  alpha = np.zeros((s, s), np.uint8)
  cv2.fillPoly(alpha, [np.round(pts * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
  # Base colour plus smooth colour noise at a few-pixel scale: texture inside the polygon makes its rotation and
  # scaling visible to optical flow (a flat interior only shows motion at the outline).
  noise = cv2.resize(rng.uniform(-45, 45, (6, 6, 3)).astype(np.float32), (s, s), interpolation=cv2.INTER_CUBIC)
  rgb = np.clip(rng.integers(30, 226, 3) + noise, 0, 255).astype(np.uint8)
  for _ in range(int(rng.integers(3, 7))):
    color = tuple(int(c) for c in rng.integers(0, 256, 3))
    if rng.random() < 0.5:
      p0, p1 = rng.integers(0, s, 2), rng.integers(0, s, 2)
      cv2.line(rgb, tuple(int(v) for v in p0), tuple(int(v) for v in p1), color, int(rng.integers(1, 4)))
    else:
      cv2.circle(rgb, tuple(int(v) for v in rng.integers(0, s, 2)), int(rng.integers(1, max(2, s // 4))), color, -1)
  return rgb.astype(np.float32), alpha.astype(np.float32) / 255.0, extent


def _marked_sprite(rng: np.random.Generator, radius: float):
  """The 'marked' actor: a cross with a striped two-colour texture, centred on the canvas (as `_sprite`)."""
  arm, half_width = radius * rng.uniform(0.85, 1.0), radius * rng.uniform(0.3, 0.4)
  quarter = np.array([(half_width, arm), (half_width, half_width), (arm, half_width)])
  turn = np.array([[0.0, -1.0], [1.0, 0.0]])   # +90 degrees: (x, y) -> (-y, x)
  pts = np.concatenate([quarter @ np.linalg.matrix_power(turn, k).T for k in range(4)])
  extent = float(np.sqrt((pts ** 2).sum(1)).max()) + 1.0
  half = int(math.ceil(extent)) + 1
  s = 2 * half + 1
  alpha = np.zeros((s, s), np.uint8)
  cv2.fillPoly(alpha, [np.round((pts + half) * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
  dark, light = rng.integers(0, 70, 3), rng.integers(185, 256, 3)
  theta, period = rng.uniform(0, math.pi), rng.uniform(3.0, 5.0)
  yy, xx = np.mgrid[:s, :s].astype(np.float64)
  stripes = (np.floor((xx * math.cos(theta) + yy * math.sin(theta)) / period) % 2)[..., None]
  rgb = dark * (1 - stripes) + light * stripes
  return rgb.astype(np.float32), alpha.astype(np.float32) / 255.0, extent


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
  """A cluttered texture: smooth colour noise plus random rectangles, discs and lines, float32 [H, W, 3]."""
  grid = rng.uniform(40, 215, (6, 6, 3)).astype(np.float32)
  bg = cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)
  for _ in range(int(rng.integers(12, 24))):
    color = tuple(float(c) for c in rng.uniform(20, 235, 3))
    x0, y0 = (int(v) for v in rng.integers(0, size, 2))
    extent = int(rng.integers(2, max(3, size // 6)))
    kind = rng.integers(0, 3)
    if kind == 0:
      cv2.rectangle(bg, (x0, y0), (x0 + extent, y0 + int(rng.integers(2, extent + 2))), color, -1)
    elif kind == 1:
      cv2.circle(bg, (x0, y0), extent // 2 + 1, color, -1)
    else:
      x1, y1 = (int(v) for v in rng.integers(0, size, 2))
      cv2.line(bg, (x0, y0), (x1, y1), color, 1)
  return cv2.GaussianBlur(bg, (3, 3), 0.7)


def _warp(sprite, alpha, center, angle_deg: float, scale: float, size: int):
  """Places a sprite rotated by `angle_deg` (counter-clockwise on screen) and scaled, centred at `center`."""
  c = (alpha.shape[1] - 1) / 2.0
  m = cv2.getRotationMatrix2D((c, c), angle_deg, scale)
  m[:, 2] += (center[0] - c, center[1] - c)
  rgb = cv2.warpAffine(sprite, m, (size, size), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
  a = cv2.warpAffine(alpha, m, (size, size), flags=cv2.INTER_LINEAR, borderValue=0)
  return rgb, a


class SyntheticActions:
  """Deterministic motion-defined action clips with actor masks.

  Attributes:
    num_classes: number of classes (first entries of `MOTIONS`, at most 16).
    clips_per_class: clips of each class; len = num_classes * clips_per_class.
    size: frame height and width in pixels.
    num_frames: frames per clip.
    seed: dataset seed; clip i uses np.random.default_rng([seed, i]).
    num_distractors: slowly drifting polygons with the actor's appearance statistics.
    noise: std of per-frame Gaussian pixel noise (0-255 scale).
    scene: 'motion' (the actor is the main moving thing) or 'marked' (see the module docstring).
    class_names: names of the classes, index = label.
  """

  def __init__(self, num_classes: int = 10, clips_per_class: int = 30, size: int = 64, num_frames: int = 16,
               seed: int = 0, num_distractors: int = 2, noise: float = 3.0, scene: str = "motion"):
    if scene not in SCENES:
      raise ValueError(f"scene must be one of {SCENES}, got {scene!r}")
    if not 1 <= num_classes <= len(MOTIONS):
      raise ValueError(f"num_classes must be in [1, {len(MOTIONS)}], got {num_classes}")
    if clips_per_class < 1 or size < 16 or num_frames < 2:
      raise ValueError(f"need clips_per_class >= 1, size >= 16, num_frames >= 2; got {clips_per_class}, "
                       f"{size}, {num_frames}")
    self.num_classes, self.clips_per_class = num_classes, clips_per_class
    self.size, self.num_frames, self.seed = size, num_frames, seed
    self.num_distractors, self.noise, self.scene = num_distractors, noise, scene
    self.class_names = [name for name, _ in MOTIONS[:num_classes]]

  def __len__(self) -> int:
    return self.num_classes * self.clips_per_class

  def _check(self, i: int) -> int:
    if not 0 <= i < len(self):
      raise IndexError(f"clip index {i} out of range [0, {len(self)})")
    return int(i)

  def label_of(self, i: int) -> int:
    """Class of clip i (i % num_classes)."""
    return self._check(i) % self.num_classes

  def name_of(self, i: int) -> str:
    """Clip id '<class>/clip_<k>' of clip i, k = its rank within the class."""
    return f"{self.class_names[self.label_of(i)]}/clip_{i // self.num_classes:03d}"

  def split_of(self, i: int) -> str:
    """'train', 'val' or 'test': per class the first 60 % of clips train, the next 20 % val, the rest test."""
    k = self._check(i) // self.num_classes
    n = self.clips_per_class
    n_val = round(n * SPLIT_FRACTIONS[1][1])
    n_test = round(n * SPLIT_FRACTIONS[2][1])
    while n - n_val - n_test < 1:  # keep at least one training clip per class
      if n_val >= n_test and n_val:
        n_val -= 1
      else:
        n_test -= 1
    if k < n - n_val - n_test:
      return "train"
    return "val" if k < n - n_test else "test"

  def indices(self, subset: str) -> list:
    """All clip indices of a subset ('train', 'val' or 'test')."""
    valid = [s for s, _ in SPLIT_FRACTIONS]
    if subset not in valid:
      raise KeyError(f"unknown subset {subset!r}; valid subsets: {valid}")
    return [i for i in range(len(self)) if self.split_of(i) == subset]

  def _actor_path(self, rng: np.random.Generator, label: int, extent: float, shift: np.ndarray | None = None):
    """Per-frame (x, y, angle_deg, scale) of the actor, kept fully inside the frame (extent: sprite radius).

    shift: optional camera displacement [T, 2] added to the path (the whole scene's pan).
    """
    kind, param = MOTIONS[label][1]
    t = np.arange(self.num_frames, dtype=np.float64)
    tau = t - (self.num_frames - 1) / 2.0
    size = self.size
    angle = np.full_like(t, rng.uniform(0, 360))
    scale = np.full_like(t, rng.uniform(0.8, 1.0))
    margin = extent * scale[0] + 1.0
    off = np.zeros((self.num_frames, 2))
    if kind == "translate":
      dist = rng.uniform(0.3, 0.45) * size
      off = np.outer(tau * dist / (self.num_frames - 1), param)
    elif kind == "rotate":
      angle = angle[0] + param * rng.uniform(*ROTATION_SPEED) * t
    elif kind == "scale":
      lo, hi = (SCALE_RANGE if param > 0 else SCALE_RANGE[::-1])
      scale = lo * (hi / lo) ** (t / (self.num_frames - 1))
      margin = extent * max(SCALE_RANGE) + 1.0
    elif kind == "oscillate":
      amp = rng.uniform(0.12, 0.18) * size
      period = rng.uniform(0.45, 0.65) * self.num_frames
      off = np.outer(amp * np.sin(2 * math.pi * tau / period + rng.uniform(0, 2 * math.pi)), param)
    elif kind == "circle":
      amp = rng.uniform(0.12, 0.18) * size
      sign = 1.0 if rng.random() < 0.5 else -1.0
      phase = 2 * math.pi * sign * t / self.num_frames + rng.uniform(0, 2 * math.pi)
      off = amp * np.stack([np.cos(phase), np.sin(phase)], -1)
    if shift is not None:
      off = off + shift
    lo = margin - off.min(0)
    hi = size - 1 - margin - off.max(0)
    mid = rng.uniform(lo, np.maximum(hi, lo))
    xy = mid + off
    return xy, angle, scale

  def clip(self, i: int, distractor_masks: bool = False) -> dict:
    """Clip i: {'rgb': uint8 [T, H, W, 3], 'mask': uint8 [T, H, W] in {0, 1}, 'label': int, 'name': str}.

    distractor_masks: also return 'distractors': uint8 [T, H, W], k = the visible pixels of distractor k (1-based,
      later distractors on top, the actor over all), 0 = background or actor.
    """
    label = self.label_of(i)
    rng = np.random.default_rng([self.seed, i])
    size = self.size
    if self.scene == "marked":
      backgrounds, layers = self._marked_layers(rng, label)
    else:
      backgrounds, layers = self._motion_layers(rng, label)
    noise = rng.normal(0, self.noise, (self.num_frames, size, size, 3)).astype(np.float32)
    rgb = np.empty((self.num_frames, size, size, 3), np.uint8)
    mask = np.empty((self.num_frames, size, size), np.uint8)
    others = np.zeros((self.num_frames, size, size), np.uint8)
    for t in range(self.num_frames):
      frame = backgrounds(t)
      for k, ((spr, alp, _), xy, angle, scale) in enumerate(layers):
        srgb, sa = _warp(spr, alp, xy[t], angle[t], scale[t], size)
        frame = frame * (1 - sa[..., None]) + srgb * sa[..., None]
        if k < len(layers) - 1:
          others[t][sa >= 0.5] = k + 1
      rgb[t] = np.clip(frame + noise[t], 0, 255).round().astype(np.uint8)
      mask[t] = sa >= 0.5   # the actor is the last layer
      others[t][mask[t] > 0] = 0
    out = {"rgb": rgb, "mask": mask, "label": label, "name": self.name_of(i)}
    if distractor_masks:
      out["distractors"] = others
    return out

  def _motion_layers(self, rng: np.random.Generator, label: int):
    """'motion' scene: (background(t) -> float32 [H, W, 3], [(sprite, xy, angle, scale)] distractors then actor)."""
    size, r = self.size, RADIUS * self.size
    bg = _background(rng, size)
    actor = _sprite(rng, r)
    xy, angle, scale = self._actor_path(rng, label, actor[2])
    layers = []
    for _ in range(self.num_distractors):
      sprite = _sprite(rng, r)
      start = rng.uniform(0.1 * size, 0.9 * size, 2)
      drift = rng.uniform(-1, 1, 2) * 0.12 * size / self.num_frames  # at most ~1/3 of the slowest actor speed
      steps = np.cumsum(rng.normal(0, 0.25, (self.num_frames, 2)), 0)
      path = start + np.outer(np.arange(self.num_frames), drift) + steps
      turn = rng.uniform(-2.0, 2.0) * np.arange(self.num_frames) + rng.uniform(0, 360)
      layers.append((sprite, path, turn, np.full(self.num_frames, rng.uniform(0.8, 1.0))))
    return (lambda t: bg.copy()), layers + [(actor, xy, angle, scale)]

  def _marked_layers(self, rng: np.random.Generator, label: int):
    """'marked' scene: a panning background, distractors doing random classes' motions, the marked actor on top."""
    size, r = self.size, RADIUS * self.size
    tau = np.arange(self.num_frames) - (self.num_frames - 1) / 2.0
    heading = rng.uniform(0, 2 * math.pi)
    velocity = rng.uniform(0, PAN_SPEED * size) * np.array([math.cos(heading), math.sin(heading)])
    shift = np.outer(tau, velocity)                                 # [T, 2] camera displacement of the scene
    pad = int(math.ceil(np.abs(shift).max())) + 2
    canvas = _background(rng, size + 2 * pad)

    def background(t):
      m = np.float64([[1, 0, shift[t, 0] - pad], [0, 1, shift[t, 1] - pad]])
      return cv2.warpAffine(canvas, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)

    actor = _marked_sprite(rng, r)
    path = self._actor_path(rng, label, actor[2], shift)
    layers = []
    for _ in range(self.num_distractors):
      sprite = _sprite(rng, r)
      layers.append((sprite,) + self._actor_path(rng, int(rng.integers(self.num_classes)), sprite[2], shift))
    return background, layers + [(actor,) + path]
