"""Pieces shared by the transformer encoder and decoder (Vaswani et al., 2017).

Each sub-layer (self-attention, cross-attention, feed-forward) sits in a residual block, with
layer normalization after the residual sum (post-norm, the paper's section 5.4 layout) or
before the sub-layer (pre-norm, Xiong et al., 2020; a final normalization then closes the
stack). Full-sequence attention uses ``F.scaled_dot_product_attention`` so GPUs get fused
kernels; the decoder's one-query step uses explicit products over its key/value cache.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from s2s.cpu import functional as fn
from s2s.models.embeddings import Positions


def check_transformer_options(hidden: int, layers: int, heads: int, ffn: int, max_positions: int, dropout: float,
                              attention_dropout: float, activation_dropout: float, activation: str) -> None:
    """Checks of a transformer encoder or decoder, run on the config and again when a module is
    built from plain arguments."""
    if min(hidden, layers, heads, ffn, max_positions) <= 0:
        raise ValueError("hidden, layers, heads, ffn and max_positions must be positive")
    if hidden % heads:
        raise ValueError(f"hidden ({hidden}) must be divisible by heads ({heads})")
    for name, rate in (("dropout", dropout), ("attention_dropout", attention_dropout),
                       ("activation_dropout", activation_dropout)):
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {rate}")
    if activation not in ("relu", "gelu"):
        raise ValueError(f"activation must be 'relu' or 'gelu', got {activation!r}")


@dataclass(frozen=True)
class TransformerConfig:
    type: str = "transformer"
    hidden: int = 256  # d_model
    layers: int = 3
    heads: int = 4
    ffn: int = 1024  # inner size of the position-wise feed-forward network
    dropout: float = 0.1  # on embeddings+positions and on each sub-layer's output
    attention_dropout: float = 0.0  # on self-attention weights (cross-attention: attention.dropout)
    activation_dropout: float = 0.0  # inside the feed-forward network, after the activation
    activation: Literal["relu", "gelu"] = "relu"
    pre_norm: bool = True
    positions: Literal["sinusoidal", "learned"] = "sinusoidal"
    max_positions: int = 1024
    scale_embeddings: bool = True  # multiply token embeddings by sqrt(hidden) (section 3.4)

    def __post_init__(self) -> None:
        check_transformer_options(self.hidden, self.layers, self.heads, self.ffn, self.max_positions, self.dropout,
                                  self.attention_dropout, self.activation_dropout, self.activation)


def transformer_arguments(config: TransformerConfig) -> dict:
    """The keyword arguments of :class:`TransformerEncoder` and :class:`TransformerDecoder` (besides
    their inputs) from their shared config: what their ``from_config`` passes."""
    return dict(hidden=config.hidden, layers=config.layers, heads=config.heads, ffn=config.ffn,
                dropout=config.dropout, attention_dropout=config.attention_dropout,
                activation_dropout=config.activation_dropout, activation=config.activation,
                pre_norm=config.pre_norm, positions=config.positions, max_positions=config.max_positions,
                scale_embeddings=config.scale_embeddings)


class InputLayer(nn.Module):
    """Token embeddings (B, T, E) -> scaled, projected to ``hidden`` when E differs, plus positions."""

    def __init__(self, embed_dim: int, hidden: int, positions: str = "sinusoidal", max_positions: int = 1024,
                 dropout: float = 0.1, scale_embeddings: bool = True):
        super().__init__()
        self.proj = nn.Linear(embed_dim, hidden, bias=False) if embed_dim != hidden else None
        self.scale = math.sqrt(embed_dim) if scale_embeddings else 1.0
        self.positions = Positions(positions, hidden, max_positions)
        self.dropout = fn.Dropout(dropout)

    def forward(self, emb: Tensor, positions: Tensor) -> Tensor:
        """emb: (B, T, E) or (B, E); positions: (T,) or (B,) integer positions."""
        x = emb * self.scale if self.scale != 1.0 else emb
        if self.proj is not None:
            x = self.proj(x)
        return self.dropout(x + self.positions(positions))

    def check_length(self, length: int, side: str) -> None:
        if length > self.positions.max_positions:
            raise ValueError(f"{side} of {length} tokens exceeds max_positions "
                             f"({self.positions.max_positions}) of the transformer")


class FeedForward(nn.Module):
    """FFN(x) = W_2 act(W_1 x + b_1) + b_2 (section 3.3)."""

    def __init__(self, hidden: int, ffn: int, activation: str = "relu", activation_dropout: float = 0.0):
        super().__init__()
        self.inner = nn.Linear(hidden, ffn)
        self.outer = nn.Linear(ffn, hidden)
        self.activation = F.gelu if activation == "gelu" else F.relu
        self.dropout = fn.Dropout(activation_dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.outer(self.dropout(self.activation(self.inner(x))))


class SelfAttention(nn.Module):
    """Multi-head self-attention with one packed [W^Q; W^K; W^V] projection."""

    def __init__(self, hidden: int, heads: int, dropout: float):
        super().__init__()
        self.hidden, self.heads, self.dropout = hidden, heads, dropout
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.out = nn.Linear(hidden, hidden)

    def forward(self, x: Tensor, key_pad_mask: Tensor | None = None, causal: bool = False) -> Tensor:
        """x: (B, T, H); key_pad_mask: (B, T) True at padding; causal: position t sees <= t."""
        batch, steps, _ = x.shape
        q, k, v = self.qkv(x).unflatten(-1, (3, self.heads, -1)).permute(2, 0, 3, 1, 4).unbind(0)
        mask = None if key_pad_mask is None else ~key_pad_mask.view(batch, 1, 1, steps)
        context = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal,
                                                 dropout_p=self.dropout if self.training else 0.0)
        return self.out(context.transpose(1, 2).reshape(batch, steps, self.hidden))

    def step(self, x: Tensor, cache_keys: Tensor, cache_values: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """x: (B, H); caches: keys (B, heads, d, t), values (B, heads, t, d) -> output (B, H) and
        the caches grown by this position (keys stored transposed: no copy of the cache to score)."""
        # Shapes use -1 and constants only, never x.size(0): the exported step then has no shape
        # arithmetic (Shape/Gather/Concat chains), which costs per call at small batches.
        size = self.hidden // self.heads
        q, k, v = self.qkv(x).split(self.hidden, -1)
        cache_keys = torch.cat([cache_keys, k.view(-1, self.heads, size, 1)], -1)
        cache_values = torch.cat([cache_values, v.view(-1, self.heads, 1, size)], 2)
        scores = torch.matmul(q.view(-1, self.heads, 1, size) * size ** -0.5, cache_keys)  # (B, heads, 1, t+1)
        context = torch.matmul(torch.softmax(scores, -1), cache_values)  # (B, heads, 1, d)
        return self.out(context.flatten(1)), cache_keys, cache_values


class Residual(nn.Module):
    """x + dropout(f(LN(x))) (pre-norm) or LN(x + dropout(f(x))) (post-norm)."""

    def __init__(self, hidden: int, dropout: float, pre_norm: bool):
        super().__init__()
        self.norm, self.dropout, self.pre_norm = nn.LayerNorm(hidden), fn.Dropout(dropout), pre_norm

    def forward(self, x: Tensor, sublayer: Callable[[Tensor], Tensor | tuple]) -> Tensor | tuple:
        """A sublayer may return ``(output, *extras)`` (a cache, attention weights): the
        residual applies to ``output`` and the extras come back after it."""
        out = sublayer(self.norm(x) if self.pre_norm else x)
        out, extras = (out[0], out[1:]) if isinstance(out, tuple) else (out, ())
        y = x + self.dropout(out)
        if not self.pre_norm:
            y = self.norm(y)
        return (y, *extras) if extras else y
