"""Attention quality measured against ground-truth masks, and the reference maps to compare with.

Metrics (maps and masks share the spatial shape [..., H, W]; leading axes, e.g. time, are kept):
  pointing game  (Zhang et al., "Top-down Neural Attention by Excitation Backprop", ECCV 2016): a hit when the
      map's maximum lies inside the mask (optionally dilated by `tolerance` pixels). Ties are scored as the fraction
      of the tied maxima inside the mask, i.e. the expected hit under random tie-breaking; a uniform map so scores
      the mask's area fraction.
  energy inside  fraction of the (non-negative) map's total mass inside the mask (the "energy-based pointing game"
      of Score-CAM, Wang et al. CVPR-W 2020). A map with zero mass counts as uniform (area fraction).
  deletion / insertion AUC  (Petsiuk et al., "RISE", BMVC 2018, arXiv:1806.07421): pixels are removed from
      (deletion) or revealed onto (insertion) a baseline input in order of decreasing saliency, and the model's
      score for the class is recorded after every step; the area under that curve over the removed/revealed
      fraction in [0, 1]. Lower deletion and higher insertion AUC mean the map ranks the evidence the model uses.

An empty mask makes pointing game and energy undefined: those entries are NaN (aggregate with `np.nanmean`).
"""

from typing import Callable, Optional, Tuple, Union

import cv2
import numpy as np

ScoreFn = Callable[[np.ndarray], np.ndarray]


