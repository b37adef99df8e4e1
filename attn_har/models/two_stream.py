"""Two-stream video classifier (Simonyan & Zisserman, NeurIPS 2014, arXiv:1406.2199).

An RGB stream reads frames batch['rgb'] [B, T, H, W, 3], a flow stream reads stacked optical flow batch['flow']
[B, T', H, W, 2L]; each is a stream model (`attn_har.models.temporal`, `attn_har.models.lstm`). Sub-modules are
named 'rgb', 'flow' and 'fusion', so a stream's parameters sit at params['rgb'] / params['flow'] and load from a
stream-only checkpoint (`attn_har.train.checkpointing.init_from` with the prefix ('rgb',) or ('flow',);
config keys `init_from.rgb_workdir` / `init_from.flow_workdir`).
"""

from typing import Dict

import flax.linen as nn
import jax
import jax.numpy as jnp

from attn_har.models.fusion import STREAMS


class TwoStream(nn.Module):
  """RGB + flow streams and late fusion.

  Attributes:
    rgb: the RGB stream model (reads batch['rgb']).
    flow: the flow stream model (reads batch['flow']).
    fusion: the fusion module (`attn_har.models.fusion`), {'rgb': [B, K], 'flow': [B, K]} -> [B, K].
  """
  rgb: nn.Module
  flow: nn.Module
  fusion: nn.Module

  @property
  def inputs(self) -> tuple[str, ...]:
    """The batch keys this model reads."""
    return tuple(k for s in STREAMS for k in getattr(self, s).inputs)

  @property
  def post_hoc_svm(self) -> bool:
    """Whether the trainer fits a linear SVM on the pooled features after training (`FUSIONS['svm']`)."""
    return type(self.fusion).post_hoc_svm

  def frame_models(self) -> Dict[str, tuple[tuple[str, ...], nn.Module]]:
    """{stream: (variable path of its per-frame image model, the module)}."""
    out = {}
    for s in STREAMS:
      for key, (path, module) in getattr(self, s).frame_models().items():
        out[key] = ((s,) + path, module)
    return out

  def __call__(self, batch: Dict[str, jax.Array], train: bool) -> Dict[str, object]:
    """Returns {'logits': fused [B, K], 'features': [B, D_rgb + D_flow], 'streams': {'rgb': [B, K], 'flow': ..}}."""
    outs = {s: getattr(self, s)(batch, train) for s in STREAMS}
    streams = {s: o["logits"] for s, o in outs.items()}
    features = jnp.concatenate([outs[s]["features"] for s in STREAMS], -1)
    return {"logits": self.fusion(streams), "features": features, "streams": streams}
