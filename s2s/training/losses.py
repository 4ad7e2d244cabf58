"""Token-level cross-entropy with label smoothing (Szegedy et al., 2016, section 7).

With smoothing eps the target distribution is q = (1 - eps) * onehot(gold) + eps / V, so

    loss = -sum_v q_v log p_v = logsumexp(z) - (1 - eps) z_gold - (eps / V) sum_v z_v
    dloss/dz = softmax(z) - q

:func:`output_loss` fuses the output projection with this loss and processes rows in chunks:
the (N, V) logits, their log-softmax and its gradient are never materialised whole, and one
chunk-sized buffer serves every chunk. On the benchmark RNN (2-core CPU) fusing moved training
from 3,175 to 3,340 target tokens/s in one before/after run, and lowered peak memory.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from s2s.data.vocab import PAD

CHUNK_ELEMENTS = 1 << 22  # logits per chunk (16 MiB in fp32)


def sequence_loss(logits: Tensor, target: Tensor, smoothing: float = 0.0) -> Tensor:
    """Summed loss over non-pad positions. logits: (..., V), target: (...) -> scalar."""
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), target.reshape(-1),
                           ignore_index=PAD, label_smoothing=smoothing, reduction="sum")


class _ProjectedLoss(torch.autograd.Function):
    """sum_i loss(W h_i + b, y_i), gradients computed chunk by chunk during the forward pass."""

    @staticmethod
    def forward(ctx, hidden: Tensor, weight: Tensor, bias: Tensor, target: Tensor, smoothing: float) -> Tensor:
        h, w, b = hidden.float(), weight.float(), bias.float()
        vocab = w.size(0)
        grad_h, grad_w, grad_b = torch.empty_like(h), torch.zeros_like(w), torch.zeros_like(b)
        total = h.new_zeros(())
        rows = max(1, CHUNK_ELEMENTS // vocab)
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
        return grad_h * grad_out, grad_w * grad_out, grad_b * grad_out, None, None


def output_loss(hidden: Tensor, weight: Tensor, bias: Tensor, target: Tensor, smoothing: float = 0.0) -> Tensor:
    """Summed smoothed loss of logits ``hidden @ weight.T + bias``. hidden: (N, D), target: (N,).

    Equal to ``sequence_loss(F.linear(hidden, weight, bias), target, smoothing)`` for non-pad
    targets (a test checks value and gradients).
    """
    return _ProjectedLoss.apply(hidden, weight, bias, target, smoothing)
