"""Multi-head attention (Vaswani et al., 2017, section 3.2.2) as a scorer for the RNN decoder.

The decoder state is the query; keys and values are projections of the encoder memory, made once
per source by :meth:`MultiHeadAttention.keys` and carried in the decoder's memory dict (keys and
values side by side in one tensor). Each of ``heads`` heads attends with scaled dot products; the
heads' contexts are concatenated and projected back to the memory size, so the decoder sees a
context of the usual width. The returned attention weights are the heads' average, or one head's
(:attr:`MultiHeadAttention.head`).

The step contract returns attention weights, which ``scaled_dot_product_attention`` does not
expose, so one query per step is computed with explicit products (the weights come for free).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from s2s.models.attention.base import Attention
from s2s.cpu.steplinear import PLAIN, StepLinears
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
        self.head: int | None = None  # the head whose weights are reported; None: the heads' mean

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

    def split(self, keys: Tensor) -> tuple[Tensor, Tensor]:
        """Keys and values side by side (B, S, 2 * hidden) -> keys (B, heads, d, S) and values
        (B, heads, S, d), the layouts :meth:`attend` multiplies without transposing (views)."""
        k, v = keys.unflatten(-1, (2, self.heads, -1)).permute(2, 0, 3, 1, 4).unbind(0)
        return k.transpose(-1, -2), v

    def use_coverage(self) -> None:
        """Coverage (See et al., 2017) in every head: head h adds ``w_h * coverage`` to its scores."""
        self.coverage_weight = nn.Parameter(torch.zeros(self.heads))

    def summary(self, weights: Tensor) -> Tensor:
        """The attention this module reports (to copy attention, coverage and alignments): the
        heads' mean, or head :attr:`head` alone. weights: (B, heads, ..., S) -> (B, ..., S)."""
        return weights.mean(1) if self.head is None else weights[:, self.head]

    def _covered(self, scores: Tensor, coverage: Tensor) -> Tensor:
        """scores (B, heads, K, S) + w_h * coverage, coverage (B * K, S) or (B, S) when K = 1."""
        batch, heads, k, length = scores.shape
        return scores + self.coverage_weight.view(1, heads, 1, 1) * coverage.view(batch, 1, k, length)

    def attend(self, query: Tensor, keys: Tensor, values: Tensor, src_pad_mask: Tensor,
               need_weights: bool = True, linear: StepLinears = PLAIN,
               coverage: Tensor | None = None, all_heads: bool = False) -> tuple[Tensor, Tensor | None]:
        """One query per row (B, Hq), or all target positions at once (B, T, Hq).

        keys: (B, heads, d, S); values: (B, heads, S, d); src_pad_mask: (B, S) True at padding.
        Returns the context, (B, out_dim) or (B, T, out_dim), and with ``need_weights`` the
        reported attention (:meth:`summary`), (B, S) or (B, T, S). Without weights it runs
        ``scaled_dot_product_attention`` (fused kernels on GPU).

        ``coverage`` (with :meth:`use_coverage`): for one query per row, the rows' coverage (B, S);
        for all positions, the coverage before the first one (B, S): position t then sees that
        plus the reported attention of positions < t, computed position by position (the
        products with keys and values still run once for all positions).

        ``all_heads`` (all positions at once, with ``need_weights``): the weights of every head,
        (B, heads, T, S), in place of the reported attention; for plots of what each head reads.
        """
        if query.dim() == 2:
            return self._attend_step(self.project(query, linear), keys, values, src_pad_mask, need_weights, linear,
                                     coverage)
        q = self.project(query, linear)
        batch, tgt_len = q.shape[:2]
        size = self.hidden // self.heads
        q = q.view(batch, tgt_len, self.heads, size).transpose(1, 2)  # (B, heads, T, d)
        visible = ~src_pad_mask.view(batch, 1, 1, -1)
        dropout = self.dropout if self.training else 0.0
        mean = None
        if need_weights or coverage is not None:
            scores = torch.matmul(q * size ** -0.5, keys).masked_fill(~visible, float("-inf"))
            if coverage is None:
                weights = torch.softmax(scores, -1)
            else:
                steps = []
                for t in range(tgt_len):  # position t's coverage depends on positions < t
                    step = torch.softmax(self._covered(scores[:, :, t: t + 1], coverage), -1)
                    coverage = coverage + self.summary(step)[:, 0]
                    steps.append(step)
                weights = torch.cat(steps, 2)
            context = torch.matmul(F.dropout(weights, dropout, self.training), values)
            mean = weights if all_heads else self.summary(weights)
        else:
            context = F.scaled_dot_product_attention(q, keys.transpose(-1, -2), values, attn_mask=visible,
                                                     dropout_p=dropout)
        context = context.transpose(1, 2).reshape(batch, tgt_len, self.hidden)
        return linear(context, self.out_proj.weight), mean

    def _attend_step(self, q: Tensor, keys: Tensor, values: Tensor, src_pad_mask: Tensor, need_weights: bool,
                     linear: StepLinears, coverage: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """One query per row, q: (N, hidden). The same products as the (B, T) path with T = 1, with
        shapes from -1, constants and the memory's batch size only, so the exported step carries
        almost no shape arithmetic.

        The memory may hold one row per sentence while the queries hold K consecutive rows per
        sentence (a beam's hypotheses, N = B * K): each sentence's K queries then attend to its keys
        in one (K, d) x (d, S) product per head, instead of K copies of the memory and K one-row
        products. With K = 1 this is the usual row-by-row attention. ``coverage``: (N, S).
        """
        size = self.hidden // self.heads
        q = q.view(src_pad_mask.size(0), -1, self.heads, size).transpose(1, 2)  # (B, heads, K, d)
        scores = torch.matmul(q * size ** -0.5, keys)  # (B, heads, K, S)
        if coverage is not None:
            scores = self._covered(scores, coverage)
        weights = torch.softmax(scores.masked_fill(src_pad_mask[:, None, None, :], float("-inf")), -1)
        context = torch.matmul(F.dropout(weights, self.dropout, self.training), values)  # (B, heads, K, d)
        mean = self.summary(weights).flatten(0, 1) if need_weights else None  # (N, S)
        return linear(context.transpose(1, 2).reshape(-1, self.hidden), self.out_proj.weight), mean

    def forward(self, query: Tensor, keys: Tensor, memory_bank: Tensor, src_pad_mask: Tensor,
                linear: StepLinears = PLAIN, coverage: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self.attend(query, *self.split(keys), src_pad_mask, True, linear, coverage)
