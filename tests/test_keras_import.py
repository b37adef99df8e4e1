"""Keras ImageNet weight files -> attn_har (`attn_har.backbones.keras_weights`, `init_from.keras`).

The fixtures (../shared/fixtures/keras, read in place) are genuine legacy-format Keras files with RANDOM weights:
MobileNetV2 alpha 0.35 at 96 px with and without top, Keras's logits and features for a fixed input, and the
ordered (layer, weight, shape) rows of the real ImageNet files of ResNet50V2 and MobileNetV2 alpha 1.0.
"""

import json

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.traverse_util import flatten_dict

from attn_har.backbones import keras_weights
from attn_har.backbones.keras_weights import KerasWeightsError
from attn_har.config.loader import load_config
from attn_har.models import build_image_model, build_model
from attn_har.train import checkpointing
from attn_har.train.check import check_config

TOP, NOTOP = "mobilenet_v2_a0.35_96_top.h5", "mobilenet_v2_a0.35_96_notop.h5"


def _rel(a, b) -> float:
  return float(np.max(np.abs(np.asarray(a) - b)) / np.max(np.abs(b)))


def _zeros(model, shape):
  """{'params', 'batch_stats'} of `model` as zeros (shapes through eval_shape: no compute)."""
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros(shape), False))
  return jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), dict(shapes))


def _file(path) -> dict:
  """{(keras layer, weight kind): array} of a fixture file."""
  return {(layer, keras_weights._weight_kind(w)): a for layer, w, a in keras_weights.read_legacy_h5(path)}


@pytest.fixture(scope="module")
def expected(keras_fixtures):
  return dict(np.load(keras_fixtures / "mobilenet_v2_a0.35_96_expected.npz"))


@pytest.fixture(scope="module")
def mobilenet_035(keras_fixtures):
  """(zero variables of MobileNetV2 alpha 0.35 with a 1000-class classifier, jitted (variables, x) ->
  (logits [B, 1000], backbone output [B, 3, 3, 1280])): one compiled program for both files."""
  model = build_image_model("mobilenet_v2", None, num_classes=1000, alpha=0.35)

  def run(variables, x):
    out, state = model.apply(variables, x, False, method=model.outputs, mutable=["intermediates"],
                             capture_intermediates=lambda module, _: module.name == "backbone")
    return out["logits"], state["intermediates"]["backbone"]["__call__"][0][0]

  return _zeros(model, (1, 96, 96, 3)), jax.jit(run)


def test_top_file_gives_keras_logits(keras_fixtures, expected, mobilenet_035):
  fresh, run = mobilenet_035
  loaded, plan = keras_weights.load_keras_file(keras_fixtures / TOP, fresh, "mobilenet_v2")
  assert len(plan.moves) == 262 and plan.kept == [] and plan.notes == []
  logits, features = run(loaded, jnp.asarray(expected["x"]))
  assert _rel(logits, expected["logits"]) <= 1e-4
  assert _rel(features.mean(axis=(1, 2)), expected["pooled"]) <= 1e-4


def test_notop_file_gives_keras_features(keras_fixtures, expected, mobilenet_035):
  fresh, run = mobilenet_035
  loaded, plan = keras_weights.load_keras_file(keras_fixtures / NOTOP, fresh, "mobilenet_v2")
  assert len(plan.moves) == 260 and plan.kept == ["predictions"] and "no classifier" in plan.notes[0]
  np.testing.assert_array_equal(loaded["params"]["predictions"]["kernel"], 0)    # kept as it was
  _, features = run(loaded, jnp.asarray(expected["x"]))
  assert _rel(features, expected["features"]) <= 1e-4


