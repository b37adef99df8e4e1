"""Scores every map method of trained runs against ground-truth masks, frame by frame.

For each run (a training workdir), each stream and each *method* (a source of maps), every evaluated frame gets a
map that is resized to the frame (bilinear) and min-max normalised (`combine.normalize`, the same for every method,
so a constant map carries no location and scores like the uniform map), then scored with
`attn_har.analysis.quality`: pointing game and energy inside the ground-truth mask, deletion and insertion AUC,
and ROAD (`attn_har.analysis.road`, most- and least-relevant-first) of the stream's per-frame probability of the
true class. `attn_har.analysis.quality_report` turns the per-frame values into the table with intervals.

Ground truth per stream: an RGB frame is scored against its own frame's actor mask (`mask`); a flow stack against
the union of the masks of the frames it covers (`flow_mask`), since its motion comes from all of them.

Methods:
  attention/<stage>, attention/combined    the mechanism's own maps (sown by its attention modules)
  gradcam/<stage>, gradcam/combined        Grad-CAM (logits, ReLU, min-max) at block outputs, true class
  guided_gradcam/combined                  Guided Grad-CAM (guided backprop x Grad-CAM, max |.| over channels)
  flow_magnitude (flow), frame_difference (RGB), location_prior   maps from the input / the training masks
  center_bias, uniform, random                                      data-free reference maps
A vanilla (no attention) run of the same recipe gives the post-hoc comparator: its Grad-CAM rows.

Perturbation baselines (what deleted pixels become, where insertion starts): RGB deletion uses 0 (mid grey of the
[-1, 1] input), RGB insertion a Gaussian blur (RISE). Flow uses the blurred flow for both: zero flow is exactly a
static clip's input, so deleting evidence towards zeros moves a clip toward the `static` class. Clips whose actor
does not move (mean flow length inside the flow mask below `static_px` pixels) are marked static; the report lists
them apart for the flow stream, where no motion map can find a motionless actor.
"""

from typing import Any, Callable, Dict, List, Mapping, Optional

import numpy as np

from attn_har.analysis import baselines, combine, maps, quality, road

METRICS = ("pointing", "energy", "deletion", "insertion", "road_morf", "road_lerf")
PERTURB_METRICS = METRICS[2:]
PERTURB_BASELINES = {"rgb": ("zeros", "blur"), "image": ("zeros", "blur"), "flow": ("blur", "blur")}
MASK_KEYS = {"rgb": "mask", "image": "mask", "flow": "flow_mask"}
ROAD_FRACTIONS = road.FRACTIONS   # 10 % .. 90 %, as Rong et al.


def method_maps(explainer: maps.Explainer, x: np.ndarray, labels: np.ndarray, seed: int = 0,
                inputs: Optional[Mapping[str, np.ndarray]] = None) -> Dict[str, np.ndarray]:
  """All maps of one stream for frames x [N, H, W, C], each resized and normalised to [N, H, W].

  Args:
    explainer: the stream's `maps.Explainer` (with `guided=True` for the Guided Grad-CAM rows).
    x: pre-processed frames [N, H, W, C].
    labels: [N] true classes (Grad-CAM explains them).
    seed: seed of the random reference map.
    inputs: input-derived reference maps {name: [N, H, W] or [H, W]} (`attn_har.analysis.baselines`).
  """
  size = x.shape[1:3]
  shape = (x.shape[0],) + tuple(size)
  e = explainer(x, labels)
  out = {}
  for family, source, combined in (("attention", e.attention, maps.combined_attention(e, size)),
                                   ("gradcam", e.gradcam, maps.combined_gradcam(e, size))):
    for stage, m in maps.by_stage(source).items():
      out[f"{family}/{stage}"] = combine.normalize(combine.resize(m, size))
    if combined is not None:
      out[f"{family}/combined"] = combined
  guided = {k: m for k, m in e.guided.items() if m.shape[-2] * m.shape[-1] > 1}
  if guided:
    out["guided_gradcam/combined"] = combine.combine(guided, size)
  for name, m in (inputs or {}).items():
    out[name] = combine.normalize(np.broadcast_to(combine.resize(np.asarray(m, np.float32), size), shape))
  for name, factory in quality.BASELINES.items():
    out[name] = combine.normalize(factory(shape, seed))
  return out


