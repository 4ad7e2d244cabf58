"""Recurrent cells with the options of the RNN literature, written so a step is a pure function.

* Layer normalization (Ba, Kiros and Hinton, 2016, section 3.1 and eq. 20-22 for the LSTM):
  the input and recurrent projections are normalized separately, and so is the cell state.
* Recurrent dropout with one mask for every time step (Gal and Ghahramani, 2016), applied to
  the hidden state that enters the recurrent projection.
* Weight drop (DropConnect on the hidden-to-hidden matrix, Merity, Keskar and Socher, 2018):
  one dropped copy of ``weight_hh`` per forward pass.

Gate order follows PyTorch (LSTM: i, f, g, o; GRU: r, z, n), so a cell without these options
computes exactly what ``nn.LSTM``/``nn.GRU`` compute.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from s2s.cpu import functional as fn

GATES = {"lstm": 4, "gru": 3}


def check_rnn_options(kind: str, hidden: int, layers: int, dropout: float, recurrent_dropout: float,
                      weight_drop: float) -> None:
    """Shared checks of the RNN encoder and decoder (cell, sizes, dropout rates), run on their
    configs and again when a module is built from plain arguments."""
    if kind not in GATES:
        raise ValueError(f"cell must be one of {sorted(GATES)}, got {kind!r}")
    if hidden <= 0 or layers <= 0:
        raise ValueError("hidden and layers must be positive")
    for name, rate in (("dropout", dropout), ("recurrent_dropout", recurrent_dropout), ("weight_drop", weight_drop)):
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {rate}")


class RecurrentCell(nn.Module):
    """One LSTM or GRU layer, one time step at a time.

    The input projection is split from the step (:meth:`input_linear`) so that a caller can
    project a whole sequence at once and feed the step one slice at a time.
    """

    def __init__(self, kind: str, input_size: int, hidden: int, layer_norm: bool = False):
        super().__init__()
        if kind not in GATES:
            raise ValueError(f"cell must be one of {sorted(GATES)}, got {kind!r}")
        self.kind, self.hidden, self.layer_norm = kind, hidden, layer_norm
        gates = GATES[kind] * hidden
        self.weight_ih = nn.Parameter(torch.empty(gates, input_size))
        self.weight_hh = nn.Parameter(torch.empty(gates, hidden))
        self.bias_ih = nn.Parameter(torch.empty(gates))
        self.bias_hh = nn.Parameter(torch.empty(gates))
        if layer_norm:
            self.norm_ih = nn.LayerNorm(gates, bias=False)
            self.norm_hh = nn.LayerNorm(gates, bias=False)
            self.norm_cell = nn.LayerNorm(hidden) if kind == "lstm" else None
        bound = 1.0 / math.sqrt(hidden)  # PyTorch's RNN initialisation
        for weight in (self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh):
            nn.init.uniform_(weight, -bound, bound)

    @property
    def has_cell(self) -> bool:
        return self.kind == "lstm"

    def input_linear(self, x: Tensor) -> Tensor:
        """W_ih x without bias. x: (..., I) -> (..., G*H)."""
        return F.linear(x, self.weight_ih)

    def recurrent_weight(self, weight_drop: float) -> Tensor:
        if weight_drop and self.training:
            return F.dropout(self.weight_hh, weight_drop, training=True)
        return self.weight_hh

    def forward(self, x_lin: Tensor, h: Tensor, c: Tensor | None, weight_hh: Tensor | None = None,
                h_mask: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """x_lin: (B, G*H) from :meth:`input_linear`; h, c: (B, H); h_mask: (B, H) or None."""
        weight_hh = self.weight_hh if weight_hh is None else weight_hh
        h_in = h if h_mask is None else h * h_mask
        return self.activate(x_lin, F.linear(h_in, weight_hh), h, c)

    def activate(self, x_lin: Tensor, hh: Tensor, h: Tensor, c: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """The step after both projections (given without biases): x_lin, hh (B, G*H) -> h, c."""
        if self.layer_norm:
            x_lin, hh = self.norm_ih(x_lin), self.norm_hh(hh)
        x_lin = x_lin + self.bias_ih
        hh = hh + self.bias_hh
        if self.kind == "lstm":
            return lstm_update(x_lin + hh, c, self.norm_cell if self.layer_norm else None)
        xr, xz, xn = x_lin.chunk(3, dim=-1)
        hr, hz, hn = hh.chunk(3, dim=-1)
        r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
        n = fn.tanh(xn + r * hn)
        return (1 - z) * n + z * h, None


def lstm_update(gates: Tensor, c: Tensor, cell_norm: nn.Module | None = None) -> tuple[Tensor, Tensor]:
    """The LSTM's pointwise step from summed pre-activations (B, 4H), gate order i, f, g, o;
    ``cell_norm`` normalizes the cell state before the output gate (layer-norm LSTM)."""
    i, f, g, o = gates.chunk(4, dim=-1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * fn.tanh(g)
    return torch.sigmoid(o) * fn.tanh(c if cell_norm is None else cell_norm(c)), c


def variational_mask(batch: int, hidden: int, p: float, like: Tensor) -> Tensor | None:
    """One dropout mask (B, H) reused at every step (Gal and Ghahramani, 2016)."""
    if not p:
        return None
    keep = like.new_empty(batch, hidden).bernoulli_(1 - p)
    return keep / (1 - p)


def reverse_padded(x: Tensor, lengths: Tensor) -> Tensor:
    """Reverse each sequence within its length. x: (B, S, ...), lengths: (B,)."""
    steps = torch.arange(x.size(1), device=x.device).unsqueeze(0)
    index = (lengths.unsqueeze(1) - 1 - steps).clamp(min=0)
    index = torch.where(steps < lengths.unsqueeze(1), index, steps)
    shape = index.shape + (1,) * (x.dim() - 2)
    return x.gather(1, index.view(shape).expand_as(x))


class CustomRecurrentLayer(nn.Module):
    """A one-direction layer over a padded sequence, for the options fused kernels lack."""

    def __init__(self, kind: str, input_size: int, hidden: int, layer_norm: bool,
                 recurrent_dropout: float, weight_drop: float):
        super().__init__()
        self.cell = RecurrentCell(kind, input_size, hidden, layer_norm)
        self.recurrent_dropout, self.weight_drop = recurrent_dropout, weight_drop

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """x: (B, S, I), lengths: (B,) -> outputs (B, S, H) (zero at padding), final h (B, H)."""
        batch, steps, _ = x.shape
        x_lin = self.cell.input_linear(x)
        h = x.new_zeros(batch, self.cell.hidden)
        c = x.new_zeros(batch, self.cell.hidden) if self.cell.has_cell else None
        weight_hh = self.cell.recurrent_weight(self.weight_drop)
        mask = variational_mask(batch, self.cell.hidden, self.recurrent_dropout if self.training else 0.0, x)
        valid = (torch.arange(steps, device=x.device).unsqueeze(0) < lengths.unsqueeze(1)).unsqueeze(-1)
        outputs = []
        for t in range(steps):
            h_new, c_new = self.cell(x_lin[:, t], h, c, weight_hh, mask)
            h = torch.where(valid[:, t], h_new, h)  # padding keeps the last real state
            if c is not None:
                c = torch.where(valid[:, t], c_new, c)
            outputs.append(h_new)
        out = torch.stack(outputs, dim=1) * valid
        return out, h