@pytest.mark.parametrize("name,backbone", [("resnet50v2", "resnet50_v2"), ("mobilenet_v2_1.0_224", "mobilenet_v2")])
def test_real_file_name_lists_map_one_to_one_onto_the_model(keras_fixtures, name, backbone):
  models = json.loads((keras_fixtures / "resnet50v2_weight_names.json").read_text())["models"]
  model = build_image_model(backbone, None, num_classes=1000)
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 64, 64, 3)), False))
  leaves = {(c,) + k: v.shape for c in ("params", "batch_stats") for k, v in flatten_dict(shapes[c]).items()}
  for top in ("top", "notop"):
    for variant in ("imagenet_file_layout", "keras3_legacy_writer"):
      rows = models[f"{name}_{top}"][variant]["weights"]
      plan = keras_weights.plan_load(rows, dict(shapes), backbone, f"{name}_{top}")
      assert sorted(m.row for m in plan.moves) == list(range(len(rows)))          # every array used once
      keys = [m.key for m in plan.moves]
      assert len(set(keys)) == len(keys)                                          # into distinct leaves
      unloaded = set(leaves) - set(keys)
      assert unloaded == (set() if top == "top" else {k for k in leaves if k[1] == "predictions"})
      for m in plan.moves:
        shape = tuple(rows[m.row][2])
        shape = shape[:2] + shape[3:] + shape[2:3] if m.how == "depthwise" else shape
        assert shape == leaves[m.key], (rows[m.row], m)


def test_tsn_flow_init_averages_the_rgb_kernel_over_the_flow_channels(keras_fixtures):
  model = build_image_model("mobilenet_v2", "cbam", num_classes=7, variant="thesis", alpha=0.35)
  fresh = _zeros(model, (1, 32, 32, 10))
  loaded, plan = keras_weights.load_keras_file(keras_fixtures / TOP, fresh, "mobilenet_v2")
  file = _file(keras_fixtures / TOP)
  rgb = file["Conv1", "kernel"]                                                    # [3, 3, 3, 16]
  flow = loaded["params"]["backbone"]["Conv1"]["kernel"]                           # [3, 3, 10, 16]
  assert flow.shape == (3, 3, 10, 16)
  for c in range(10):
    np.testing.assert_allclose(flow[:, :, c], rgb.mean(axis=2), rtol=1e-6)
  assert flow.sum() != 0 and not np.allclose(rgb[:, :, 0], rgb[:, :, 1])
  np.testing.assert_array_equal(loaded["params"]["backbone"]["block_1"]["depthwise"]["kernel"],
                                np.transpose(file["mobl1_conv_1_depthwise", "depthwise_kernel"], (0, 1, 3, 2)))
  np.testing.assert_array_equal(loaded["batch_stats"]["backbone"]["Conv_1_bn"]["var"],
                                file["Conv_1_bn", "moving_variance"])
  # thesis CBAM after block_2, block_5, block_12 and the 7-class classifier keep their own initialisation
  assert sorted(plan.kept) == ["backbone/block_12_cbam", "backbone/block_2_cbam", "backbone/block_5_cbam",
                               "predictions"]
  assert any("TSN" in n and "10" in n for n in plan.notes)
  assert any("1000 classes in the file, the model has 7" in n for n in plan.notes)
  np.testing.assert_array_equal(loaded["params"]["predictions"]["kernel"], 0)


