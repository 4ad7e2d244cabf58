"""Functions whose formulation depends on where they run, with the same mathematics everywhere.

Profiling the benchmark RNN on a 2-core CPU showed ``torch.tanh`` (several times slower than
``torch.sigmoid`` there) and dropout's random draws among the largest costs outside matrix
products. While gradients are being recorded these functions use
cheaper formulations of the same mathematics; in inference (decoding, ONNX export) they are the
plain operators, so exported graphs and the runtime see standard ``Tanh``.

The two dot products of attention energies pick their formulation for accuracy instead:
:func:`dot_last` keeps PyTorch's matrix product and gives an exported graph the sum that
onnxruntime computes accurately; :func:`dot_rows` keeps ``bmm`` for training and uses that sum in
inference, where PyTorch's ``bmm`` was the less accurate engine.
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


def dot_last(x: Tensor, v: Tensor) -> Tensor:
    """x (B, S, D) dotted with one vector v (D,) -> (B, S): the energies of additive attention,
    ``v`` being the row of a ``Linear(D, 1)`` weight.

    PyTorch computes it as before, as that ``Linear``. In an ONNX export it becomes Mul +
    ReduceSum: a MatMul with a single output column makes onnxruntime's CPU kernel add the D
    products of each energy in one running float32 sum, several times less accurate than
    PyTorch, and the step's log-probabilities carry the error; a vectorised sum does not
    (measured effect: ``exported/README.md``, "Where the speed code's figures live").
    """
    if torch.onnx.is_in_onnx_export():
        return (x * v).sum(-1)
    return torch.nn.functional.linear(x, v.unsqueeze(0)).squeeze(-1)


def dot_rows(x: Tensor, y: Tensor) -> Tensor:
    """x (B, S, D) dotted with a vector per batch row, y (B, D) -> (B, S): the energies of Luong's
    dot and general attention.

    While gradients are recorded it is one ``bmm``. In inference (decoding, ONNX export) it is an
    elementwise product summed over D, which PyTorch and onnxruntime both add in vector lanes:
    PyTorch's ``bmm`` with one output column adds the D products in one running sum, the less
    accurate of the two (measured effect: ``exported/README.md``, "Where the speed code's figures live").
    """
    if torch.is_grad_enabled() and (x.requires_grad or y.requires_grad) and not torch.onnx.is_in_onnx_export():
        return torch.bmm(x, y.unsqueeze(-1)).squeeze(-1)
    return (x * y.unsqueeze(1)).sum(-1)


def dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """Inverted dropout. On CPU the mask comes from 16 random bits per element.

    PyTorch's CPU generator makes 64 random bits about as fast as one uniform float, so one
    ``random_`` over int64 words yields four 16-bit lanes, each compared with a threshold, for
    a fraction of ``rand_like``'s generator time (measured effect: ``exported/README.md``, "Where the speed code's figures live").
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
