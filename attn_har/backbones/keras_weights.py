"""Keras's ImageNet weight files (legacy HDF5) loaded into attn_har's MobileNetV2 and ResNetV2 (50, 101).

The files (`~/.keras/models/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_<alpha>_<size>[_no_top].h5`,
`resnet50v2_weights_tf_dim_ordering_tf_kernels[_notop].h5`) were written by Keras 2's `Model.save_weights`:

    /                attrs layer_names   every layer in model order, weightless ones included (byte strings;
                                         above 64 KiB split into layer_names0, layer_names1, ...)
    /<layer>         attrs weight_names  that layer's weights in Keras order (empty for weightless layers)
    /<layer>/<weight name>               the array, e.g. /Conv1/Conv1/kernel:0 [3, 3, 3, C]

(a full-model `.h5` holds the same under `model_weights/`). Keras loads them by ORDER of the weighted layers, and
so does this module; names are only checked, with the aliases of the MobileNetV2 files, which keep the names of
their 2018 conversion: `expanded_conv_{depthwise,project}[_BN]` is `mobl0_conv_0_{..}` / `bn0_conv_0_bn_{..}`,
`block_<i>_{expand,depthwise,project}` is `mobl<i>_conv_<i>_{..}`, its `_BN` is `bn<i>_conv_<i>_bn_{..}`, and the
classifier `predictions` is `Logits` (ResNetV2 files: `probs`). Weight names are `<layer>/<weight>:0` (Keras 3
writes `<layer>/<weight>`); both are read.

Leaves: kernel -> params kernel (a depthwise kernel [kh, kw, C, 1] becomes [kh, kw, 1, C]), bias -> bias,
gamma -> scale, beta -> bias, moving_mean / moving_variance -> batch_stats mean / var. Every array of the file is
used exactly once and every shape checked; the classifier loads only when its class count matches. A first conv
with other than 3 input channels (optical flow, 2L) gets the RGB kernel averaged over its 3 input channels and
repeated over its own (TSN's cross-modality initialisation, Wang et al. 2016, §3.2).
"""

import dataclasses
import pathlib
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np
from flax import traverse_util

from attn_har.backbones.mobilenet_v2 import BLOCK_NAMES
from attn_har.backbones.resnet_v2 import block_names

# What Keras publishes: MobileNetV2 ImageNet weights for these alphas and input sizes; ResNetV2 at 224.
MOBILENET_ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
MOBILENET_SIZES = (96, 128, 160, 192, 224)
KERAS_MODELS_DIR = pathlib.Path("~/.keras/models")

# Weight names of each kind of Keras layer, in Keras order, and the attn_har leaf each becomes.
WEIGHTS = {"conv": ("kernel",), "conv_bias": ("kernel", "bias"), "depthwise": ("depthwise_kernel",),
           "bn": ("gamma", "beta", "moving_mean", "moving_variance"), "dense": ("kernel", "bias")}
LEAVES = {"kernel": ("params", "kernel"), "depthwise_kernel": ("params", "kernel"), "bias": ("params", "bias"),
          "gamma": ("params", "scale"), "beta": ("params", "bias"), "moving_mean": ("batch_stats", "mean"),
          "moving_variance": ("batch_stats", "var")}
CLASSIFIER = ("predictions",)


class KerasWeightsError(ValueError):
  """A Keras weight file that does not fit the model (names the file and the first mismatching layer)."""


@dataclasses.dataclass(frozen=True)
class KerasLayer:
  """One weighted Keras layer: its keras.applications name, kind (a `WEIGHTS` key), attn_har module path under
  the image classifier (e.g. ('backbone', 'block_3', 'expand')) and the other names files give it."""
  name: str
  kind: str
  path: Tuple[str, ...]
  aliases: Tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Move:
  """Row `row` of the file goes to leaf `key` = (collection, *path) as 'copy', 'depthwise' (transposed) or
  'cross_modality' (first conv, RGB kernel averaged and repeated over the model's input channels)."""
  row: int
  key: Tuple[str, ...]
  how: str


@dataclasses.dataclass
class Plan:
  """Where each array of a file goes: `moves`; `kept`: the model's modules Keras lacks (own initialisation);
  `notes`: file layers not loaded and transformed layers, one line each."""
  moves: List[Move]
  kept: List[str]
  notes: List[str]