def test_a_missing_file_names_the_file_keras_would_use(tmp_path, monkeypatch, keras_fixtures):
  with pytest.raises(FileNotFoundError) as err:
    keras_weights.resolve_file(str(tmp_path / "w.h5"), "mobilenet_v2", 0.35, 96)
  message = str(err.value)
  assert str(tmp_path / "w.h5") in message and "nothing is downloaded" in message.lower()
  assert "~/.keras/models/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_96_no_top.h5" in message
  assert "MobileNetV2(alpha=0.35, input_shape=(96, 96, 3), include_top=False)" in message
  with pytest.raises(FileNotFoundError, match="resnet50v2_weights_tf_dim_ordering_tf_kernels_notop.h5"):
    keras_weights.resolve_file(str(tmp_path / "w.h5"), "resnet50_v2")
  with pytest.raises(KerasWeightsError, match="alpha"):
    keras_weights.resolve_file("imagenet", "mobilenet_v2", 0.56, 224)
  with pytest.raises(KerasWeightsError, match="resnet18_v2"):
    keras_weights.resolve_file("imagenet", "resnet18_v2")
  # 'imagenet': Keras's own file in ~/.keras/models/ (an image size Keras lacks falls back to 224)
  monkeypatch.setenv("HOME", str(tmp_path))
  models = tmp_path / ".keras" / "models"
  models.mkdir(parents=True)
  (models / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224.h5").symlink_to(keras_fixtures / TOP)
  assert keras_weights.resolve_file("imagenet", "mobilenet_v2", 0.35, 112).name.endswith("0.35_224.h5")
  config = load_config("configs/synthetic_baseline.py:smoke,init_from.keras=" + str(tmp_path / "none.h5"))
  with pytest.raises(FileNotFoundError, match="_0.35_224_no_top.h5"):
    check_config(config)


def test_files_that_do_not_fit_fail_naming_the_file_and_the_layer(tmp_path, keras_fixtures):
  fresh = _zeros(build_image_model("mobilenet_v2", None, num_classes=1000, alpha=0.5), (1, 32, 32, 3))
  with pytest.raises(KerasWeightsError, match=rf"{TOP}.*'mobl1_conv_1_project'.*\(1, 1, 48, 8\).*\(1, 1, 48, 16\)"):
    keras_weights.load_keras_file(keras_fixtures / TOP, fresh, "mobilenet_v2")
  with pytest.raises(KerasWeightsError, match=rf"{TOP}: layer count mismatch: the file has 105 weighted layers"):
    keras_weights.load_keras_file(keras_fixtures / TOP, {"params": {}, "batch_stats": {}}, "resnet50_v2")
  broken = tmp_path / "broken.h5"
  with h5py.File(keras_fixtures / NOTOP, "r") as src, h5py.File(broken, "w") as dst:
    for key, value in src.attrs.items():
      dst.attrs[key] = value
    for layer in src:
      src.copy(layer, dst)
    del dst["bn_Conv1/bn_Conv1/beta:0"]
  with pytest.raises(KerasWeightsError, match=r"broken.h5: layer 'bn_Conv1' lists weight 'bn_Conv1/beta:0'"):
    keras_weights.read_legacy_h5(broken)
  with h5py.File(tmp_path / "plain.h5", "w") as f:
    f["x"] = np.zeros(3)
  with pytest.raises(KerasWeightsError, match="plain.h5: not a Keras HDF5 weight file"):
    keras_weights.read_legacy_h5(tmp_path / "plain.h5")


def test_a_model_without_keras_classifier_keeps_its_head_and_names_it(keras_fixtures):
  fresh = _zeros(build_image_model("mobilenet_v2", "l2pa", num_classes=1000, alpha=0.35), (1, 64, 64, 3))
  loaded, plan = keras_weights.load_keras_file(keras_fixtures / TOP, fresh, "mobilenet_v2")
  assert len(plan.moves) == 260 and plan.kept == ["head"]
  assert plan.notes == ["Keras layer Logits not loaded: the model has no predictions"]
  assert all(np.all(leaf == 0) for leaf in jax.tree.leaves(loaded["params"]["head"]))


def test_rows_out_of_keras_order_are_refused(keras_fixtures):
  rows = json.loads((keras_fixtures / "resnet50v2_weight_names.json").read_text())["models"][
      "resnet50v2_notop"]["imagenet_file_layout"]["weights"]
  shapes = jax.eval_shape(lambda: build_image_model("resnet50_v2", None, num_classes=1000).init(
      jax.random.key(0), jnp.zeros((1, 64, 64, 3)), False))
  swapped = rows[:6] + rows[7:11] + rows[6:7] + rows[11:]       # conv2_block1_1_bn before conv2_block1_1_conv
  with pytest.raises(KerasWeightsError, match="weighted layer 'conv2_block1_1_bn' where Keras's resnet50_v2 has "
                                              "'conv2_block1_1_conv'"):
    keras_weights.plan_load(swapped, dict(shapes), "resnet50_v2", "swapped")


def test_two_stream_init_from_keras_loads_both_streams_and_names_what_keras_lacks(keras_fixtures):
  config = load_config("configs/synthetic_cbam.py:smoke")
  config.model.num_classes = 3
  model = build_model(config.model)
  state = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), dict(jax.eval_shape(
      lambda: model.init(jax.random.key(0), {"rgb": jnp.zeros((1, 2, 32, 32, 3)),
                                             "flow": jnp.zeros((1, 2, 32, 32, 4))}, False))))
  paths = {s: p for s, (p, _) in model.frame_models().items()}
  assert paths == {"rgb": ("rgb", "frame"), "flow": ("flow", "frame")}
  new, report = checkpointing.init_from_keras(state, paths, keras_fixtures / NOTOP, "mobilenet_v2")
  file = _file(keras_fixtures / NOTOP)
  rgb, flow = new["params"]["rgb"]["frame"]["backbone"], new["params"]["flow"]["frame"]["backbone"]
  np.testing.assert_array_equal(rgb["Conv1"]["kernel"], file["Conv1", "kernel"])
  np.testing.assert_allclose(flow["Conv1"]["kernel"], np.repeat(file["Conv1", "kernel"].mean(2, keepdims=True), 4, 2),
                             rtol=1e-6)
  for tree in (rgb, flow):
    np.testing.assert_array_equal(tree["block_16"]["project"]["kernel"], file["mobl16_conv_16_project", "kernel"])
    np.testing.assert_array_equal(tree["Conv_1_bn"]["scale"], file["Conv_1_bn", "gamma"])
  assert sum("260 of 260 arrays loaded" in line for line in report) == 2
  # paper CBAM sits inside every block; the frame classifiers (FrameAverage averages their logits) stay too
  prefix = "  kept at its own initialisation (not in the Keras file): "
  kept = {line[len(prefix):] for line in report if line.startswith(prefix)}
  assert kept == {f"{s}/frame/{m}" for s in ("rgb", "flow")
                  for m in ["predictions"] + [f"backbone/block_{i}/attention" for i in range(17)]}
  cbam = new["params"]["rgb"]["frame"]["backbone"]["block_2"]["attention"]
  assert jax.tree.leaves(cbam) and all(np.all(leaf == 0) for leaf in jax.tree.leaves(cbam))   # untouched
  assert any("no classifier" in line for line in report)


