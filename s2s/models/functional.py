"""Elementwise functions with faster CPU training kernels and unchanged inference graphs.

Profiling the benchmark RNN on a 2-core CPU showed ``torch.tanh`` (about 7x slower than
``torch.sigmoid`` on this hardware) and dropout's per-element Bernoulli draws among the largest
costs outside matrix products. While gradients are being recorded these functions use
cheaper formulations of the same mathematics; in inference (decoding, ONNX export) they are the
plain operators, so exported graphs and the runtime see standard ``Tanh``.
"""

from __future__ import annotations

import torch
from torch import Tensor


class _SigmoidTanh(torch.autograd.Function):
    """tanh(x) = 2 * sigmoid(2x) - 1 (exact identity; |error| < 2e-7 in fp32), tanh's own backward."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        y = torch.sigmoid(x * 2).mul_(2).sub_(1)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (y,) = ctx.saved_tensors
        return torch.ops.aten.tanh_backward(grad, y)


def tanh(x: Tensor) -> Tensor:
    if torch.is_grad_enabled() and x.requires_grad and x.device.type == "cpu":
        return _SigmoidTanh.apply(x)
    return torch.tanh(x)


def dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """Inverted dropout; on CPU the mask comes from one uniform draw (3x cheaper than Bernoulli)."""
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu":
        return torch.nn.functional.dropout(x, p, True)
    keep = torch.rand_like(x).ge_(p)
    return x * keep.to(x.dtype).mul_(1.0 / (1.0 - p))


class Dropout(torch.nn.Dropout):
    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training)
