"""ROAD: RemOve And Debias (Rong et al., "A Consistent and Efficient Evaluation Strategy for Attribution Methods",
ICML 2022, arXiv:2202.00449).

Deletion (`quality.perturbation_curve`) replaces pixels by a constant or blurred baseline: the model then sees
shapes it never saw in training, and the removed region's outline itself tells it where the map pointed (class
information leaks through the mask). ROAD instead fills each removed pixel with *noisy linear imputation*: the
weighted mean of its 8 neighbours (weight 1/6 for the 4 direct ones, 1/12 for the 4 diagonals; out-of-image
neighbours are left out and the weights renormalised), where removed neighbours are unknowns too, so all removed
pixels of a frame are solved together as one sparse linear system; then Gaussian noise is added to the filled
pixels. The paper adds noise of std 0.01 to ImageNet-standardised inputs (unit std per channel); here the std is
`noise` times the input's per-channel std, the same thing for inputs of any scale.

Orders: MoRF (most relevant first) removes the top fraction of pixels by saliency, LeRF (least relevant first)
the bottom fraction. The score of the explained class is recorded at each removal fraction (the paper uses 10 %
to 90 %). A faithful map makes the MoRF curve fall fast (low MoRF area) and the LeRF curve stay high (high LeRF
area); `Road.gap` = LeRF area - MoRF area summarises both (higher is better).

Areas are the curve's mean height over the fraction range (trapezoidal area divided by its width), on the score's
own scale. Pixels are ranked jointly over the whole input (a clip's frames together, as `quality.saliency_order`);
each frame's removed pixels are imputed from that frame only, channel by channel (a flow stack's channels alike).
"""

from typing import NamedTuple, Optional, Sequence

import numpy as np
from scipy import sparse
from scipy.sparse import linalg as sparse_linalg

from attn_har.analysis.quality import ScoreFn, saliency_order

FRACTIONS = tuple(np.round(np.arange(1, 10) / 10.0, 2))
ORDERS = ("morf", "lerf")
# (row offset, column offset, weight) of the 8 neighbours (Rong et al.).
NEIGHBOURS = tuple((dy, dx, 1.0 / 6.0 if dy == 0 or dx == 0 else 1.0 / 12.0)
                   for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0))


class Road(NamedTuple):
  """ROAD curves and areas of one input.

  Attributes:
    fractions: [F] removal fractions.
    morf, lerf: [F] scores after removing that fraction, most / least relevant first.
    morf_area, lerf_area: mean height of each curve (`road_area`); lower MoRF and higher LeRF are better.
    gap: lerf_area - morf_area (higher is better).
  """
  fractions: np.ndarray
  morf: np.ndarray
  lerf: np.ndarray
  morf_area: float
  lerf_area: float
  gap: float


def _impute_frame(frame: np.ndarray, removed: np.ndarray) -> np.ndarray:
  """Noise-free linear imputation of one frame [H, W, C] at the removed pixels [H, W] (bool)."""
  height, width = removed.shape
  holes = np.flatnonzero(removed)
  if holes.size == 0:
    return frame.copy()
  if holes.size == removed.size:
    raise ValueError("cannot impute a frame with every pixel removed (no known neighbour); use fractions < 1")
  flat = frame.reshape(height * width, -1).astype(np.float64)
  unknown = np.full(height * width, -1, dtype=np.int64)
  unknown[holes] = np.arange(holes.size)
  rows, cols = np.divmod(holes, width)
  diag = np.zeros(holes.size)
  rhs = np.zeros((holes.size, flat.shape[1]))
  a_rows, a_cols, a_vals = [], [], []
  for dy, dx, weight in NEIGHBOURS:
    r, c = rows + dy, cols + dx
    inside = (r >= 0) & (r < height) & (c >= 0) & (c < width)
    diag[inside] += weight
    eq = np.flatnonzero(inside)
    nb = r[inside] * width + c[inside]
    is_unknown = unknown[nb] >= 0
    a_rows.append(eq[is_unknown])
    a_cols.append(unknown[nb[is_unknown]])
    a_vals.append(np.full(int(is_unknown.sum()), -weight))
    rhs[eq[~is_unknown]] += weight * flat[nb[~is_unknown]]  # each equation once per offset: no repeats
  a_rows.append(np.arange(holes.size))
  a_cols.append(np.arange(holes.size))
  a_vals.append(diag)
  system = sparse.csc_matrix((np.concatenate(a_vals), (np.concatenate(a_rows), np.concatenate(a_cols))),
                             shape=(holes.size, holes.size))
  # The system is symmetric positive definite (weights are symmetric, the diagonal dominates): a symmetric fill-
  # reducing order without pivoting halves the factor's size; one solve per channel is faster than a block solve.
  lu = sparse_linalg.splu(system, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0, options={"SymmetricMode": True})
  solved = np.stack([lu.solve(np.ascontiguousarray(rhs[:, c])) for c in range(rhs.shape[1])], axis=1)
  out = flat.copy()
  out[holes] = solved
  return out.reshape(frame.shape).astype(frame.dtype)


