"""The attention protocol shared by every scorer.

An attention module turns a decoder query into a context vector over the encoder memory.
Anything that depends only on the memory (projected keys) is computed once by
:meth:`Attention.keys` and carried in the decoder's ``memory`` dict, never cached on ``self``,
so the decoder step stays a pure function of its inputs (and exports to ONNX as one).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from s2s.cpu import functional as fn
from s2s.cpu.steplinear import PLAIN, StepLinears


@dataclass(frozen=True)
class AttentionConfig:
    type: str = "bahdanau"
    hidden: int = 0  # size of the additive scorer's hidden layer; 0 = the query size

    def __post_init__(self) -> None:
        if self.hidden < 0:
            raise ValueError(f"hidden must be >= 0, got {self.hidden}")


class Attention(nn.Module):
    """Scores a query against the memory and returns ``(context, weights)``.

    ``query_before_rnn`` tells the RNN decoder where the query comes from: the previous
    decoder state, before the recurrent step (Bahdanau et al., 2015), or the new state after
    it (Luong et al., 2015).
    """

    query_before_rnn = False

    def __init__(self, query_dim: int, memory_dim: int):
        super().__init__()
        self.query_dim, self.memory_dim = query_dim, memory_dim
        self.coverage_weight: nn.Parameter | None = None  # set by use_coverage

    def use_coverage(self) -> None:
        """Let the coverage vector (the attention summed over past steps, See, Liu and Manning,
        2017, eq. 11) feed the scores. Here a learned scalar w adds ``w * coverage`` to each
        source position's score; scorers with a hidden layer override this and add it inside.
        Zero at first, so a fresh coverage model scores as the plain one."""
        self.coverage_weight = nn.Parameter(torch.zeros(()))

    def add_coverage(self, scores: Tensor, coverage: Tensor | None) -> Tensor:
        """scores (B, S) + w * coverage (B, S), or the scores unchanged without coverage."""
        return scores if coverage is None else scores + self.coverage_weight * coverage

    @classmethod
    def from_config(cls, config: AttentionConfig, query_dim: int, memory_dim: int) -> "Attention":
        return cls(query_dim, memory_dim)

    def keys(self, memory_bank: Tensor) -> Tensor:
        """Precomputed keys. memory_bank: (B, S, Hm) -> (B, S, A)."""
        return memory_bank

    def project(self, query: Tensor, linear: StepLinears = PLAIN) -> Tensor:
        """The query as :meth:`score` takes it (scorers with a query matrix apply it here,
        through the decoder's ``linear`` so a training pass can defer its weight gradient)."""
        return query

    def score(self, query: Tensor, keys: Tensor, coverage: Tensor | None = None) -> Tensor:
        """Unnormalised scores. query: (B, Hq) from :meth:`project`, keys: (B, S, A), coverage:
        (B, S) or None -> (B, S)."""
        raise NotImplementedError

    def forward(self, query: Tensor, keys: Tensor, memory_bank: Tensor, src_pad_mask: Tensor,
                linear: StepLinears = PLAIN, coverage: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """query: (B, Hq); memory_bank: (B, S, Hm); src_pad_mask: (B, S) True at padding;
        coverage: (B, S), the sum of past weights, when :meth:`use_coverage` was called.

        Returns context (B, Hm) and weights (B, S) summing to 1 over real source positions.
        """
        scores = self.score(self.project(query, linear), keys, coverage).masked_fill(src_pad_mask, float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        context = torch.bmm(weights.unsqueeze(1), memory_bank).squeeze(1)
        return context, weights


class AdditiveAttention(Attention):
    """score(q, h_j) = v^T tanh(W q + U h_j), the scorer of Bahdanau attention and of Luong's
    concat (whose W [q; h] splits into these two blocks); ``U h`` is computed once per source.
    ``key_bias``: whether U has a bias. With coverage, ``w_c c_j`` joins the sum inside tanh
    (See, Liu and Manning, 2017, eq. 11)."""

    def __init__(self, query_dim: int, memory_dim: int, hidden: int = 0, key_bias: bool = False):
        super().__init__(query_dim, memory_dim)
        hidden = hidden or query_dim
        self.query_proj = nn.Linear(query_dim, hidden, bias=False)  # W
        self.key_proj = nn.Linear(memory_dim, hidden, bias=key_bias)  # U
        self.v = nn.Linear(hidden, 1, bias=False)  # v

    @classmethod
    def from_config(cls, config: AttentionConfig, query_dim: int, memory_dim: int) -> "AdditiveAttention":
        return cls(query_dim, memory_dim, config.hidden)

    def keys(self, memory_bank: Tensor) -> Tensor:
        return self.key_proj(memory_bank)

    def project(self, query: Tensor, linear: StepLinears = PLAIN) -> Tensor:
        return linear(query, self.query_proj.weight)

    def use_coverage(self) -> None:
        self.coverage_weight = nn.Parameter(torch.zeros(self.v.in_features))

    def score(self, query: Tensor, keys: Tensor, coverage: Tensor | None = None) -> Tensor:
        hidden = keys + query.unsqueeze(1)
        if coverage is not None:
            hidden = hidden + coverage.unsqueeze(-1) * self.coverage_weight
        return fn.dot_last(fn.tanh(hidden), self.v.weight[0])
