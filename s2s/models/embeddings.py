"""Token embeddings and the output projection, optionally tied (Press and Wolf, 2017)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn



class TokenEmbedding(nn.Embedding):
    """Embedding with the padding row fixed at zero; optional sqrt(d) scaling for transformers."""

    def __init__(self, vocab_size: int, dim: int, scale: bool = False):
        super().__init__(vocab_size, dim, padding_idx=0)
        nn.init.normal_(self.weight, 0.0, dim ** -0.5)
        self.weight.data[0].zero_()
        self.scale = math.sqrt(dim) if scale else 1.0

    def forward(self, tokens: Tensor) -> Tensor:
        out = super().forward(tokens)
        return out * self.scale if self.scale != 1.0 else out


class OutputProjection(nn.Module):
    """Decoder output (..., D) -> logits (..., V), sharing the target embedding when tied."""

    def __init__(self, dim: int, vocab_size: int, tied: TokenEmbedding | None = None):
        super().__init__()
        self.tied = tied
        if tied is not None and tied.embedding_dim != dim:
            raise ValueError(f"tie_output needs decoder output size ({dim}) == embeddings.dim "
                             f"({tied.embedding_dim})")
        self.weight = None if tied is not None else nn.Parameter(nn.init.normal_(
            nn.Parameter(Tensor(vocab_size, dim)), 0.0, dim ** -0.5))
        self.bias = nn.Parameter(Tensor(vocab_size).zero_())

    @property
    def matrix(self) -> Tensor:
        """The (V, D) projection matrix (the target embedding when tied)."""
        return self.tied.weight if self.tied is not None else self.weight

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.matrix, self.bias)


class Positions(nn.Module):
    """Position encodings added to token embeddings: sinusoidal (Vaswani et al., 2017, section
    3.5, PE(p, 2i) = sin(p / 10000^(2i/d)), PE(p, 2i+1) = cos(...)) or learned (Gehring et al., 2017).

    ``forward(positions)`` takes integer positions of any shape and returns (..., D); the
    sinusoidal table is a non-persistent buffer, so checkpoints do not carry it.
    """

    def __init__(self, kind: str, dim: int, max_positions: int):
        super().__init__()
        self.kind, self.max_positions = kind, max_positions
        if kind == "learned":
            self.table = nn.Embedding(max_positions, dim)
            nn.init.normal_(self.table.weight, 0.0, dim ** -0.5)
        elif kind == "sinusoidal":
            position = torch.arange(max_positions, dtype=torch.float32).unsqueeze(1)
            rate = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
            table = torch.zeros(max_positions, dim)
            table[:, 0::2] = torch.sin(position * rate)
            table[:, 1::2] = torch.cos(position * rate[: dim // 2])
            self.register_buffer("sinusoid", table, persistent=False)
        else:
            raise ValueError(f"positions must be 'sinusoidal' or 'learned', got {kind!r}")

    def forward(self, positions: Tensor) -> Tensor:
        if self.kind == "learned":
            return self.table(positions)
        return F.embedding(positions, self.sinusoid)
