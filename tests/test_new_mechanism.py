"""A sixth attention mechanism, defined and registered here at run time, works end to end; no package file changes.

`PixelGate` is a toy trunk mechanism, x * sigmoid(conv1x1(layer_norm(x))), its map sown as 'attention'.
Registering it in `ATTENTION` is all it takes: the config check accepts it, `build_model` puts it into MobileNetV2
and ResNet at the backbone's default trunk positions (or its own `family_positions`), a training step updates its
parameters, and the analysis reads its sown maps through the model's frame models.
"""

from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from attn_har.analysis import maps
from attn_har.attention import ATTENTION
from attn_har.config.loader import load_config
from attn_har.inspect import attention_maps
from attn_har.models import build_model, sample_batch
from attn_har.train import steps
from attn_har.train.check import check_config

FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


class PixelGate(nn.Module):
  """Toy trunk mechanism: a = sigmoid(conv1x1(layer_norm(x))) [B, H, W]; returns x * a (after blocks, as thesis CBAM).

  On ResNet it attaches after conv2_block1 and conv3_block1 (its own `family_positions`), on MobileNetV2 at the
  backbone's default trunk positions.
  """
  placement: ClassVar[str] = "trunk"
  family_positions: ClassVar[dict] = {"resnet": ("conv2_block1", "conv3_block1")}
  variant: str = "paper"
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    h = nn.LayerNorm(dtype=self.dtype, param_dtype=self.param_dtype, name="norm")(x)
    logit = nn.Conv(1, (1, 1), dtype=self.dtype, param_dtype=self.param_dtype, name="score")(h)[..., 0]
    a = jax.nn.sigmoid(logit.astype(jnp.float32))
    self.sow("intermediates", "attention", a)
    return x * a[..., None].astype(x.dtype)


@pytest.fixture
def pixel_gate(monkeypatch):
  monkeypatch.setitem(ATTENTION, "pixel_gate", PixelGate)
  return "pixel_gate"


@pytest.mark.parametrize("backbone,blocks", [
    ("mobilenet_v2", ("block_2", "block_5", "block_12")),
    ("resnet18_v2", ("conv2_block1", "conv3_block1")),
])
def test_a_mechanism_registered_at_run_time_trains_and_sows_its_maps(pixel_gate, backbone, blocks):
  config = load_config(f"configs/synthetic_baseline.py:smoke,stream=rgb,attention={pixel_gate},backbone={backbone},"
                       "size=32,batch=2")
  check_config(config)
  config.model.num_classes = 3
  model = build_model(config.model)
  tx = optax.sgd(0.01)
  state = jax.jit(lambda r: steps.init_state(model, tx, r, sample_batch(config, 2))).lower(
      jax.random.key(0)).compile(FAST_COMPILE)(jax.random.key(0))
  frame_params = state["params"]["frame"]["backbone"]
  assert {f"{b}_{pixel_gate}" for b in blocks} == {k for k in frame_params if k.endswith(pixel_gate)}

  rng = np.random.default_rng(0)
  batch = {"rgb": jnp.asarray(rng.normal(size=(2, config.data.num_frames, 32, 32, 3)), jnp.float32),
           "label": jnp.array([0, 2])}
  step = jax.jit(steps.make_train_step(model, tx))
  new_state, metrics = step.lower(state, batch, jax.random.key(1)).compile(FAST_COMPILE)(
      state, batch, jax.random.key(1))
  assert np.isfinite(float(metrics["loss"]))
  gate = f"{blocks[0]}_{pixel_gate}"
  before = np.asarray(state["params"]["frame"]["backbone"][gate]["score"]["kernel"])
  after = np.asarray(new_state["params"]["frame"]["backbone"][gate]["score"]["kernel"])
  assert not np.allclose(before, after), "one training step left the new mechanism's parameters unchanged"

  (view,) = maps.stream_views(model, {"params": new_state["params"],
                                      "batch_stats": new_state["batch_stats"]}).values()
  frames = batch["rgb"][:, 0]
  sown = jax.jit(lambda v, x: attention_maps(view.model, v, x)).lower(view.variables, frames).compile(
      FAST_COMPILE)(view.variables, frames)
  assert set(sown) == {f"backbone/{b}_{pixel_gate}" for b in blocks}
  for a in sown.values():
    a = np.asarray(a)
    assert a.ndim == 3 and a.shape[0] == 2 and a.dtype == np.float32
    assert np.all((a >= 0) & (a <= 1)) and a.std() > 0