def impute(x: np.ndarray, removed: np.ndarray, noise: float = 0.01, seed: int = 0) -> np.ndarray:
  """Noisy linear imputation (ROAD) of the removed pixels of an image or clip.

  Args:
    x: input [H, W, C] or clip [T, H, W, C] (any leading axes; each [H, W, C] frame is solved on its own).
    removed: boolean [..., H, W], x's shape without channels: True = remove and impute.
    noise: Gaussian noise std at the imputed pixels, in units of the input's per-channel std (0: none).
    seed: numpy seed of the noise.

  Returns:
    float32 array of x's shape: x at kept pixels, imputed values (+ noise) at removed ones.
  """
  x = np.asarray(x, dtype=np.float32)
  removed = np.asarray(removed, dtype=bool)
  if x.ndim < 3 or removed.shape != x.shape[:-1]:
    raise ValueError(f"removed {removed.shape} must equal the input's shape {x.shape} without channels, "
                     "with inputs [..., H, W, C]")
  if noise < 0:
    raise ValueError(f"noise must be >= 0 (a fraction of the per-channel std), got {noise}")
  frames = x.reshape((-1,) + x.shape[-3:])
  masks = removed.reshape((-1,) + removed.shape[-2:])
  out = np.stack([_impute_frame(f, m) for f, m in zip(frames, masks)]).reshape(x.shape)
  if noise > 0:
    std = x.reshape(-1, x.shape[-1]).std(axis=0)
    jitter = np.random.default_rng(seed).standard_normal(x.shape).astype(np.float32) * (noise * std)
    out = np.where(removed[..., None], out + jitter, out)
  return out.astype(np.float32)


def removal_masks(saliency: np.ndarray, order: str, fractions: Sequence[float] = FRACTIONS,
                  seed: int = 0) -> np.ndarray:
  """Boolean masks [F, *saliency.shape] of the pixels removed at each fraction, MoRF or LeRF.

  Ties in the saliency are broken by `quality.saliency_order`'s seeded permutation.
  """
  if order not in ORDERS:
    raise ValueError(f"unknown order {order!r}; valid choices: {', '.join(ORDERS)}")
  fractions = np.asarray(fractions, dtype=np.float64)
  if fractions.ndim != 1 or fractions.size == 0 or np.any(fractions < 0) or np.any(fractions >= 1):
    raise ValueError(f"fractions must be a non-empty list in [0, 1), got {fractions.tolist()}")
  saliency = np.asarray(saliency)
  ranked = saliency_order(saliency, seed)
  if order == "lerf":
    ranked = ranked[::-1]
  rank = np.empty(ranked.size, dtype=np.int64)
  rank[ranked] = np.arange(ranked.size)
  rank = rank.reshape(saliency.shape)
  counts = np.round(fractions * ranked.size).astype(int)
  return np.stack([rank < n for n in counts])


def road_curve(score_fn: ScoreFn, x: np.ndarray, saliency: np.ndarray, order: str,
               fractions: Sequence[float] = FRACTIONS, noise: float = 0.01, seed: int = 0,
               batch_size: Optional[int] = None) -> tuple:
  """The ROAD curve of one input.

  Args:
    score_fn: maps a batch [N, *x.shape] to scores [N] (e.g. the probability of the explained class), as for
      `quality.perturbation_curve`.
    x: one input [..., H, W, C] (an image, or a clip [T, H, W, C]).
    saliency: [..., H, W], x's shape without channels.
    order: 'morf' (most relevant removed first) or 'lerf' (least relevant first).
    fractions: removal fractions in [0, 1) (default 0.1 .. 0.9, as the paper).
    noise: imputation noise, a fraction of the input's per-channel std (`impute`).
    seed: tie-breaking and noise seed.
    batch_size: inputs per `score_fn` call (default all fractions at once).

  Returns:
    (fractions [F], scores [F]).
  """
  x = np.asarray(x, dtype=np.float32)
  saliency = np.asarray(saliency)
  if saliency.shape != x.shape[:-1]:
    raise ValueError(f"saliency shape {saliency.shape} must equal the input's without channels {x.shape[:-1]}")
  masks = removal_masks(saliency, order, fractions, seed)
  batch = np.stack([impute(x, m, noise, seed + i) for i, m in enumerate(masks)])
  batch_size = batch.shape[0] if batch_size is None else int(batch_size)
  scores = np.concatenate([np.asarray(score_fn(batch[i:i + batch_size]), dtype=np.float64).reshape(-1)
                           for i in range(0, batch.shape[0], batch_size)])
  if scores.shape != (len(masks),):
    raise ValueError(f"score_fn must return one score per input ({len(masks)}), got shape {scores.shape}")
  return np.asarray(fractions, np.float64), scores


def road_area(fractions: np.ndarray, scores: np.ndarray) -> float:
  """Mean height of a curve over its fraction range: trapezoidal area / (last - first fraction)."""
  fractions, scores = np.asarray(fractions, np.float64), np.asarray(scores, np.float64)
  if fractions.size == 1:
    return float(scores[0])
  area = np.sum((fractions[1:] - fractions[:-1]) * (scores[1:] + scores[:-1]) / 2.0)
  return float(area / (fractions[-1] - fractions[0]))


def road(score_fn: ScoreFn, x: np.ndarray, saliency: np.ndarray, fractions: Sequence[float] = FRACTIONS,
         noise: float = 0.01, seed: int = 0, batch_size: Optional[int] = None) -> Road:
  """MoRF and LeRF ROAD curves of one input and their areas; arguments as `road_curve`."""
  fr, morf = road_curve(score_fn, x, saliency, "morf", fractions, noise, seed, batch_size)
  _, lerf = road_curve(score_fn, x, saliency, "lerf", fractions, noise, seed, batch_size)
  morf_area, lerf_area = road_area(fr, morf), road_area(fr, lerf)
  return Road(fr, morf, lerf, morf_area, lerf_area, lerf_area - morf_area)
