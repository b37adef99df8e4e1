"""Backbone structure: Keras widths, names, BatchNorm constants, initialisers, attachment points (no compute)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attn_har.attention import ATTENTION
from attn_har.backbones import BACKBONES, MobileNetV2, ResNetV2
from attn_har.backbones.attach import Attachment
from attn_har.backbones.mobilenet_v2 import correct_pad, make_divisible
from attn_har.layers import DepthwiseConv, keras


def _mechanism(name, variant="paper"):
  return Attachment(ATTENTION[name], variant, label=name)


def _shapes(module, shape=(1, 224, 224, 3)):
  """(output shapes, variable shapes) through eval_shape."""
  x = jax.ShapeDtypeStruct(shape, jnp.float32)
  return jax.eval_shape(lambda x: module.init_with_output(jax.random.key(0), x, False), x)


def _layers(module, shape=(1, 64, 64, 3)):
  """Every Conv / Dense / DepthwiseConv / BatchNorm instance the backbone calls, via method interception."""
  seen = []

  def record(next_fun, args, kwargs, context):
    if context.method_name == "__call__" and isinstance(context.module, (nn.Conv, nn.Dense, nn.BatchNorm,
                                                                         DepthwiseConv)):
      seen.append(context.module)
    return next_fun(*args, **kwargs)

  with nn.intercept_methods(record):
    _shapes(module, shape)
  return seen


def test_registry_names():
  assert set(BACKBONES) == {"mobilenet_v2", "resnet18_v2", "resnet34_v2", "resnet50_v2", "resnet101_v2"}


def test_keras_width_rounding_and_padding():
  assert make_divisible(32 * 0.35) == 16 and make_divisible(24 * 0.35) == 8 and make_divisible(320 * 1.3) == 416
  assert correct_pad((224, 224), 3) == ((0, 1), (0, 1)) and correct_pad((7, 7), 3) == ((1, 1), (1, 1))


@pytest.mark.parametrize("module,bn", [(MobileNetV2(), keras.MOBILENET_BN), (ResNetV2(depth=18), keras.RESNET_BN)])
def test_batchnorm_constants_and_glorot_initialisers(module, bn):
  layers = _layers(module)
  norms = [m for m in layers if isinstance(m, nn.BatchNorm)]
  assert norms and all(m.momentum == bn["momentum"] and m.epsilon == bn["epsilon"] for m in norms)
  assert all(m.param_dtype == jnp.float32 for m in norms)
  kernels = [m for m in layers if not isinstance(m, nn.BatchNorm)]
  assert kernels and all(m.kernel_init is keras.glorot_uniform for m in kernels)


def test_glorot_uniform_bounds_on_a_real_kernel():
  conv = keras.Conv(64, (3, 3))
  w = np.asarray(conv.init(jax.random.key(0), jnp.zeros((1, 4, 4, 32)))["params"]["kernel"])
  limit = np.sqrt(6 / (9 * 32 + 9 * 64))
  assert np.abs(w).max() <= limit and np.abs(w).max() > 0.95 * limit
  assert abs(w.std() - limit / np.sqrt(3)) < 0.05 * limit


def test_mobilenet_v2_shapes_names_and_taps():
  (out, taps), variables = _shapes(MobileNetV2(attention=_mechanism("l2pa", "thesis")))
  assert out.shape == (1, 7, 7, 1280)
  assert {k: v.shape for k, v in taps.items()} == {
      "block_5": (1, 28, 28, 32), "block_12": (1, 14, 14, 96), "block_15": (1, 7, 7, 160)}
  params = variables["params"]
  assert params["Conv1"]["kernel"].shape == (3, 3, 3, 32)
  assert params["block_0"]["depthwise"]["kernel"].shape == (3, 3, 1, 32) and "expand" not in params["block_0"]
  assert params["block_16"]["project"]["kernel"].shape == (1, 1, 960, 320)
  assert params["Conv_1"]["kernel"].shape == (1, 1, 320, 1280) and "bias" not in params["Conv_1"]


def test_mobilenet_v2_width_multiplier():
  (out, _), variables = _shapes(MobileNetV2(alpha=0.35), (1, 32, 32, 3))
  assert out.shape == (1, 1, 1, 1280)
  assert variables["params"]["Conv1"]["kernel"].shape == (3, 3, 3, 16)
  assert variables["params"]["block_16"]["project"]["kernel"].shape[-1] == 112


def test_resnet50_v2_shapes_names_and_taps():
  (out, taps), variables = _shapes(ResNetV2(depth=50, attention=_mechanism("gate", "thesis")))
  assert out.shape == (1, 7, 7, 2048)
  assert {k: v.shape for k, v in taps.items()} == {
      "conv2_block3": (1, 28, 28, 256), "conv3_block4": (1, 14, 14, 512), "conv4_block6": (1, 7, 7, 1024)}
  params = variables["params"]
  assert params["conv1_conv"]["kernel"].shape == (7, 7, 3, 64) and "bias" in params["conv1_conv"]
  assert "0_conv" in params["conv2_block1"] and "0_conv" not in params["conv2_block2"]
  assert params["conv5_block3"]["3_conv"]["kernel"].shape == (1, 1, 512, 2048)


@pytest.mark.parametrize("depth,dim", [(18, 512), (34, 512), (101, 2048)])
def test_resnet_variants(depth, dim):
  (out, _), _ = _shapes(ResNetV2(depth=depth), (1, 64, 64, 3))
  assert out.shape == (1, 2, 2, dim)


def test_trunk_attention_attachment_points():
  _, v = _shapes(MobileNetV2(attention=_mechanism("cbam", "thesis")), (1, 32, 32, 3))
  assert {k for k in v["params"] if k.endswith("_cbam")} == {"block_2_cbam", "block_5_cbam", "block_12_cbam"}
  _, v = _shapes(MobileNetV2(attention=_mechanism("residual", "thesis")), (1, 32, 32, 3))
  assert {"block_2_residual", "block_5_residual", "block_9_residual"} <= set(v["params"])
  assert not {"block_2", "block_5", "block_9"} & set(v["params"])  # replaced (t=1 trunk)
  _, v = _shapes(MobileNetV2(attention=_mechanism("cbam", "paper")), (1, 32, 32, 3))
  assert all("attention" in v["params"][f"block_{i}"] for i in range(17))  # inside every block
  _, v = _shapes(ResNetV2(depth=50, attention=_mechanism("residual", "thesis")), (1, 32, 32, 3))
  assert {k for k in v["params"] if k.endswith("_residual")} == {
      "conv2_block2_residual", "conv3_block3_residual", "conv4_block5_residual"}
  assert set(v["params"]["conv2_block2_residual"]) >= {"trunk0", "trunk1", "mask_conv0", "mask_conv1"}


def test_custom_positions_and_bad_positions():
  (_, taps), _ = _shapes(MobileNetV2(attention=_mechanism("l2pa"), attention_positions=("block_3", "block_16")),
                         (1, 32, 32, 3))
  assert {k: v.shape[1:] for k, v in taps.items()} == {"block_3": (4, 4, 32), "block_16": (1, 1, 320)}
  with pytest.raises(ValueError, match=r"unknown attention position\(s\) \['block_17'\]"):
    _shapes(MobileNetV2(attention=_mechanism("cbam"), attention_positions=("block_17",)), (1, 32, 32, 3))
  with pytest.raises(ValueError, match="unsupported depth 26"):
    _shapes(ResNetV2(depth=26), (1, 32, 32, 3))


def test_any_number_of_input_channels():
  (out, _), v = _shapes(ResNetV2(depth=18), (1, 32, 32, 10))
  assert v["params"]["conv1_conv"]["kernel"].shape == (7, 7, 10, 64) and out.shape == (1, 1, 1, 512)
