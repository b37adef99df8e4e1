"""count_flops: hand-counted tiny models (Keras rule table, docs/thesis_code.md §4) and the thesis's 12 models."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest

from attn_har.inspect import count_flops
from attn_har.inspect.flops import flops_breakdown
from attn_har.layers import DepthwiseConv


class _Block(nn.Module):
  """Conv-BN-ReLU6, depthwise-BN, 1x1 conv with bias, residual add, GAP, Dense: an inverted-residual in miniature."""
  impl: str = "shifted"

  @nn.compact
  def __call__(self, x, train):
    x = nn.Conv(8, (3, 3), strides=2, use_bias=False)(x)         # 16x16x3 -> 8x8x8: 2·64·8·9·3 = 27,648
    x = nn.relu6(nn.BatchNorm(use_running_average=not train)(x))  # 2·512 + 6·8 = 1,072
    y = DepthwiseConv(impl=self.impl)(x)                         # 2·64·8·9 = 9,216
    y = nn.BatchNorm(use_running_average=not train)(y)           # 1,072
    y = nn.Conv(8, (1, 1))(y)                                    # 2·64·8·8 = 8,192, bias 512
    x = x + y                                                    # 512
    x = x.mean((1, 2))                                           # GAP: 512
    return nn.Dense(5)(x)                                        # 2·8·5 = 80, bias 5; final softmax 5·5 = 25


_BLOCK_FLOPS = 27_648 + 1_072 + 9_216 + 1_072 + 8_192 + 512 + 512 + 512 + 80 + 5 + 25


@pytest.mark.parametrize("impl", ["shifted", "grouped"])
def test_hand_counted_block_is_exact_for_both_depthwise_impls(impl):
  assert count_flops(_Block(impl=impl), (1, 16, 16, 3)) == _BLOCK_FLOPS


def test_final_softmax_is_added_to_logits_and_can_be_switched_off():
  assert count_flops(_Block(), (1, 16, 16, 3), final_softmax=False) == _BLOCK_FLOPS - 25


class _Misc(nn.Module):
  """Pools, pad, channel max / mean, sigmoid, resize, strided slices, softmax output, weight-only and dead code."""

  @nn.compact
  def __call__(self, x, train):
    x = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))                # 0
    x = nn.max_pool(x, (3, 3), strides=(2, 2))                      # 8x8x4 out: 9·256 = 2,304
    kernel = self.param("k", nn.initializers.ones, (1, 1, 4, 4))
    x = jax.lax.conv_general_dilated(x, kernel * 2.0, (1, 1), "SAME",  # weight-only mul: 0
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))  # 2·256·4 = 2,048
    m = jnp.concatenate([x.mean(-1, keepdims=True), x.max(-1, keepdims=True)], -1)  # mean 256, max 256 − 64 = 192
    x = x * jax.nn.sigmoid(m[..., :1])                               # mul 256, sigmoid 0
    x = jax.image.resize(x, (1, 16, 16, 4), "bilinear")             # 0
    _ = (x * 3.0).sum()                                             # dead code: 0
    x = x[:, ::2, ::2] + x[:, 1::2, 1::2]                           # two 1x1/2 max pools 2·256, add 256
    x = x.sum((1, 2))                                               # 256 − 4 = 252
    return jax.nn.softmax(x)                                        # max 3, sub 4, sum 3, div 4 = 14


def test_pool_reductions_resize_and_softmax_output():
  # The output is already a softmax (the graph exponentiates a [1, 4] tensor), so none is added.
  expected = 2_304 + 2_048 + 256 + 192 + 256 + 512 + 256 + 252 + 14
  assert count_flops(_Misc(), (1, 16, 16, 4)) == expected
  assert count_flops(_Misc(), (1, 16, 16, 4), final_softmax=True) == expected + 20


def test_breakdown_is_keyed_by_module_and_sums_to_the_total():
  parts = flops_breakdown(_Block(), (1, 16, 16, 3))
  assert sum(parts.values()) == _BLOCK_FLOPS
  assert parts["_Block/DepthwiseConv_0"] == 9_216 and parts["_Block/BatchNorm_1"] == 1_072
  assert parts["_Block/Conv_1"] == 8_192 + 512 and parts["softmax (Keras top)"] == 25


class _Frames(nn.Module):
  """_Block lifted over time with nn.vmap (shared weights, as the video models do), then a mean over T."""

  @nn.compact
  def __call__(self, x, train):
    frames = nn.vmap(_Block, in_axes=(1, None), out_axes=1, variable_axes={"params": None, "batch_stats": None},
                     split_rngs={"params": False})
    return frames(name="frames")(x, train).mean(1)


def test_vmapped_leaves_are_counted_once_per_frame():
  # 4 frames of the block without its softmax, the mean over time (sum 3·5 + div 5), one softmax at the end.
  assert count_flops(_Frames(), (1, 4, 16, 16, 3)) == 4 * (_BLOCK_FLOPS - 25) + 20 + 25


def test_given_variables_traced_at_another_batch_size():
  model = _Block()
  variables = jax.eval_shape(lambda x: model.init(jax.random.key(1), x, False), jnp.zeros((3, 16, 16, 3)))
  assert count_flops(model, (1, 16, 16, 3), variables=variables) == _BLOCK_FLOPS


# ---------------------------------------------------------------------------------------------------------------
# The thesis's models at 224x224x3, K = 100 (docs/thesis_code.md §4; tables 5.1-5.2 of the thesis).

from attn_har.inspect.table import THESIS_MODELS  # noqa: E402


@pytest.mark.parametrize("name", ["MobileNetV2", "ResNet50V2"])
def test_vanilla_backbones_match_the_thesis_exactly(name):
  row = THESIS_MODELS[name]
  assert count_flops(row.build(), (1, 224, 224, 3)) == row.flops


@pytest.mark.parametrize("name", [n for n in THESIS_MODELS if n not in ("MobileNetV2", "ResNet50V2")])
def test_attention_models_within_one_percent_of_the_thesis(name):
  row = THESIS_MODELS[name]
  flops = count_flops(row.build(), (1, 224, 224, 3))
  assert abs(flops - row.flops) <= 0.01 * row.flops, (name, flops, row.flops)


def test_table_cli_prints_our_numbers_beside_the_thesis(capsys):
  from attn_har.inspect.__main__ import main
  assert main(["--table", "thesis", "--only", "MobileNetV2 + CBAM"]) == 0
  line = capsys.readouterr().out.splitlines()[-1]
  assert line.split()[:3] == ["MobileNetV2", "+", "CBAM"]
  assert line.count("2,387,870") == 2 and line.count("614,629,354") == 2 and line.count("+0.000%") == 2
  with pytest.raises(SystemExit):
    main(["--table", "thesis", "--only", "VGG"])