def mobilenet_v2_layers() -> List[KerasLayer]:
  """The weighted layers of Keras's MobileNetV2 in Keras order (without the classifier)."""
  out = [KerasLayer("Conv1", "conv", ("backbone", "Conv1")), KerasLayer("bn_Conv1", "bn", ("backbone", "bn_Conv1"))]
  for i, name in enumerate(BLOCK_NAMES):
    keras_prefix = "expanded_conv" if i == 0 else name
    for part in ("depthwise", "project") if i == 0 else ("expand", "depthwise", "project"):
      path = ("backbone", name)
      out.append(KerasLayer(f"{keras_prefix}_{part}", "depthwise" if part == "depthwise" else "conv",
                            path + (part,), (f"mobl{i}_conv_{i}_{part}",)))
      out.append(KerasLayer(f"{keras_prefix}_{part}_BN", "bn", path + (f"{part}_BN",), (f"bn{i}_conv_{i}_bn_{part}",)))
  return out + [KerasLayer("Conv_1", "conv", ("backbone", "Conv_1")),
                KerasLayer("Conv_1_bn", "bn", ("backbone", "Conv_1_bn"))]


def resnet_v2_layers(depth: int) -> List[KerasLayer]:
  """The weighted layers of Keras's ResNet<depth>V2 (bottleneck depths) in Keras order (without the classifier)."""
  out = [KerasLayer("conv1_conv", "conv_bias", ("backbone", "conv1_conv"))]
  for name in block_names(depth):
    block = ("backbone", name)
    out += [KerasLayer(f"{name}_preact_bn", "bn", block + ("preact_bn",)),
            KerasLayer(f"{name}_1_conv", "conv", block + ("1_conv",)),
            KerasLayer(f"{name}_1_bn", "bn", block + ("1_bn",)),
            KerasLayer(f"{name}_2_conv", "conv", block + ("2_conv",)),
            KerasLayer(f"{name}_2_bn", "bn", block + ("2_bn",))]
    if name.endswith("_block1"):
      out.append(KerasLayer(f"{name}_0_conv", "conv_bias", block + ("0_conv",)))
    out.append(KerasLayer(f"{name}_3_conv", "conv_bias", block + ("3_conv",)))
  return out + [KerasLayer("post_bn", "bn", ("backbone", "post_bn"))]


KERAS_BACKBONES = {"mobilenet_v2": mobilenet_v2_layers, "resnet50_v2": lambda: resnet_v2_layers(50),
                   "resnet101_v2": lambda: resnet_v2_layers(101)}
CLASSIFIER_LAYER = KerasLayer("predictions", "dense", CLASSIFIER, ("Logits", "probs"))


def keras_layers(backbone: str) -> List[KerasLayer]:
  """`KERAS_BACKBONES[backbone]()`; a backbone Keras has no ImageNet file of raises KerasWeightsError."""
  if backbone not in KERAS_BACKBONES:
    raise KerasWeightsError(f"Keras publishes no ImageNet weights for backbone {backbone!r}; "
                            f"init_from.keras works with {sorted(KERAS_BACKBONES)}")
  return KERAS_BACKBONES[backbone]()


def keras_file_names(backbone: str, alpha: float = 1.0, size: int = 224) -> Tuple[str, str]:
  """(with-top file, no-top file) as Keras names them in ~/.keras/models/ (MobileNetV2: Keras's alpha and input
  size, 224 when `size` is not one Keras publishes)."""
  keras_layers(backbone)
  if backbone == "mobilenet_v2":
    if alpha not in MOBILENET_ALPHAS:
      raise KerasWeightsError(f"Keras publishes MobileNetV2 ImageNet weights for alpha in {MOBILENET_ALPHAS} only, "
                              f"not {alpha} (set model.alpha)")
    stem = f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(alpha)}_{size if size in MOBILENET_SIZES else 224}"
    return f"{stem}.h5", f"{stem}_no_top.h5"
  stem = f"resnet{backbone.split('_')[0][len('resnet'):]}v2_weights_tf_dim_ordering_tf_kernels"
  return f"{stem}.h5", f"{stem}_notop.h5"


def keras_call(backbone: str, alpha: float, size: int, include_top: bool) -> str:
  """The keras.applications call that downloads the file into ~/.keras/models/."""
  if backbone == "mobilenet_v2":
    size = size if size in MOBILENET_SIZES else 224
    return (f"keras.applications.MobileNetV2(alpha={float(alpha)}, input_shape=({size}, {size}, 3), "
            f"include_top={include_top})")
  return f"keras.applications.ResNet{backbone.split('_')[0][len('resnet'):]}V2(include_top={include_top})"


