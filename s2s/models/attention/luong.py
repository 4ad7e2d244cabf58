"""Global attention of Luong, Pham and Manning (2015), section 3.1, eq. 8.

score(h_t, h_s) = h_t^T h_s (dot), h_t^T W_a h_s (general), v_a^T tanh(W_a [h_t; h_s]) (concat),
with the current decoder state h_t as the query (the decoder attends after its recurrent step).
"""

from __future__ import annotations

from torch import Tensor, nn

from s2s.cpu import functional as fn
from s2s.models.attention.base import AdditiveAttention, Attention, AttentionConfig
from s2s.registry import register


@register("attention", "luong-dot", AttentionConfig)
class LuongDotAttention(Attention):
    def __init__(self, query_dim: int, memory_dim: int):
        super().__init__(query_dim, memory_dim)
        if query_dim != memory_dim:
            raise ValueError(f"luong-dot needs decoder hidden ({query_dim}) == encoder output size "
                             f"({memory_dim}); use luong-general or luong-concat")

    def score(self, query: Tensor, keys: Tensor, coverage: Tensor | None = None) -> Tensor:
        return self.add_coverage(fn.dot_rows(keys, query), coverage)


@register("attention", "luong-general", AttentionConfig)
class LuongGeneralAttention(Attention):
    def __init__(self, query_dim: int, memory_dim: int):
        super().__init__(query_dim, memory_dim)
        self.proj = nn.Linear(memory_dim, query_dim, bias=False)  # W_a, applied to the keys once

    def keys(self, memory_bank: Tensor) -> Tensor:
        return self.proj(memory_bank)

    def score(self, query: Tensor, keys: Tensor, coverage: Tensor | None = None) -> Tensor:
        return self.add_coverage(fn.dot_rows(keys, query), coverage)


@register("attention", "luong-concat", AttentionConfig)
class LuongConcatAttention(AdditiveAttention):
    """W_a [h_t; h_s] split into its query and key blocks, so that the key block runs once."""
