"""The encoder protocol: embeddings in, memory bank and a summary vector out."""

from __future__ import annotations

from torch import Tensor, nn


class Encoder(nn.Module):
    """``forward(src_emb, src_lengths, src_pad_mask) -> (memory_bank, summary)``.

    src_emb: (B, S, E); src_lengths: (B,); src_pad_mask: (B, S) True at padding.
    memory_bank: (B, S, output_dim), zero at padding; summary: (B, summary_dim), what a
    decoder's bridge starts from (final RNN states, or pooled states for a transformer).
    """

    output_dim: int
    summary_dim: int

    def forward(self, src_emb: Tensor, src_lengths: Tensor, src_pad_mask: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError
