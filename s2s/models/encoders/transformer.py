"""Transformer encoder (Vaswani et al., 2017, section 3.1): self-attention and feed-forward
layers over scaled token embeddings plus positions.

Its summary for an RNN decoder's bridge is the mean of the final states over real source
positions (B, H), so a transformer encoder can feed any decoder.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from s2s.models.encoders.base import Encoder
from s2s.models.transformer import (FeedForward, InputLayer, Residual, SelfAttention, TransformerConfig,
                                   check_transformer_options, transformer_arguments)
from s2s.registry import register


class TransformerEncoderLayer(nn.Module):
    def __init__(self, hidden: int, heads: int, ffn: int, dropout: float = 0.1, attention_dropout: float = 0.0,
                 activation_dropout: float = 0.0, activation: str = "relu", pre_norm: bool = True):
        super().__init__()
        self.self_attention = SelfAttention(hidden, heads, attention_dropout)
        self.feed_forward = FeedForward(hidden, ffn, activation, activation_dropout)
        self.attention_block = Residual(hidden, dropout, pre_norm)
        self.ffn_block = Residual(hidden, dropout, pre_norm)

    def forward(self, x: Tensor, src_pad_mask: Tensor) -> Tensor:
        x = self.attention_block(x, lambda h: self.self_attention(h, src_pad_mask))
        return self.ffn_block(x, self.feed_forward)


@register("encoder", "transformer", TransformerConfig)
class TransformerEncoder(Encoder):
    """``hidden`` is d_model, ``ffn`` the feed-forward inner size; ``dropout`` applies to
    embeddings+positions and to each sub-layer's output, ``attention_dropout`` to the attention
    weights, ``activation_dropout`` inside the feed-forward network."""

    def __init__(self, input_size: int, hidden: int = 256, layers: int = 3, heads: int = 4, ffn: int = 1024,
                 dropout: float = 0.1, attention_dropout: float = 0.0, activation_dropout: float = 0.0,
                 activation: str = "relu", pre_norm: bool = True, positions: str = "sinusoidal",
                 max_positions: int = 1024, scale_embeddings: bool = True):
        super().__init__()
        check_transformer_options(hidden, layers, heads, ffn, max_positions, dropout, attention_dropout,
                                  activation_dropout, activation)
        self.input = InputLayer(input_size, hidden, positions, max_positions, dropout, scale_embeddings)
        self.layers = nn.ModuleList(
            TransformerEncoderLayer(hidden, heads, ffn, dropout, attention_dropout, activation_dropout, activation,
                                    pre_norm)
            for _ in range(layers))
        self.final_norm = nn.LayerNorm(hidden) if pre_norm else None
        self.output_dim = self.summary_dim = hidden

    @classmethod
    def from_config(cls, config: TransformerConfig, input_size: int) -> "TransformerEncoder":
        return cls(input_size, **transformer_arguments(config))

    def forward(self, src_emb: Tensor, src_lengths: Tensor, src_pad_mask: Tensor) -> tuple[Tensor, Tensor]:
        """src_emb: (B, S, E) -> memory bank (B, S, H) zero at padding, summary (B, H)."""
        self.input.check_length(src_emb.size(1), "a source")
        x = self.input(src_emb, torch.arange(src_emb.size(1), device=src_emb.device))
        for layer in self.layers:
            x = layer(x, src_pad_mask)
        if self.final_norm is not None:
            x = self.final_norm(x)
        bank = x.masked_fill(src_pad_mask.unsqueeze(-1), 0.0)
        summary = bank.sum(1) / src_lengths.unsqueeze(1).to(bank.dtype)
        return bank, summary