def resolve_file(spec: str, backbone: str, alpha: float = 1.0, size: int = 224) -> pathlib.Path:
  """The weight file of `init_from.keras`: a path, or 'imagenet' for Keras's own file in ~/.keras/models/ (the
  no-top file, else the with-top one). Nothing is downloaded: a missing file raises FileNotFoundError naming the
  file Keras would use and how to get it."""
  top, notop = keras_file_names(backbone, alpha, size)
  models = KERAS_MODELS_DIR.expanduser()
  candidates = [models / notop, models / top] if spec == "imagenet" else [pathlib.Path(spec).expanduser()]
  for path in candidates:
    if path.is_file():
      return path
  raise FileNotFoundError(
      f"init_from.keras: no weight file at {' or '.join(map(str, candidates))}. Keras keeps the ImageNet weights of "
      f"this model as {KERAS_MODELS_DIR / notop} (backbone only) or {KERAS_MODELS_DIR / top} (with the 1000-class "
      f"classifier). Nothing is downloaded here: on a machine with network access, run `python -c \"import keras; "
      f"{keras_call(backbone, alpha, size, False)}\"`, then copy that file from ~/.keras/models/ to this machine's "
      f"~/.keras/models/ (init_from.keras=imagenet) or to any path given as init_from.keras=PATH")


def _attr_names(group: Any, key: str) -> List[str] | None:
  """A list-of-names attribute (decoded), also when Keras split it into key0, key1, ... (None when absent)."""
  if key in group.attrs:
    values = list(group.attrs[key])
  elif f"{key}0" in group.attrs:
    values, n = [], 0
    while f"{key}{n}" in group.attrs:
      values += list(group.attrs[f"{key}{n}"])
      n += 1
  else:
    return None
  return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def read_legacy_h5(path) -> List[Tuple[str, str, np.ndarray]]:
  """The (layer, weight name, array) rows of a legacy Keras HDF5 weight file, in Keras's loading order (weighted
  layers in `layer_names` order, each layer's weights in `weight_names` order)."""
  import h5py
  rows = []
  with h5py.File(path, "r") as f:
    root = f["model_weights"] if "layer_names" not in f.attrs and "model_weights" in f else f
    layers = _attr_names(root, "layer_names")
    if layers is None:
      raise KerasWeightsError(f"{path}: not a Keras HDF5 weight file (no 'layer_names' attribute); expected a file "
                              f"written by Keras's save_weights, such as Keras's ImageNet downloads")
    for layer in layers:
      if layer not in root:
        raise KerasWeightsError(f"{path}: layer {layer!r} is listed in layer_names but has no group (damaged file?)")
      for weight in _attr_names(root[layer], "weight_names") or []:
        if weight not in root[layer]:
          raise KerasWeightsError(f"{path}: layer {layer!r} lists weight {weight!r}, which the file lacks "
                                  f"(damaged or truncated file; get it again)")
        rows.append((layer, weight, np.asarray(root[layer][weight])))
  return rows


def _weight_kind(name: str) -> str:
  """'Conv1/kernel:0' -> 'kernel'."""
  return name.split("/")[-1].split(":")[0]


def _layer_groups(rows: Sequence[Tuple[str, str, Any]]) -> List[Tuple[str, List[int]]]:
  groups = []
  for i, (layer, _, _) in enumerate(rows):
    if not groups or groups[-1][0] != layer:
      groups.append((layer, []))
    groups[-1][1].append(i)
  return groups


def _module_roots(kept: Sequence[Tuple[str, ...]], loaded: Sequence[Tuple[str, ...]]) -> List[str]:
  """The outermost modules holding only `kept` leaves (e.g. 'backbone/block_2_cbam', 'predictions')."""
  touched = {p[:i] for p in loaded for i in range(1, len(p) + 1)}
  roots = []
  for p in kept:
    i = next(i for i in range(1, len(p) + 1) if p[:i] not in touched)
    root = "/".join(p[:i])
    if root not in roots:
      roots.append(root)
  return roots