def score_stream(explainer: maps.Explainer, x: np.ndarray, masks: np.ndarray, labels: np.ndarray,
                 steps: int = 16, seed: int = 0, perturb: Optional[np.ndarray] = None,
                 inputs: Optional[Mapping[str, np.ndarray]] = None,
                 road_fractions=ROAD_FRACTIONS) -> Dict[str, Dict[str, List[float]]]:
  """Per-frame metrics of every method for one stream.

  Args:
    explainer: the stream's `maps.Explainer` (its view's frame model is the one perturbed).
    x: pre-processed frames [N, H, W, C].
    masks: ground-truth masks [N, H, W] (non-zero = actor).
    labels: [N] true classes.
    steps: deletion / insertion steps.
    seed: seed of the random map, of tie-breaking and of ROAD's imputation noise.
    perturb: boolean [N]: frames that also get deletion / insertion / ROAD curves (default all; they cost
      2 (steps + 1) + 2 len(road_fractions) forward passes per frame and method).
    road_fractions: removal fractions of the ROAD curves (empty: no ROAD); the ROAD metrics are each curve's mean
      height (`road.road_area`): MoRF lower and LeRF higher is better.
    inputs: input-derived reference maps, as `method_maps`.

  Returns:
    {method: {metric: [values]}}: N pointing / energy values, one perturbation value per perturbed frame.
  """
  x = np.asarray(x, np.float32)
  masks = np.asarray(masks) > 0.5
  labels = np.asarray(labels).astype(np.int32)
  if masks.shape != x.shape[:3] or labels.shape != x.shape[:1]:
    raise ValueError(f"frames {x.shape}, masks {masks.shape} and labels {labels.shape} disagree")
  perturb = np.ones(x.shape[0], bool) if perturb is None else np.asarray(perturb, bool)
  view = explainer.view
  all_maps = method_maps(explainer, x, labels, seed, inputs)
  deletion_base, insertion_base = PERTURB_BASELINES.get(view.name, ("zeros", "blur"))
  probs = explainer.probabilities
  out = {}
  for method, m in all_maps.items():
    rec = {"pointing": quality.pointing_game(m, masks).tolist(), "energy": quality.energy_inside(m, masks).tolist()}
    rec.update({k: [] for k in PERTURB_METRICS})
    for i in np.flatnonzero(perturb):
      fn = lambda b, c=int(labels[i]): probs(b)[:, c]
      rec["deletion"].append(quality.deletion_auc(fn, x[i], m[i], steps=steps, baseline=deletion_base, seed=seed))
      rec["insertion"].append(quality.insertion_auc(fn, x[i], m[i], steps=steps, baseline=insertion_base,
                                                    seed=seed))
      if len(road_fractions):
        r = road.road(fn, x[i], m[i], fractions=road_fractions, seed=seed)
        rec["road_morf"].append(r.morf_area)
        rec["road_lerf"].append(r.lerf_area)
      else:  # not scored: NaN keeps one value per perturbed frame (the report shows n/a)
        rec["road_morf"].append(float("nan"))
        rec["road_lerf"].append(float("nan"))
    out[method] = rec
  return out


def input_maps(stream: str, data: List[Dict], prior: Optional[np.ndarray]) -> Dict[str, np.ndarray]:
  """The input-derived reference maps of one stream for the concatenated frames of `data`."""
  out = {}
  if stream == "flow":
    out["flow_magnitude"] = baselines.flow_magnitude(np.concatenate([c["flow"] for c in data]))
  elif all("rgb_next" in c for c in data):
    out["frame_difference"] = baselines.frame_difference(np.concatenate([c["rgb"] for c in data]),
                                                         np.concatenate([c["rgb_next"] for c in data]))
  if prior is not None:
    out["location_prior"] = prior
  return out


def static_clips(data: List[Dict], flow_scale: float, static_px: float) -> List[bool]:
  """Per clip: True when its actor does not move (mean flow length inside `flow_mask` below `static_px` pixels)."""
  out = []
  for c in data:
    if "flow" not in c:
      out.append(False)
      continue
    inside = np.asarray(c["flow_mask"]) > 0.5
    motion = baselines.flow_magnitude(c["flow"]) * flow_scale
    out.append(bool(inside.any() and motion[inside].mean() < static_px))
  return out