@pytest.mark.e2e
def test_a_run_with_init_from_keras_starts_from_the_file(keras_fixtures, tmp_path, monkeypatch, capsys):
  """train.py applies init_from.keras at start-up (a whole run: about 30 s on 2 cores with a warm compilation
  cache, so in make test-e2e; the loading itself is tested above). The run is test_run_reliability.py's."""
  from attn_har.train import train
  monkeypatch.setenv("ATTN_HAR_CACHE", str(tmp_path / "cache"))
  started = []

  def spy(*args):
    started.append(checkpointing_init_from_keras(*args))
    return started[-1]

  checkpointing_init_from_keras = checkpointing.init_from_keras
  monkeypatch.setattr(checkpointing, "init_from_keras", spy)
  config = load_config("configs/synthetic_baseline.py:smoke,stream=rgb,train.progress=false,train.log_every=1,"
                       f"steps=2,init_from.keras={keras_fixtures / TOP}")
  train.train_and_evaluate(config, tmp_path / "run")
  (state, report), = started
  file = _file(keras_fixtures / TOP)
  backbone = state["params"]["frame"]["backbone"]
  np.testing.assert_array_equal(backbone["block_5"]["expand"]["kernel"], file["mobl5_conv_5_expand", "kernel"])
  np.testing.assert_array_equal(state["batch_stats"]["frame"]["backbone"]["bn_Conv1"]["mean"],
                                file["bn_Conv1", "moving_mean"])
  assert state["params"]["frame"]["predictions"]["kernel"].shape == (1280, 3)     # 3 classes: kept
  log = capsys.readouterr().out
  assert "into frame (rgb): 260 of 262 arrays loaded" in log
  assert "Keras classifier Logits not loaded: 1000 classes in the file, the model has 3" in log
  assert "kept at its own initialisation (not in the Keras file): frame/predictions" in log
