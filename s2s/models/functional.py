"""Elementwise functions with faster CPU training kernels and unchanged inference graphs.

Profiling the benchmark RNN on a 2-core CPU showed ``torch.tanh`` (about 7x slower than
``torch.sigmoid`` on this hardware) and dropout's random draws among the largest costs outside
matrix products. While gradients are being recorded these functions use
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
    """Inverted dropout. On CPU the mask comes from 16 random bits per element.

    PyTorch's CPU generator makes 64 random bits about as fast as one uniform float, so one
    ``random_`` over int64 words yields four 16-bit lanes, each compared with a threshold:
    about 4x less generator time than ``rand_like`` (itself 2x cheaper than Bernoulli draws).
    The drop probability is rounded to a multiple of 2^-16 and the survivors are scaled by
    the exact inverse of the rounded keep probability, so the expectation is unchanged.
    """
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu":
        return torch.nn.functional.dropout(x, p, True)
    n = x.numel()
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=x.device).random_(-(2 ** 63), 2 ** 63 - 1)
    dropped = round(p * 65536)  # lanes below the threshold are dropped: probability dropped / 2^16
    keep = words.view(torch.int16)[:n].view(x.shape) >= dropped - 32768
    return x * keep.to(x.dtype).mul_(65536 / (65536 - dropped))


class Dropout(torch.nn.Dropout):
    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training)
