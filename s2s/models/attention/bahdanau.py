"""Additive attention (Bahdanau, Cho and Bengio, 2015, eq. 6 and appendix A.1.2).

score(s_{i-1}, h_j) = v_a^T tanh(W_a s_{i-1} + U_a h_j), with the previous decoder state as
the query: the RNN decoder attends before its recurrent step and feeds the context into it.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from s2s.cpu import functional as fn
from s2s.models.attention.base import Attention, AttentionConfig
from s2s.cpu.steplinear import PLAIN, StepLinears
from s2s.registry import register


@register("attention", "bahdanau", AttentionConfig)
class BahdanauAttention(Attention):
    query_before_rnn = True

    def __init__(self, query_dim: int, memory_dim: int, hidden: int = 0):
        super().__init__(query_dim, memory_dim)
        hidden = hidden or query_dim
        self.query_proj = nn.Linear(query_dim, hidden, bias=False)  # W_a
        self.key_proj = nn.Linear(memory_dim, hidden, bias=True)  # U_a (+ bias)
        self.v = nn.Linear(hidden, 1, bias=False)  # v_a

    @classmethod
    def from_config(cls, config: AttentionConfig, query_dim: int, memory_dim: int) -> "BahdanauAttention":
        return cls(query_dim, memory_dim, config.hidden)

    def keys(self, memory_bank: Tensor) -> Tensor:
        return self.key_proj(memory_bank)

    def project(self, query: Tensor, linear: StepLinears = PLAIN) -> Tensor:
        return linear(query, self.query_proj.weight)

    def use_coverage(self) -> None:
        """See et al. (2017), eq. 11: v^T tanh(W_a s + U_a h_j + w_c c_j), c_j the coverage."""
        self.coverage_weight = nn.Parameter(torch.zeros(self.v.in_features))

    def score(self, query: Tensor, keys: Tensor, coverage: Tensor | None = None) -> Tensor:
        hidden = keys + query.unsqueeze(1)
        if coverage is not None:
            hidden = hidden + coverage.unsqueeze(-1) * self.coverage_weight
        return fn.dot_last(fn.tanh(hidden), self.v.weight[0])

