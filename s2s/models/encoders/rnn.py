"""Recurrent encoders: LSTM or GRU, bidirectional, stacked, residual, with the options of
:mod:`s2s.models.recurrent`.

The default path runs PyTorch's fused ``nn.LSTM``/``nn.GRU`` over packed sequences; layer
normalization, recurrent dropout and weight drop switch to the step-by-step cells.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from s2s.models import functional as fn
from s2s.models.encoders.base import Encoder
from s2s.models.recurrent import CustomRecurrentLayer, check_rnn_config, reverse_padded
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
        check_rnn_config(self)


class _FusedLayer(nn.Module):
    """One (bi)directional layer on PyTorch's fused kernel over a packed sequence."""

    def __init__(self, kind: str, input_size: int, hidden: int, bidirectional: bool):
        super().__init__()
        rnn = nn.LSTM if kind == "lstm" else nn.GRU
        self.rnn = rnn(input_size, hidden, batch_first=True, bidirectional=bidirectional)

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, final = self.rnn(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.size(1))
        h = final[0] if isinstance(final, tuple) else final  # (dirs, B, H)
        return out, h.transpose(0, 1).reshape(x.size(0), -1)


class _CustomLayer(nn.Module):
    """One (bi)directional layer on the step-by-step cells."""

    def __init__(self, kind: str, input_size: int, hidden: int, bidirectional: bool, config: RNNEncoderConfig):
        super().__init__()
        make = lambda: CustomRecurrentLayer(kind, input_size, hidden, config.layer_norm,  # noqa: E731
                                            config.recurrent_dropout, config.weight_drop)
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
    def __init__(self, kind: str, input_size: int, config: RNNEncoderConfig):
        super().__init__()
        dirs = 2 if config.bidirectional else 1
        self.output_dim = dirs * config.hidden
        self.summary_dim = config.layers * self.output_dim
        self.residual, self.dropout = config.residual, fn.Dropout(config.dropout)
        custom = config.layer_norm or config.recurrent_dropout > 0 or config.weight_drop > 0
        sizes = [input_size] + [self.output_dim] * (config.layers - 1)
        self.layers = nn.ModuleList(
            _CustomLayer(kind, size, config.hidden, config.bidirectional, config) if custom
            else _FusedLayer(kind, size, config.hidden, config.bidirectional)
            for size in sizes
        )

    @classmethod
    def from_config(cls, config: RNNEncoderConfig, input_size: int) -> "RNNEncoder":
        return cls(config.type, input_size, config)

    def forward(self, src_emb: Tensor, src_lengths: Tensor, src_pad_mask: Tensor) -> tuple[Tensor, Tensor]:
        x, finals = src_emb, []
        for depth, layer in enumerate(self.layers):
            if depth:
                x = self.dropout(x)
            out, h = layer(x, src_lengths)
            x = out + x if self.residual and depth and out.shape == x.shape else out
            finals.append(h)
        return x, torch.cat(finals, dim=-1)
