"""Attentional LSTM/GRU decoder with Luong input feeding and a bridge from the encoder.

One step (Luong, Pham and Manning, 2015, eq. 5; input feeding, section 3.3)::

    x_t      = [E y_{t-1}; c_t (attention before the RNN, Bahdanau); h~_{t-1} (input feeding)]
    h_t      = RNN(x_t, h_{t-1})                     (stacked, dropout between layers)
    c_t      = attend(h_t) for Luong scorers; attend(h_{t-1}) was used above for Bahdanau
    h~_t     = tanh(W_c [c_t; h_t])                  -> dropout -> output projection

With ``coverage`` the state also carries the attention summed over past steps, which feeds the
scorer (See, Liu and Manning, 2017, eq. 11) and grows by each step's attention.

The teacher-forced pass projects the embeddings of every target position in one matrix product
and then runs the same :meth:`RNNDecoder._advance` as :meth:`RNNDecoder.step`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from s2s.cpu import functional as fn
from s2s.models.attention.base import Attention
from s2s.models.decoders.base import Decoder, State
from s2s.models.recurrent import RecurrentCell, check_rnn_options, lstm_update, variational_mask
from s2s.cpu.steplinear import PLAIN, StepLinears
from s2s.registry import register

Feedback = Callable[[int, Tensor], "tuple[Tensor, Tensor] | None"]  # see RNNDecoder.forward


@dataclass(frozen=True)
class RNNDecoderConfig:
    type: str = "lstm"
    hidden: int = 256
    layers: int = 2
    dropout: float = 0.2
    input_feeding: bool = True
    bridge: Literal["dense", "zero"] = "dense"
    residual: bool = False
    layer_norm: bool = False
    recurrent_dropout: float = 0.0
    weight_drop: float = 0.0
    copy: bool = False  # pointer-generator copy attention (s2s.models.copy)
    coverage: bool = False  # the sum of past attention feeds the scorer (See et al., 2017)

    def __post_init__(self) -> None:
        check_rnn_options(self.type, self.hidden, self.layers, self.dropout, self.recurrent_dropout, self.weight_drop)


@register("decoder", "lstm", RNNDecoderConfig)
@register("decoder", "gru", RNNDecoderConfig)
class RNNDecoder(Decoder):
    """``kind``: "lstm" or "gru"; ``attention``: the scorer over a memory of ``memory_dim``;
    ``summary_dim``: the encoder summary the ``bridge`` ("dense" or "zero") starts from."""

    sampling = "stepwise"

    def __init__(self, kind: str, embed_dim: int, memory_dim: int, summary_dim: int, attention: Attention,
                 hidden: int = 256, layers: int = 2, dropout: float = 0.2, input_feeding: bool = True,
                 bridge: str = "dense", residual: bool = False, layer_norm: bool = False,
                 recurrent_dropout: float = 0.0, weight_drop: float = 0.0, coverage: bool = False):
        super().__init__()
        check_rnn_options(kind, hidden, layers, dropout, recurrent_dropout, weight_drop)
        if bridge not in ("dense", "zero"):
            raise ValueError(f"bridge must be 'dense' or 'zero', got {bridge!r}")
        extra = (memory_dim if attention.query_before_rnn else 0) + (hidden if input_feeding else 0)
        self.cells = nn.ModuleList(
            RecurrentCell(kind, embed_dim if depth == 0 else hidden, hidden, layer_norm)
            for depth in range(layers)
        )
        # Layer 0's input weights for [context; feed], kept apart from the embedding block so
        # both stay contiguous: the embedding block runs once over the whole target.
        gates = self.cells[0].weight_ih.size(0)
        self.extra_weight = nn.Parameter(torch.empty(gates, extra)) if extra else None
        if extra:
            nn.init.uniform_(self.extra_weight, -hidden ** -0.5, hidden ** -0.5)
        self.attention, self.embed_dim, self.output_dim = attention, embed_dim, hidden
        self.input_feeding, self.residual = input_feeding, residual
        self.recurrent_dropout, self.weight_drop = recurrent_dropout, weight_drop
        self.dropout = fn.Dropout(dropout)
        self.combine = nn.Linear(memory_dim + hidden, hidden, bias=False)  # W_c
        self.bridge_hidden = nn.Linear(summary_dim, layers * hidden) if bridge == "dense" else None
        self.bridge_cell = (nn.Linear(summary_dim, layers * hidden)
                            if bridge == "dense" and kind == "lstm" else None)
        self.coverage = coverage
        if coverage:
            attention.use_coverage()

    @classmethod
    def from_config(cls, config: RNNDecoderConfig, embed_dim: int, memory_dim: int, summary_dim: int,
                    make_attention: Callable[..., Attention]) -> "RNNDecoder":
        return cls(config.type, embed_dim, memory_dim, summary_dim, make_attention(), hidden=config.hidden,
                   layers=config.layers, dropout=config.dropout, input_feeding=config.input_feeding,
                   bridge=config.bridge, residual=config.residual, layer_norm=config.layer_norm,
                   recurrent_dropout=config.recurrent_dropout, weight_drop=config.weight_drop,
                   coverage=config.coverage)

    @property
    def has_cell(self) -> bool:
        return self.cells[0].has_cell

    def precompute(self, memory: State) -> State:
        return {"attention_keys": self.attention.keys(memory["memory_bank"])}

    def init_state(self, summary: Tensor, memory: State) -> State:
        """summary: (B, D) -> hidden/cell (B, L, H), feed (B, H), coverage (B, S) zeros."""
        batch, layers, hidden = summary.size(0), len(self.cells), self.output_dim
        zeros = summary.new_zeros(batch, layers, hidden)
        state = {"hidden": zeros if self.bridge_hidden is None
                 else torch.tanh(self.bridge_hidden(summary)).view(batch, layers, hidden)}
        if self.has_cell:
            state["cell"] = zeros if self.bridge_cell is None else self.bridge_cell(summary).view(batch, layers, hidden)
        if self.input_feeding:
            state["feed"] = summary.new_zeros(batch, hidden)
        if self.coverage:
            state["coverage"] = torch.zeros_like(memory["src_pad_mask"], dtype=summary.dtype)
        return state

    @property
    def _fusable(self) -> bool:
        """LSTM layers without layer norm take [input; hidden] times one matrix in training."""
        return self.has_cell and not self.cells[0].layer_norm

    def _advance(self, x_emb: Tensor, hs: list[Tensor], cs: list[Tensor | None], feed: Tensor | None,
                 coverage: Tensor | None, memory: State, plan: _Pass):
        """One step on per-layer lists. x_emb: (B, G*H), the embedding block of layer 0's input
        (with both of layer 0's biases when the plan is fused); coverage: (B, S) or None."""
        keys, bank, pad = memory["attention_keys"], memory["memory_bank"], memory["src_pad_mask"]
        linear = plan.linear
        extra = []
        if self.attention.query_before_rnn:
            context, attn = self.attention(hs[-1], keys, bank, pad, linear, coverage)
            extra.append(context)
        if feed is not None:
            extra.append(feed)
        new_hs, new_cs, inp = [], [], None
        for depth, cell in enumerate(self.cells):
            mask = plan.masks[depth]
            h_in = hs[depth] if mask is None else hs[depth] * mask
            below = extra if depth == 0 else [self.dropout(inp)]
            if plan.fused:  # one product: [below; hidden] @ [W_below | W_hh]^T + biases
                bias = x_emb if depth == 0 else plan.biases[depth]
                h, c = lstm_update(linear(torch.cat([*below, h_in], -1), plan.matrices[depth], bias), cs[depth])
            else:
                if depth == 0:
                    x = x_emb + linear(torch.cat(extra, -1), self.extra_weight) if extra else x_emb
                else:
                    x = linear(below[0], cell.weight_ih)
                h, c = cell.activate(x, linear(h_in, plan.matrices[depth]), hs[depth], cs[depth])
            new_hs.append(h)
            new_cs.append(c)
            inp = h + inp if self.residual and depth else h
        if not self.attention.query_before_rnn:
            context, attn = self.attention(inp, keys, bank, pad, linear, coverage)
        out = self.dropout(fn.tanh(linear(torch.cat([context, inp], -1), self.combine.weight)))
        coverage = None if coverage is None else coverage + attn
        return out, new_hs, new_cs, (out if self.input_feeding else None), coverage, attn

    def _unpack(self, state: State):
        hs = list(state["hidden"].unbind(1))
        cs = list(state["cell"].unbind(1)) if self.has_cell else [None] * len(self.cells)
        return hs, cs, state.get("feed"), state.get("coverage")

    def _pack(self, hs, cs, feed, coverage) -> State:
        state = {"hidden": torch.stack(hs, 1)}
        if self.has_cell:
            state["cell"] = torch.stack(cs, 1)
        if feed is not None:
            state["feed"] = feed
        if coverage is not None:
            state["coverage"] = coverage
        return state

    def step(self, prev_emb: Tensor, state: State, memory: State) -> tuple[Tensor, State, Tensor]:
        x_emb = self.cells[0].input_linear(prev_emb)
        plan = _Pass(PLAIN, False, [cell.weight_hh for cell in self.cells], [], [None] * len(self.cells))
        out, hs, cs, feed, coverage, attn = self._advance(x_emb, *self._unpack(state), memory, plan)
        return out, self._pack(hs, cs, feed, coverage), attn

    def forward(self, tgt_emb: Tensor, state: State, memory: State,
                feedback: Feedback | None = None) -> tuple[Tensor, Tensor]:
        """Teacher forcing over the whole target. With gradients, each weight's gradient is
        formed once for all steps (:mod:`s2s.cpu.steplinear`), and LSTM layers multiply
        [input; hidden] by one concatenated matrix with their two biases summed.

        ``feedback(t, out) -> (rows, embeddings) | None`` (scheduled sampling) replaces the
        inputs of ``rows`` at step t >= 1 by ``embeddings`` (N, E), chosen from the output of
        step t - 1."""
        cells = self.cells
        weights_hh = [cell.recurrent_weight(self.weight_drop) for cell in cells]
        p = self.recurrent_dropout if self.training else 0.0
        masks = [variational_mask(tgt_emb.size(0), self.output_dim, p, tgt_emb) for _ in cells]
        linear = StepLinears(deferred=torch.is_grad_enabled())
        if self._fusable:
            bias = cells[0].bias_ih + cells[0].bias_hh
            input_block = lambda emb: F.linear(emb, cells[0].weight_ih, bias)  # noqa: E731
            x_emb = input_block(tgt_emb)  # (B, T, G*H)
            first = weights_hh[0] if self.extra_weight is None else torch.cat([self.extra_weight, weights_hh[0]], 1)
            matrices = [first] + [torch.cat([c.weight_ih, w], 1) for c, w in zip(cells[1:], weights_hh[1:])]
            plan = _Pass(linear, True, matrices, [None] + [c.bias_ih + c.bias_hh for c in cells[1:]], masks)
        else:
            input_block = cells[0].input_linear
            x_emb = input_block(tgt_emb)  # (B, T, G*H) at once
            plan = _Pass(linear, False, weights_hh, [], masks)
        hs, cs, feed, coverage = self._unpack(state)
        outs, attns = [], []
        for t, x_t in enumerate(x_emb.unbind(1)):  # unbind: one gradient stack, not a zero-filled copy per step
            if feedback is not None and t and (fed := feedback(t, out)) is not None:
                x_t = x_t.index_copy(0, fed[0], input_block(fed[1]).to(x_t.dtype))
            out, hs, cs, feed, coverage, attn = self._advance(x_t, hs, cs, feed, coverage, memory, plan)
            outs.append(out)
            attns.append(attn)
        return torch.stack(outs, 1), torch.stack(attns, 1)


@dataclass
class _Pass:
    """What every step of one pass uses: the linear maps, whether LSTM layers are fused, each
    layer's recurrent matrix (fused: [W_below | W_hh]) and summed biases, recurrent masks."""

    linear: StepLinears
    fused: bool
    matrices: list[Tensor]
    biases: list[Tensor | None]
    masks: list[Tensor | None]