def plan_load(rows: Sequence[Tuple[str, str, Sequence[int]]], target: Dict[str, Any], backbone: str,
              source: str) -> Plan:
  """Maps a file's rows (layer, weight name, shape) onto an image classifier's variables, strictly.

  Args:
    rows: `read_legacy_h5` rows, with shapes (or arrays) as the third element.
    target: {'params': tree, 'batch_stats': tree} of one `ImageClassifier` (arrays or shape structs).
    backbone: a `KERAS_BACKBONES` key.
    source: the file's name, for messages.

  Raises:
    KerasWeightsError naming `source` and the first layer whose count, name, weights or shape do not fit.
  """
  expected = keras_layers(backbone)
  groups = _layer_groups(rows)
  if len(groups) == len(expected) + 1:
    expected = expected + [CLASSIFIER_LAYER]
  if len(groups) != len(expected):
    raise KerasWeightsError(
        f"{source}: layer count mismatch: the file has {len(groups)} weighted layers, Keras's {backbone} has "
        f"{len(expected)} ({len(expected) + 1} with the classifier); is it the file of another model?")
  flat = {k: tuple(np.shape(v)) for k, v in traverse_util.flatten_dict(dict(target)).items()}
  moves, notes, loaded = [], [], []
  for (name, idx), layer in zip(groups, expected):
    where = f"{source}: layer {name!r} (Keras {layer.name!r})"
    if name not in (layer.name,) + layer.aliases:
      raise KerasWeightsError(f"{source}: weighted layer {name!r} where Keras's {backbone} has {layer.name!r}; "
                              f"is it the file of another model?")
    kinds = [_weight_kind(rows[i][1]) for i in idx]
    want = WEIGHTS[layer.kind]
    if layer.kind == "depthwise":
      kinds = ["depthwise_kernel" if k == "kernel" else k for k in kinds]
    if tuple(kinds) != want:
      raise KerasWeightsError(f"{where} has weights {kinds}, expected {list(want)}")
    keys = [(LEAVES[k][0],) + layer.path + (LEAVES[k][1],) for k in kinds]
    present = [k in flat for k in keys]
    if not any(present):
      notes.append(f"Keras layer {name} not loaded: the model has no {'/'.join(layer.path)}")
      continue
    if not all(present):
      missing = [("/".join(k)) for k, p in zip(keys, present) if not p]
      raise KerasWeightsError(f"{where}: the model lacks {missing}")
    layer_moves = []
    for i, key, kind in zip(idx, keys, kinds):
      shape = tuple(rows[i][2] if isinstance(rows[i][2], (list, tuple)) else np.shape(rows[i][2]))
      how = "copy"
      if kind == "depthwise_kernel":
        how, shape = "depthwise", shape[:2] + shape[3:] + shape[2:3]
      if shape != flat[key] and len(shape) == 4 and layer is expected[0] and shape[2] == 3 \
          and shape[:2] + shape[3:] == flat[key][:2] + flat[key][3:]:
        how = "cross_modality"
        notes.append(f"Keras layer {name}: RGB kernel averaged over its 3 input channels and repeated over the "
                     f"model's {flat[key][2]} (TSN cross-modality initialisation)")
      elif shape != flat[key]:
        if layer is CLASSIFIER_LAYER:
          notes.append(f"Keras classifier {name} not loaded: {shape[-1]} classes in the file, the model has "
                       f"{flat[key][-1]}")
          layer_moves = None
          break
        raise KerasWeightsError(f"{where}: {rows[i][1]} has shape {shape} (attn_har layout), the model's "
                                f"{'/'.join(key)} has {flat[key]}; a different alpha, depth or input?")
      layer_moves.append(Move(i, key, how))
    if layer_moves:
      moves += layer_moves
      loaded += [m.key[1:] for m in layer_moves]
  if len(expected) == len(keras_layers(backbone)) and any(k[1:2] == CLASSIFIER for k in flat):
    notes.append(f"{source} has no classifier (a no-top file): 'predictions' keeps its initialisation")
  kept = [k[1:] for k in flat if k not in {m.key for m in moves}]
  return Plan(moves, _module_roots(kept, loaded), notes)


def _transform(array: np.ndarray, how: str, shape: Tuple[int, ...]) -> np.ndarray:
  if how == "depthwise":
    return np.transpose(array, (0, 1, 3, 2))
  if how == "cross_modality":
    return np.repeat(array.mean(axis=2, keepdims=True), shape[2], axis=2)
  return array


def load_keras_file(path, target: Dict[str, Any], backbone: str, rows=None) -> Tuple[Dict[str, Any], Plan]:
  """Loads a Keras weight file into one image classifier's {'params', 'batch_stats'} (numpy, dtypes kept).

  Args:
    path: the file.
    target: {'params': tree, 'batch_stats': tree} of an `ImageClassifier`.
    backbone: a `KERAS_BACKBONES` key.
    rows: the file's `read_legacy_h5(path)` when already read.

  Returns:
    (new {'params', 'batch_stats'}, the `Plan`: what went where, what kept its own initialisation).
  """
  rows = read_legacy_h5(path) if rows is None else rows
  plan = plan_load(rows, target, backbone, str(path))
  flat = traverse_util.flatten_dict({k: target[k] for k in ("params", "batch_stats") if k in target})
  flat = {k: np.asarray(v) for k, v in flat.items()}
  for move in plan.moves:
    old = flat[move.key]
    flat[move.key] = _transform(rows[move.row][2], move.how, old.shape).astype(old.dtype)
  return traverse_util.unflatten_dict(flat), plan
