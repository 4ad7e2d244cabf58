"""Recurrent encoders: LSTM or GRU, bidirectional, stacked, residual, with the options of
:mod:`s2s.models.recurrent`.

The default path runs PyTorch's fused LSTM/GRU kernels over the padded batch (see
:class:`_FusedLayer`); layer normalization, recurrent dropout and weight drop switch to the
step-by-step cells.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from s2s.cpu import functional as fn
from s2s.models.encoders.base import Encoder
from s2s.models.recurrent import CustomRecurrentLayer, check_rnn_options, reverse_padded
from s2s.registry import register


@dataclass(frozen=True)
class RNNEncoderConfig:
    type: str = "lstm"
    hidden: int = 128  # per direction
    layers: int = 2
    bidirectional: bool = True
    dropout: float = 0.2  # between layers
    residual: bool = False  # add each layer's input to its output when sizes match (layers >= 2)
    layer_norm: bool = False
    recurrent_dropout: float = 0.0
    weight_drop: float = 0.0

    def __post_init__(self) -> None:
        check_rnn_options(self.type, self.hidden, self.layers, self.dropout, self.recurrent_dropout, self.weight_drop)


class _FusedLayer(nn.Module):
    """One (bi)directional layer on PyTorch's fused kernel.

    The padded batch runs through the fused kernel as it is (no packing): on CPU that takes
    oneDNN's RNN primitive, which trained the benchmark encoder faster than the packed path
    (measured effect: ``exported/README.md``, "Where the speed code's figures live"). Padding cannot leak into real positions: the forward direction is causal, and
    the backward direction runs forward over each sequence reversed within its length
    (:func:`reverse_padded`), so its padding also comes last. Final states are read at each
    sequence's last real step and outputs at padding are zeroed, exactly what packing gives.
    The parameters are those of ``nn.LSTM``/``nn.GRU`` (``weight_ih_l0``, ``..._reverse``).
    """

    def __init__(self, kind: str, input_size: int, hidden: int, bidirectional: bool):
        super().__init__()
        rnn = nn.LSTM if kind == "lstm" else nn.GRU
        self.kind = kind
        self.rnn = rnn(input_size, hidden, batch_first=True, bidirectional=bidirectional)

    def _direction(self, x: Tensor, suffix: str) -> Tensor:
        r = self.rnn
        weights = [getattr(r, f"{name}_l0{suffix}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        h0 = x.new_zeros(1, x.size(0), r.hidden_size)
        if self.kind == "lstm":
            return torch.lstm(x, (h0, h0), weights, True, 1, 0.0, self.training, False, True)[0]
        return torch.gru(x, h0, weights, True, 1, 0.0, self.training, False, True)[0]

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """x: (B, S, I), lengths: (B,) -> outputs (B, S, dirs*H) (zero at padding), final h (B, dirs*H)."""
        valid = torch.arange(x.size(1), device=x.device).unsqueeze(0) < lengths.unsqueeze(1)
        last = (lengths - 1).view(-1, 1, 1).expand(-1, 1, self.rnn.hidden_size)
        outs = [self._direction(x, "")]
        if self.rnn.bidirectional:
            outs.append(reverse_padded(self._direction(reverse_padded(x, lengths), "_reverse"), lengths))
        finals = [outs[0].gather(1, last).squeeze(1)]
        if len(outs) == 2:  # the backward direction ends at position 0
            finals.append(outs[1][:, 0])
        out = torch.cat(outs, -1) if len(outs) == 2 else outs[0]
        return out * valid.unsqueeze(-1).to(out.dtype), torch.cat(finals, -1)


class _CustomLayer(nn.Module):
    """One (bi)directional layer on the step-by-step cells."""

    def __init__(self, kind: str, input_size: int, hidden: int, bidirectional: bool, layer_norm: bool = False,
                 recurrent_dropout: float = 0.0, weight_drop: float = 0.0):
        super().__init__()
        make = lambda: CustomRecurrentLayer(kind, input_size, hidden, layer_norm,  # noqa: E731
                                            recurrent_dropout, weight_drop)
        self.forward_rnn = make()
        self.backward_rnn = make() if bidirectional else None

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        out, h = self.forward_rnn(x, lengths)
        if self.backward_rnn is None:
            return out, h
        back, h_back = self.backward_rnn(reverse_padded(x, lengths), lengths)
        return torch.cat([out, reverse_padded(back, lengths)], dim=-1), torch.cat([h, h_back], dim=-1)


@register("encoder", "lstm", RNNEncoderConfig)
@register("encoder", "gru", RNNEncoderConfig)
class RNNEncoder(Encoder):
    """``kind``: "lstm" or "gru"; ``hidden`` is per direction; ``dropout`` applies between layers;
    ``residual`` adds a layer's input to its output where the sizes match (layers >= 2)."""

    def __init__(self, kind: str, input_size: int, hidden: int = 128, layers: int = 2, bidirectional: bool = True,
                 dropout: float = 0.2, residual: bool = False, layer_norm: bool = False,
                 recurrent_dropout: float = 0.0, weight_drop: float = 0.0):
        super().__init__()
        check_rnn_options(kind, hidden, layers, dropout, recurrent_dropout, weight_drop)
        dirs = 2 if bidirectional else 1
        self.output_dim = dirs * hidden
        self.summary_dim = layers * self.output_dim
        self.residual, self.dropout = residual, fn.Dropout(dropout)
        custom = layer_norm or recurrent_dropout > 0 or weight_drop > 0
        sizes = [input_size] + [self.output_dim] * (layers - 1)
        self.layers = nn.ModuleList(
            _CustomLayer(kind, size, hidden, bidirectional, layer_norm, recurrent_dropout, weight_drop) if custom
            else _FusedLayer(kind, size, hidden, bidirectional)
            for size in sizes
        )

    @classmethod
    def from_config(cls, config: RNNEncoderConfig, input_size: int) -> "RNNEncoder":
        return cls(config.type, input_size, hidden=config.hidden, layers=config.layers,
                   bidirectional=config.bidirectional, dropout=config.dropout, residual=config.residual,
                   layer_norm=config.layer_norm, recurrent_dropout=config.recurrent_dropout,
                   weight_drop=config.weight_drop)

    def forward(self, src_emb: Tensor, src_lengths: Tensor, src_pad_mask: Tensor) -> tuple[Tensor, Tensor]:
        x, finals = src_emb, []
        for depth, layer in enumerate(self.layers):
            if depth:
                x = self.dropout(x)
            out, h = layer(x, src_lengths)
            x = out + x if self.residual and depth and out.shape == x.shape else out
            finals.append(h)
        return x, torch.cat(finals, dim=-1)
