"""Two-stream video classifier (Simonyan & Zisserman, NeurIPS 2014, arXiv:1406.2199).

An RGB stream reads frames [B, T, H, W, 3], a flow stream reads stacked optical flow [B, T', H, W, 2L]; each is a
per-frame image model lifted over time (`attn_har.video.temporal_pool`, `attn_har.video.lstm`). Sub-modules are
named 'rgb', 'flow' and 'fusion', so a stream's parameters sit at params['rgb'] / params['flow'] and load from a
stream-only checkpoint (`attn_har.train.checkpointing.init_from` with the prefix ('rgb',) or ('flow',);
config keys `init_from.rgb_workdir` / `init_from.flow_workdir`).
"""

from typing import Dict, Sequence

import flax.linen as nn
import jax.numpy as jnp

from attn_har.video.fusion import STREAMS, make_fusion


class TwoStream(nn.Module):
  """RGB + flow streams and late fusion.

  Attributes:
    rgb: the RGB stream video classifier ([B, T, H, W, 3] -> [B, K]).
    flow: the flow stream video classifier ([B, T', H, W, 2L] -> [B, K]).
    num_classes: K.
    fusion_method: a key of `attn_har.video.fusion.FUSIONS`.
    fusion_weights: per-stream weights ('rgb', 'flow') for 'weighted' fusion.
  """
  rgb: nn.Module
  flow: nn.Module
  num_classes: int
  fusion_method: str = "average"
  fusion_weights: Sequence[float] = (1.0, 2.0)

  def setup(self):
    self.fusion = make_fusion(self.fusion_method, self.num_classes, self.fusion_weights)

  def __call__(self, inputs: Dict[str, jnp.ndarray], train: bool) -> Dict[str, object]:
    """inputs {'rgb': [B, T, H, W, 3], 'flow': [B, T', H, W, 2L]} -> {'logits': fused [B, K], 'streams': {...}}."""
    missing = [s for s in STREAMS if s not in inputs]
    if missing:
      raise KeyError(f"two-stream inputs lack {missing}; got keys {sorted(inputs)}")
    streams = {"rgb": self.rgb(inputs["rgb"], train), "flow": self.flow(inputs["flow"], train)}
    return {"logits": self.fusion(streams), "streams": streams}

  def features(self, inputs: Dict[str, jnp.ndarray], train: bool) -> jnp.ndarray:
    """Concatenated pooled clip features of both streams [B, D_rgb + D_flow] (for the SVM fusion)."""
    return jnp.concatenate([self.rgb.features(inputs["rgb"], train), self.flow.features(inputs["flow"], train)], -1)
