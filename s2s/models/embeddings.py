"""Token embeddings and the output projection, optionally tied (Press and Wolf, 2017).

:func:`output_loss` fuses the output projection with the label-smoothed cross-entropy of
:mod:`s2s.training.losses` and processes rows in chunks: the (N, V) logits, their log-softmax
and its gradient are never materialised whole, and one chunk-sized buffer serves every chunk
(its speed-up: recipes/multi30k-en-de/README.md). It lives here, beside the projection it fuses,
so that a model computes its own training loss (:meth:`OutputProjection.loss`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

CHUNK_ELEMENTS = 1 << 22  # logits per chunk (16 MiB in fp32)


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

    def loss(self, hidden: Tensor, targets: Tensor, smoothing: float = 0.0) -> Tensor:
        """Summed smoothed cross-entropy of ``self(hidden)``, fused (:func:`output_loss`).
        hidden: (N, D), targets: (N,) non-pad ids -> scalar."""
        return output_loss(hidden, self.matrix, self.bias, targets, smoothing)


class _ProjectedLoss(torch.autograd.Function):
    """sum_i loss(W h_i + b, y_i), gradients computed chunk by chunk during the forward pass.

    With smoothing eps, loss = logsumexp(z) - (1 - eps) z_gold - (eps / V) sum_v z_v and
    dloss/dz = softmax(z) - q, q = (1 - eps) * onehot(gold) + eps / V.
    """

    @staticmethod
    def forward(ctx, hidden: Tensor, weight: Tensor, bias: Tensor, target: Tensor, smoothing: float,
                chunk_elements: int) -> Tensor:
        h, w, b = hidden.float(), weight.float(), bias.float()
        vocab = w.size(0)
        grad_h, grad_w, grad_b = torch.empty_like(h), torch.zeros_like(w), torch.zeros_like(b)
        total = h.new_zeros(())
        rows = max(1, chunk_elements // vocab)
        buffer = h.new_empty(min(rows, h.size(0)), vocab)  # one logits buffer, reused by every chunk
        for start in range(0, h.size(0), rows):
            h_c, y_c = h[start:start + rows], target[start:start + rows]
            z = torch.mm(h_c, w.t(), out=buffer[: h_c.size(0)]).add_(b)  # (n, V) logits
            total -= (1 - smoothing) * z.gather(1, y_c.unsqueeze(1)).sum()
            if smoothing:
                total -= smoothing / vocab * z.sum()
            peak = z.amax(dim=1, keepdim=True)
            z.sub_(peak).exp_()
            norm = z.sum(dim=1, keepdim=True)
            total += (peak + norm.log()).sum()  # logsumexp
            z.mul_(norm.reciprocal_())  # softmax, in place: no second (n, V) buffer
            z.scatter_add_(1, y_c.unsqueeze(1), z.new_full((len(y_c), 1), -(1 - smoothing)))
            if smoothing:
                z.sub_(smoothing / vocab)
            torch.mm(z, w, out=grad_h[start:start + rows])
            grad_w.addmm_(z.t(), h_c)
            grad_b += z.sum(0)
        ctx.save_for_backward(grad_h.to(hidden.dtype), grad_w.to(weight.dtype), grad_b.to(bias.dtype))
        return total

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        grad_h, grad_w, grad_b = ctx.saved_tensors
        return grad_h * grad_out, grad_w * grad_out, grad_b * grad_out, None, None, None


def output_loss(hidden: Tensor, weight: Tensor, bias: Tensor, target: Tensor, smoothing: float = 0.0,
                chunk_elements: int | None = None) -> Tensor:
    """Summed smoothed loss of logits ``hidden @ weight.T + bias``. hidden: (N, D), target: (N,).

    Equal to ``sequence_loss(F.linear(hidden, weight, bias), target, smoothing)`` of
    :mod:`s2s.training.losses` for non-pad targets (a test checks value and gradients).
    ``chunk_elements``: logits per chunk (default :data:`CHUNK_ELEMENTS`).
    """
    return _ProjectedLoss.apply(hidden, weight, bias, target, smoothing, chunk_elements or CHUNK_ELEMENTS)


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