def evaluate_run(workdir, which: str = "best", subset: str = "test", count: Optional[int] = 20,
                 num_frames: Optional[int] = None, perturb_per_clip: int = 1, steps: int = 16, seed: int = 0,
                 prior_clips: Optional[int] = 100, static_px: float = 0.25, guided: bool = True,
                 road_fractions=ROAD_FRACTIONS, log: Callable[[str], None] = print,
                 perturb_clips: Optional[int] = None) -> Dict[str, Any]:
  """Scores every stream of one trained run on clips of its store with ground-truth masks.

  Args:
    workdir: the run directory.
    which: 'best' or 'latest' checkpoint.
    subset: the store subset to read ('test' by default).
    count: clips to use (default 20; None = all).
    num_frames: frames per clip (default the run's `data.num_frames`).
    perturb_per_clip: frames per clip (spread evenly) that get deletion / insertion / ROAD curves.
    steps: deletion / insertion steps.
    seed: seed of the random map, of tie-breaking and of ROAD's noise.
    prior_clips: training clips whose masks make the location prior (None = all; 0 = no prior).
    static_px: actor motion (pixels per frame) below which a clip counts as static.
    guided: also score Guided Grad-CAM.
    road_fractions: ROAD removal fractions (empty: no ROAD).
    log: progress messages.
    perturb_clips: how many of the clips (spread evenly over them) get the perturbation curves (None = all);
      pointing and energy are scored on every clip. The curves cost 2 (steps + 1) + 2 len(road_fractions) forward
      passes per frame and method, most of the scoring time.

  Returns:
    {'model': name, 'seed': the run's training seed, 'step': int, 'clips': int, 'frames': int, 'mask_area': float,
     'class_names': [K], 'frame_clip': [N] clip index per frame, 'frame_label': [N], 'perturbed': [P] frame
     indices with perturbation values (in order), 'static': [clips] bools,
     'streams': {stream: {method: {metric: values}}}}.
  """
  from attn_har.analysis import clips as clips_lib  # pylint: disable=import-outside-toplevel
  from attn_har.analysis.restore import restore  # pylint: disable=import-outside-toplevel
  run = restore(workdir, which)
  data = clips_lib.eval_clips(run.config, workdir, subset, count, num_frames, True)
  if not data or "mask" not in data[0]:
    raise ValueError(f"the store of {workdir} has no ground-truth masks in subset {subset!r} (synthetic data has)")
  t = data[0]["mask"].shape[0]
  picks = np.zeros(t, bool)
  picks[np.unique(np.round(np.linspace(0, t - 1, perturb_per_clip + 2)[1:-1]).astype(int))] = True
  labels = np.concatenate([np.full(t, c["label"]) for c in data])
  chosen = np.ones(len(data), bool)
  if perturb_clips is not None and perturb_clips < len(data):
    chosen[:] = False
    chosen[np.unique(np.round(np.linspace(0, len(data) - 1, max(perturb_clips, 1))).astype(int))] = True
  perturb = (picks[None, :] & chosen[:, None]).reshape(-1)
  train = clips_lib.eval_clips(run.config, workdir, "train", prior_clips, num_frames) if prior_clips != 0 else []
  flow_scale = clips_lib.clip_options(run.config, num_frames).flow_scale
  streams = {}
  for name, view in maps.stream_views(run.model, run.variables).items():
    key = "rgb" if name == "image" else name
    mask_key = MASK_KEYS.get(name, "mask")
    if mask_key not in data[0]:
      raise ValueError(f"the clips of {workdir} have no {mask_key!r}: the {name} stream's ground truth")
    x = np.concatenate([c[key] for c in data])
    masks = np.concatenate([c[mask_key] for c in data])
    prior = None
    if train and mask_key in train[0]:
      prior = baselines.location_prior(np.concatenate([c[mask_key] for c in train]), x.shape[1:3])
    log(f"{run.config.name}: scoring stream {name!r} on {x.shape[0]} frames of {len(data)} clips "
        f"(ground truth: {mask_key})")
    streams[name] = score_stream(maps.Explainer(view, guided=guided), x, masks, labels, steps, seed, perturb,
                                 input_maps(key, data, prior), road_fractions)
  all_masks = np.concatenate([c["mask"] for c in data])
  return {"model": run.config.name, "seed": int(getattr(run.config, "seed", 0)), "step": run.step,
          "clips": len(data), "frames": int(all_masks.shape[0]),
          "mask_area": float(quality.mask_area(all_masks > 0.5).mean()),
          "class_names": list(_class_names(run.config, workdir)),
          "frame_clip": np.repeat(np.arange(len(data)), t).tolist(), "frame_label": labels.tolist(),
          "perturbed": np.flatnonzero(perturb).tolist(), "static": static_clips(data, flow_scale, static_px),
          "streams": streams}


def _class_names(config, workdir) -> List[str]:
  """The run's class names from its store manifest ([] when it cannot be read)."""
  try:
    from attn_har.analysis import clips as clips_lib  # pylint: disable=import-outside-toplevel
    from attn_har.data.store import ClipStore  # pylint: disable=import-outside-toplevel
    return list(ClipStore(clips_lib.run_store(config, workdir)).classes)
  except (OSError, KeyError, ValueError, AttributeError):
    return []
