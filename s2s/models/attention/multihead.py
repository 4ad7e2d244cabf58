"""Multi-head attention (Vaswani et al., 2017, section 3.2.2) as a scorer for the RNN decoder.

The decoder state is the query; keys and values are projections of the encoder memory, made once
per source by :meth:`MultiHeadAttention.keys` and carried in the decoder's memory dict (keys and
values side by side in one tensor). Each of ``heads`` heads attends with scaled dot products; the
heads' contexts are concatenated and projected back to the memory size, so the decoder sees a
context of the usual width. The returned attention weights are the heads' average.

The step contract returns attention weights, which ``scaled_dot_product_attention`` does not
expose, so one query per step is computed with explicit products (the weights come for free).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from s2s.models.attention.base import Attention
from s2s.models.steplinear import PLAIN, StepLinears
from s2s.registry import register


@dataclass(frozen=True)
class MultiHeadAttentionConfig:
    type: str = "multihead"
    heads: int = 4
    hidden: int = 0  # total size of the heads' keys/values; 0 = the memory size
    dropout: float = 0.0  # on the attention weights, while training

    def __post_init__(self) -> None:
        if self.heads <= 0 or self.hidden < 0:
            raise ValueError(f"heads must be positive and hidden >= 0, got {self.heads} and {self.hidden}")
        if self.hidden and self.hidden % self.heads:
            raise ValueError(f"hidden ({self.hidden}) must be divisible by heads ({self.heads})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


@register("attention", "multihead", MultiHeadAttentionConfig)
class MultiHeadAttention(Attention):
    def __init__(self, query_dim: int, memory_dim: int, heads: int = 4, hidden: int = 0, dropout: float = 0.0,
                 out_dim: int = 0):
        super().__init__(query_dim, memory_dim)
        hidden = hidden or memory_dim
        if hidden % heads:
            raise ValueError(f"multihead: size {hidden} (attention.hidden, or the encoder output size) "
                             f"must be divisible by heads ({heads})")
        self.heads, self.hidden, self.dropout = heads, hidden, dropout
        self.query_proj = nn.Linear(query_dim, hidden, bias=False)  # W^Q
        self.key_value_proj = nn.Linear(memory_dim, 2 * hidden, bias=False)  # [W^K; W^V]
        self.out_proj = nn.Linear(hidden, out_dim or memory_dim, bias=False)  # W^O

    @classmethod
    def from_config(cls, config: MultiHeadAttentionConfig, query_dim: int, memory_dim: int,
                    out_dim: int = 0) -> "MultiHeadAttention":
        """``out_dim``: context size (default the memory size; a transformer decoder asks for its own)."""
        return cls(query_dim, memory_dim, config.heads, config.hidden, config.dropout, out_dim)

    def keys(self, memory_bank: Tensor) -> Tensor:
        """(B, S, Hm) -> keys and values side by side: (B, S, 2 * hidden)."""
        return self.key_value_proj(memory_bank)

    def project(self, query: Tensor, linear: StepLinears = PLAIN) -> Tensor:
        return linear(query, self.query_proj.weight)

    def forward(self, query: Tensor, keys: Tensor, memory_bank: Tensor, src_pad_mask: Tensor,
                linear: StepLinears = PLAIN) -> tuple[Tensor, Tensor]:
        batch, steps = keys.shape[:2]
        heads, size = self.heads, self.hidden // self.heads
        q = self.project(query, linear).view(batch, heads, 1, size)
        k, v = keys.view(batch, steps, 2, heads, size).permute(2, 0, 3, 1, 4).unbind(0)  # (B, heads, S, d)
        scores = torch.matmul(q * size ** -0.5, k.transpose(-1, -2))  # (B, heads, 1, S)
        weights = torch.softmax(scores.masked_fill(src_pad_mask.view(batch, 1, 1, steps), float("-inf")), -1)
        context = torch.matmul(F.dropout(weights, self.dropout, self.training), v)  # (B, heads, 1, d)
        context = linear(context.reshape(batch, self.hidden), self.out_proj.weight)
        return context, weights.squeeze(2).mean(1)