def _check_pair(saliency: np.ndarray, mask: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
  saliency = np.asarray(saliency, dtype=np.float64)
  mask = np.asarray(mask)
  if saliency.shape != mask.shape or saliency.ndim < 2:
    raise ValueError(f"saliency {saliency.shape} and mask {mask.shape} must share one shape [..., H, W]")
  if not np.all(np.isfinite(saliency)):
    raise ValueError("saliency has non-finite values; normalise it first (attn_har.analysis.combine.normalize)")
  return saliency, mask.astype(bool)


def dilate(mask: np.ndarray, tolerance: int) -> np.ndarray:
  """Dilates boolean mask(s) [..., H, W] by a disk of radius `tolerance` pixels (0: unchanged)."""
  mask = np.asarray(mask, dtype=bool)
  if tolerance < 0:
    raise ValueError(f"tolerance must be >= 0 pixels, got {tolerance}")
  if tolerance == 0:
    return mask
  size = 2 * tolerance + 1
  yy, xx = np.mgrid[:size, :size] - tolerance
  disk = (xx * xx + yy * yy <= tolerance * tolerance).astype(np.uint8)
  flat = mask.reshape((-1,) + mask.shape[-2:]).astype(np.uint8)
  out = np.stack([cv2.dilate(m, disk) for m in flat]).astype(bool)
  return out.reshape(mask.shape)


def pointing_game(saliency: np.ndarray, mask: np.ndarray, tolerance: int = 0) -> np.ndarray:
  """Pointing-game score per map: fraction of the map's maxima inside the (dilated) mask.

  Args:
    saliency: map(s) [..., H, W], finite.
    mask: boolean ground truth [..., H, W].
    tolerance: dilation radius of the mask in pixels (15 at 224 x 224 in Zhang et al.).

  Returns:
    float64 [...] in [0, 1] (1 = hit for a unique maximum); NaN where the mask is empty.
  """
  saliency, mask = _check_pair(saliency, mask)
  target = dilate(mask, tolerance)
  peak = saliency == saliency.max(axis=(-2, -1), keepdims=True)
  hits = (peak & target).sum(axis=(-2, -1)) / peak.sum(axis=(-2, -1))
  return np.where(mask.any(axis=(-2, -1)), hits, np.nan)


def energy_inside(saliency: np.ndarray, mask: np.ndarray) -> np.ndarray:
  """Fraction of the map's mass inside the mask.

  Args:
    saliency: non-negative map(s) [..., H, W] (attention maps, ReLU'd Grad-CAM, min-max normalised maps).
    mask: boolean ground truth [..., H, W].

  Returns:
    float64 [...] in [0, 1]; a zero map scores the mask's area fraction; NaN where the mask is empty.
  """
  saliency, mask = _check_pair(saliency, mask)
  if np.any(saliency < 0):
    raise ValueError(f"energy_inside needs a non-negative map, got a minimum of {saliency.min():.3g}")
  total = saliency.sum(axis=(-2, -1))
  inside = (saliency * mask).sum(axis=(-2, -1))
  area = mask.mean(axis=(-2, -1))
  frac = np.where(total > 0, inside / np.where(total > 0, total, 1.0), area)
  return np.where(mask.any(axis=(-2, -1)), frac, np.nan)


def mask_area(mask: np.ndarray) -> np.ndarray:
  """Fraction of pixels inside each mask [..., H, W] (the score of a uniform map)."""
  return np.asarray(mask, dtype=bool).mean(axis=(-2, -1))


def saliency_order(saliency: np.ndarray, seed: int = 0) -> np.ndarray:
  """Flat indices of `saliency` from most to least salient; ties are broken by a seeded random permutation."""
  flat = np.asarray(saliency, dtype=np.float64).ravel()
  if not np.all(np.isfinite(flat)):
    raise ValueError("saliency has non-finite values; normalise it first (attn_har.analysis.combine.normalize)")
  tie = np.random.default_rng(seed).permutation(flat.size)
  return np.lexsort((tie, -flat))


def blur_baseline(x: np.ndarray, sigma: float = 5.0) -> np.ndarray:
  """Gaussian-blurred copy of an input [..., H, W, C] (each leading frame separately): RISE's insertion start."""
  x = np.asarray(x, dtype=np.float32)
  flat = x.reshape((-1,) + x.shape[-3:])
  out = np.stack([cv2.GaussianBlur(f, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REFLECT).reshape(f.shape)
                  for f in flat])
  return out.reshape(x.shape)


def _baseline(x: np.ndarray, baseline: Union[str, np.ndarray]) -> np.ndarray:
  if isinstance(baseline, str):
    if baseline == "mean":
      return np.broadcast_to(x.reshape(-1, x.shape[-1]).mean(axis=0), x.shape).astype(np.float32)
    if baseline == "zeros":
      return np.zeros_like(x, dtype=np.float32)
    if baseline == "blur":
      return blur_baseline(x)
    raise ValueError(f"unknown baseline {baseline!r}; valid choices: 'blur', 'mean', 'zeros' or an array")
  baseline = np.asarray(baseline, dtype=np.float32)
  if baseline.shape != x.shape:
    raise ValueError(f"baseline shape {baseline.shape} differs from the input's {x.shape}")
  return baseline


def perturbation_curve(score_fn: ScoreFn, x: np.ndarray, saliency: np.ndarray, mode: str, steps: int = 16,
                       baseline: Union[str, np.ndarray, None] = None, seed: int = 0,
                       batch_size: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
  """The deletion or insertion curve of one input.

  Args:
    score_fn: maps a batch [N, *x.shape] to scores [N] (e.g. the softmax probability of the explained class).
    x: one input [..., H, W, C] (an image, or a clip [T, H, W, C]).
    saliency: [..., H, W], same spatial (and leading) shape as `x` without channels.
    mode: 'deletion' (start from x, replace the most salient pixels by the baseline first) or 'insertion'
      (start from the baseline, reveal the most salient pixels first).
    steps: number of equal steps from 0 to all pixels.
    baseline: 'mean' (per-channel mean of x; deletion default), 'blur' (insertion default), 'zeros' or an array.
    seed: tie-breaking seed for `saliency_order`.
    batch_size: inputs per `score_fn` call (default all steps + 1 at once).

  Returns:
    (fractions [steps + 1] from 0 to 1, scores [steps + 1]).
  """
  if mode not in ("deletion", "insertion"):
    raise ValueError(f"unknown mode {mode!r}; valid choices: 'deletion', 'insertion'")
  if steps < 1:
    raise ValueError(f"steps must be >= 1, got {steps}")
  x = np.asarray(x, dtype=np.float32)
  saliency = np.asarray(saliency)
  if saliency.shape != x.shape[:-1]:
    raise ValueError(f"saliency shape {saliency.shape} must equal the input's without channels {x.shape[:-1]}")
  if baseline is None:
    baseline = "mean" if mode == "deletion" else "blur"
  base = _baseline(x, baseline)
  start, end = (x, base) if mode == "deletion" else (base, x)
  order = saliency_order(saliency, seed)
  counts = np.round(np.linspace(0.0, 1.0, steps + 1) * order.size).astype(int)
  rank = np.empty(order.size, dtype=np.int64)
  rank[order] = np.arange(order.size)
  rank = rank.reshape(saliency.shape)[..., None]
  batch = np.stack([np.where(rank < n, end, start) for n in counts])
  batch_size = batch.shape[0] if batch_size is None else int(batch_size)
  scores = np.concatenate([np.asarray(score_fn(batch[i:i + batch_size]), dtype=np.float64).reshape(-1)
                           for i in range(0, batch.shape[0], batch_size)])
  if scores.shape != (steps + 1,):
    raise ValueError(f"score_fn must return one score per input ({steps + 1}), got shape {scores.shape}")
  return counts / order.size, scores


def auc(fractions: np.ndarray, scores: np.ndarray) -> float:
  """Trapezoidal area under a curve over fractions in [0, 1]."""
  fractions, scores = np.asarray(fractions, np.float64), np.asarray(scores, np.float64)
  return float(np.sum((fractions[1:] - fractions[:-1]) * (scores[1:] + scores[:-1]) / 2.0))


def deletion_auc(score_fn: ScoreFn, x: np.ndarray, saliency: np.ndarray, **kwargs) -> float:
  """Area under the deletion curve (lower is better); kwargs as `perturbation_curve`."""
  return auc(*perturbation_curve(score_fn, x, saliency, "deletion", **kwargs))


def insertion_auc(score_fn: ScoreFn, x: np.ndarray, saliency: np.ndarray, **kwargs) -> float:
  """Area under the insertion curve (higher is better); kwargs as `perturbation_curve`."""
  return auc(*perturbation_curve(score_fn, x, saliency, "insertion", **kwargs))


def center_bias_map(shape: Tuple[int, ...], sigma: float = 0.25) -> np.ndarray:
  """A centred isotropic Gaussian [..., H, W] with standard deviation `sigma` times the shorter side, peak 1.

  The usual centre-bias reference of saliency evaluation: objects tend to sit near the image centre.
  """
  if len(shape) < 2 or sigma <= 0:
    raise ValueError(f"need a shape [..., H, W] and sigma > 0, got {shape} and {sigma}")
  height, width = shape[-2:]
  s = sigma * min(height, width)
  yy = (np.arange(height) - (height - 1) / 2.0)[:, None]
  xx = (np.arange(width) - (width - 1) / 2.0)[None, :]
  g = np.exp(-(xx * xx + yy * yy) / (2.0 * s * s)).astype(np.float32)
  return np.broadcast_to(g, tuple(shape)).copy()


def uniform_map(shape: Tuple[int, ...]) -> np.ndarray:
  """All-ones map [..., H, W]: no preference (scores the mask's area fraction)."""
  return np.ones(shape, dtype=np.float32)


def random_map(shape: Tuple[int, ...], seed: int = 0) -> np.ndarray:
  """Independent uniform noise in [0, 1) per pixel: the chance level of ranking metrics."""
  return np.random.default_rng(seed).random(shape, dtype=np.float32)


# Reference maps of the quality table (name -> factory(shape, seed)).
BASELINES = {
    "center_bias": lambda shape, seed: center_bias_map(shape),
    "uniform": lambda shape, seed: uniform_map(shape),
    "random": random_map,
}
