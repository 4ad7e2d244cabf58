"""Transformer decoder (Vaswani et al., 2017, section 3.1) with explicit key/value caches.

Each layer: causal self-attention, multi-head cross-attention over the encoder memory (the
recipe's ``attention: {type: multihead}``), feed-forward. Its step state is flat and named, as
the decoding contract requires::

    position         (B,)             int64, the position of the token being fed
    self_keys.<i>    (B, heads, d, t) layer i's self-attention keys of the t tokens so far
    self_values.<i>  (B, heads, t, d) and their values

and the memory carries each layer's projected cross-attention keys ``cross_keys.<i>``
(B, heads, d, S) and values ``cross_values.<i>`` (B, heads, S, d), computed once per source.
A beam search may keep the memory at one row per sentence while the state has K rows per
sentence (``memory_per_sentence``): each sentence's K queries attend in one product per head.
Keys are stored transposed so that a step multiplies ``q @ keys`` and ``weights @ values``
without transposing or copying a cache (the layout fast inference engines use). Beam search
reorders the caches with the same row selection as any other state, and the step exports to one
ONNX graph whose caches grow by one position per call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

from s2s.models.attention.multihead import MultiHeadAttention
from s2s.models.decoders.base import Decoder, State
from s2s.models.transformer import (FeedForward, InputLayer, Residual, SelfAttention, TransformerConfig,
                                   check_transformer_options, transformer_arguments)
from s2s.registry import register


class TransformerDecoderLayer(nn.Module):
    def __init__(self, cross_attention: MultiHeadAttention, hidden: int, heads: int, ffn: int, dropout: float = 0.1,
                 attention_dropout: float = 0.0, activation_dropout: float = 0.0, activation: str = "relu",
                 pre_norm: bool = True):
        super().__init__()
        self.self_attention = SelfAttention(hidden, heads, attention_dropout)
        self.cross_attention = cross_attention
        self.feed_forward = FeedForward(hidden, ffn, activation, activation_dropout)
        self.self_block, self.cross_block, self.ffn_block = (Residual(hidden, dropout, pre_norm) for _ in range(3))

    def cross_keys(self, bank: Tensor) -> tuple[Tensor, Tensor]:
        """memory bank (B, S, Hm) -> keys (B, heads, d, S), values (B, heads, S, d), stored once."""
        keys, values = self.cross_attention.split(self.cross_attention.keys(bank))
        return keys.contiguous(), values.contiguous()

    def forward(self, x: Tensor, keys: Tensor, values: Tensor, src_pad_mask: Tensor, need_weights: bool,
                coverage: Tensor | None = None, all_heads: bool = False):
        """x: (B, T, H) -> (B, T, H) and, with ``need_weights``, cross-attention (B, T, S), or with
        ``all_heads`` each head's (B, heads, T, S); ``coverage``: the coverage before the first
        position (B, S), for a covered layer."""
        x = self.self_block(x, lambda h: self.self_attention(h, causal=True))
        x, weights = self.cross_block(
            x, lambda h: self.cross_attention.attend(h, keys, values, src_pad_mask, need_weights, coverage=coverage,
                                                     all_heads=all_heads))
        return self.ffn_block(x, self.feed_forward), weights

    def step(self, x: Tensor, cache_keys: Tensor, cache_values: Tensor, keys: Tensor, values: Tensor,
             src_pad_mask: Tensor, coverage: Tensor | None = None):
        """x: (B, H) -> (B, H), the grown caches, cross-attention (B, S)."""
        x, cache_keys, cache_values = self.self_block(
            x, lambda h: self.self_attention.step(h, cache_keys, cache_values))
        x, weights = self.cross_block(
            x, lambda h: self.cross_attention.attend(h, keys, values, src_pad_mask, coverage=coverage))
        return self.ffn_block(x, self.feed_forward), cache_keys, cache_values, weights


@dataclass(frozen=True)
class TransformerDecoderConfig(TransformerConfig):
    copy: bool = False  # pointer-generator copy attention (s2s.models.copy) over the reported attention
    coverage: bool = False  # the sum of past reported attention feeds the last layer's cross-attention
    attention_head: int = -1  # the last layer's head reported (copy, coverage, alignments); -1 = their mean

    def __post_init__(self) -> None:
        super().__post_init__()
        if not -1 <= self.attention_head < self.heads:
            raise ValueError(f"attention_head must be -1 (the heads' mean) or a head in 0..{self.heads - 1}, "
                             f"got {self.attention_head}")


@register("decoder", "transformer", TransformerDecoderConfig)
class TransformerDecoder(Decoder):
    """``make_attention(out_dim=hidden)`` makes one layer's cross-attention (a
    :class:`MultiHeadAttention`); it is called once per layer, after the input layer is built.
    The other arguments are those of :class:`~s2s.models.encoders.transformer.TransformerEncoder`.

    The decoder reports the last layer's cross-attention: the heads' mean, or head
    ``attention_head``. With ``coverage`` the state carries the sum of the reported attention over
    past steps (B, S), which feeds the last layer's cross-attention scores (a learned weight per
    head); only the last layer, so that the teacher-forced pass stays parallel in every other
    layer and loops over positions only for the scores of that one."""

    attention_types = ("multihead",)  # what `attention.type` may name for this decoder
    memory_per_sentence = True  # cross-attention groups a sentence's K queries (MultiHeadAttention)

    def __init__(self, embed_dim: int, make_attention: Callable[..., nn.Module], hidden: int = 256, layers: int = 3,
                 heads: int = 4, ffn: int = 1024, dropout: float = 0.1, attention_dropout: float = 0.0,
                 activation_dropout: float = 0.0, activation: str = "relu", pre_norm: bool = True,
                 positions: str = "sinusoidal", max_positions: int = 1024, scale_embeddings: bool = True,
                 coverage: bool = False, attention_head: int = -1):
        super().__init__()
        check_transformer_options(hidden, layers, heads, ffn, max_positions, dropout, attention_dropout,
                                  activation_dropout, activation)
        self.input = InputLayer(embed_dim, hidden, positions, max_positions, dropout, scale_embeddings)
        cross = [make_attention(out_dim=hidden) for _ in range(layers)]
        if not all(isinstance(c, MultiHeadAttention) for c in cross):
            raise ValueError("a transformer decoder needs attention.type: multihead")
        self.layers = nn.ModuleList(
            TransformerDecoderLayer(c, hidden, heads, ffn, dropout, attention_dropout, activation_dropout, activation,
                                    pre_norm)
            for c in cross)
        self.final_norm = nn.LayerNorm(hidden) if pre_norm else None
        self.hidden, self.heads, self.output_dim = hidden, heads, hidden
        if not -1 <= attention_head < heads:
            raise ValueError(f"attention_head must be -1 or a head in 0..{heads - 1}, got {attention_head}")
        reported = self.layers[-1].cross_attention
        reported.head = None if attention_head < 0 else attention_head
        self.coverage = coverage
        if coverage:
            reported.use_coverage()

    @classmethod
    def from_config(cls, config: TransformerDecoderConfig, embed_dim: int, memory_dim: int, summary_dim: int,
                    make_attention: Callable[..., nn.Module]) -> "TransformerDecoder":
        return cls(embed_dim, make_attention, **transformer_arguments(config), coverage=config.coverage,
                   attention_head=config.attention_head)

    def precompute(self, memory: State) -> State:
        out = {}
        for i, layer in enumerate(self.layers):
            out[f"cross_keys.{i}"], out[f"cross_values.{i}"] = layer.cross_keys(memory["memory_bank"])
        return out

    def init_state(self, summary: Tensor, memory: State) -> State:
        """Empty caches and position 0; the encoder's summary is not used."""
        bank = memory["memory_bank"]
        batch, heads = bank.size(0), self.heads
        state = {"position": torch.zeros_like(memory["src_pad_mask"][:, 0], dtype=torch.long)}
        for i in range(len(self.layers)):
            state[f"self_keys.{i}"] = bank.new_zeros(batch, heads, self.hidden // heads, 0)
            state[f"self_values.{i}"] = bank.new_zeros(batch, heads, 0, self.hidden // heads)
        if self.coverage:
            state["coverage"] = torch.zeros_like(memory["src_pad_mask"], dtype=bank.dtype)
        return state

    def state_axes(self) -> dict[str, dict[int, str]]:
        axes = super().state_axes()
        for i in range(len(self.layers)):
            axes[f"self_keys.{i}"], axes[f"self_values.{i}"] = {3: "steps"}, {2: "steps"}
        return axes

    def memory_axes(self) -> dict[str, dict[int, str]]:
        axes = {}
        for i in range(len(self.layers)):
            axes[f"cross_keys.{i}"], axes[f"cross_values.{i}"] = {3: "src_len"}, {2: "src_len"}
        return axes

    def step(self, prev_emb: Tensor, state: State, memory: State) -> tuple[Tensor, State, Tensor]:
        position = state["position"]
        x = self.input(prev_emb, position)
        next_state = {"position": position + 1}
        last = len(self.layers) - 1
        coverage = state.get("coverage")
        for i, layer in enumerate(self.layers):
            x, next_state[f"self_keys.{i}"], next_state[f"self_values.{i}"], attn = layer.step(
                x, state[f"self_keys.{i}"], state[f"self_values.{i}"], memory[f"cross_keys.{i}"],
                memory[f"cross_values.{i}"], memory["src_pad_mask"], coverage if i == last else None)
        if coverage is not None:
            next_state["coverage"] = coverage + attn
        if self.final_norm is not None:
            x = self.final_norm(x)
        return x, next_state, attn

    def forward(self, tgt_emb: Tensor, state: State, memory: State) -> tuple[Tensor, Tensor]:
        """Teacher forcing from the initial (empty) state: causal self-attention over the whole
        target. Only the last layer computes explicit cross-attention weights; the others run
        fused attention."""
        x, weights = self._teacher_forced(tgt_emb, state, memory, all_heads=False)
        return x, weights[-1]

    def head_attention(self, tgt_emb: Tensor, state: State, memory: State) -> list[Tensor]:
        """Teacher forcing; every layer's cross-attention, each head apart: (B, heads, T, S) per layer."""
        return self._teacher_forced(tgt_emb, state, memory, all_heads=True)[1]

    def _teacher_forced(self, tgt_emb: Tensor, state: State, memory: State,
                        all_heads: bool) -> tuple[Tensor, list[Tensor | None]]:
        """Outputs (B, T, H) and each layer's cross-attention: the last layer's reported attention
        (B, T, S) and None for the others, or with ``all_heads`` every layer's heads (B, heads, T, S)."""
        self.input.check_length(tgt_emb.size(1), "a target")
        x = self.input(tgt_emb, torch.arange(tgt_emb.size(1), device=tgt_emb.device))
        last, weights = len(self.layers) - 1, []
        for i, layer in enumerate(self.layers):
            x, attn = layer(x, memory[f"cross_keys.{i}"], memory[f"cross_values.{i}"], memory["src_pad_mask"],
                            need_weights=all_heads or i == last,
                            coverage=state.get("coverage") if i == last else None, all_heads=all_heads)
            weights.append(attn)
        if self.final_norm is not None:
            x = self.final_norm(x)
        return x, weights
