"""Transformer encoder (Vaswani et al., 2017, section 3.1): self-attention and feed-forward
layers over scaled token embeddings plus positions.

Its summary for an RNN decoder's bridge is the mean of the final states over real source
positions (B, H), so a transformer encoder can feed any decoder.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from s2s.models.encoders.base import Encoder
from s2s.models.transformer import FeedForward, InputLayer, Residual, SelfAttention, TransformerConfig
from s2s.registry import register


class TransformerEncoderLayer(nn.Module):
    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.self_attention = SelfAttention(config.hidden, config.heads, config.attention_dropout)
        self.feed_forward = FeedForward(config)
        self.attention_block = Residual(config.hidden, config.dropout, config.pre_norm)
        self.ffn_block = Residual(config.hidden, config.dropout, config.pre_norm)

    def forward(self, x: Tensor, src_pad_mask: Tensor) -> Tensor:
        x = self.attention_block(x, lambda h: self.self_attention(h, src_pad_mask))
        return self.ffn_block(x, self.feed_forward)


@register("encoder", "transformer", TransformerConfig)
class TransformerEncoder(Encoder):
    def __init__(self, input_size: int, config: TransformerConfig):
        super().__init__()
        self.input = InputLayer(input_size, config)
        self.layers = nn.ModuleList(TransformerEncoderLayer(config) for _ in range(config.layers))
        self.final_norm = nn.LayerNorm(config.hidden) if config.pre_norm else None
        self.output_dim = self.summary_dim = config.hidden

    @classmethod
    def from_config(cls, config: TransformerConfig, input_size: int) -> "TransformerEncoder":
        return cls(input_size, config)

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
