"""Model inspection: attention maps, parameter and FLOP counts (no training data needed)."""

from attn_har.inspect.flops import count_flops
from attn_har.inspect.sown_maps import attention_maps
from attn_har.inspect.params import count_params

__all__ = ["attention_maps", "count_flops", "count_params"]
