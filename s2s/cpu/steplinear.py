"""Weight gradients of a step loop in one matrix product per weight.

A teacher-forced RNN decoder multiplies the same weight matrix at every time step. Autograd
then computes that weight's gradient as T small products ``g_t^T x_t`` of B rows each and adds
them one by one into the gradient. :class:`StepLinears` records the steps' inputs in the
forward pass and their output gradients in the backward pass, and forms the weight gradient
once, as ``[g_1; ...; g_T]^T [x_1; ...; x_T]``: one product over T*B rows, which runs near the
machine's matrix-product peak instead of T products over B rows plus T additions.

Measured together with folding the LSTM biases and multiplying ``[input; hidden]`` by one
concatenated matrix per layer (measured effect: ``exported/README.md``, "Where the speed code's figures live").

Only for first-order gradients (the backward pass itself is not differentiable again).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


class _Record:
    """The inputs and output gradients of one weight's steps, in step order."""

    def __init__(self, weight: Tensor):
        self.weight = weight  # kept alive so its id stays unique for the pass
        self.inputs: list[Tensor] = []
        self.grads: list[Tensor | None] = []
        self.proxy = _Gather.apply(weight, self)


class _Gather(torch.autograd.Function):
    """Identity on the weight; its backward forms the weight gradient from the whole record."""

    @staticmethod
    def forward(ctx, weight: Tensor, record: _Record) -> Tensor:
        ctx.set_materialize_grads(False)
        ctx.record = record
        return weight.view_as(weight)

    @staticmethod
    def backward(ctx, grad: Tensor | None):
        record = ctx.record
        pairs = [(g, x) for g, x in zip(record.grads, record.inputs) if g is not None]
        ctx.record = record.inputs = record.grads = None  # free the activations
        if pairs:
            grad_weight = torch.cat([g for g, _ in pairs]).t().mm(torch.cat([x for _, x in pairs]))
            grad = grad_weight if grad is None else grad + grad_weight
        return grad, None


class _StepLinear(torch.autograd.Function):
    """x @ W^T (+ bias) whose weight gradient is left to :class:`_Gather`."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, record: _Record, bias: Tensor | None) -> Tensor:
        ctx.index = len(record.inputs)
        ctx.record = record
        record.inputs.append(x)
        record.grads.append(None)
        ctx.save_for_backward(weight)
        ctx.bias_shape = None if bias is None else bias.shape
        return x.mm(weight.t()) if bias is None else torch.addmm(bias, x, weight.t())

    @staticmethod
    def backward(ctx, grad: Tensor):
        (weight,) = ctx.saved_tensors
        if ctx.record.grads is not None:
            ctx.record.grads[ctx.index] = grad
        grad_x = grad.mm(weight) if ctx.needs_input_grad[0] else None
        grad_bias = None
        if ctx.needs_input_grad[3]:
            grad_bias = grad if len(ctx.bias_shape) == 2 else grad.sum(0)
        # The weight's gradient is formed by _Gather; None here costs nothing.
        return grad_x, None, None, grad_bias


class StepLinears:
    """Linear maps for one pass of a step loop: ``linears(x, weight, bias)``.

    With ``deferred`` (a teacher-forced training pass) every weight seen gets one record and
    its gradient comes from one product at the end of backward; otherwise (decoding, no
    gradients, ONNX export) this is plain ``x @ weight.T + bias``. ``x`` is (B, in); ``bias``
    is (out,) or (B, out).
    """

    def __init__(self, deferred: bool):
        self.deferred = deferred
        self._records: dict[int, _Record] = {}

    def __call__(self, x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
        if not (self.deferred and weight.requires_grad and torch.is_grad_enabled()):
            if bias is None:
                return F.linear(x, weight)
            return torch.addmm(bias, x, weight.t()) if bias.dim() == 2 else F.linear(x, weight, bias)
        record = self._records.get(id(weight))
        if record is None:
            record = self._records[id(weight)] = _Record(weight)
        return _StepLinear.apply(x, record.proxy, record, bias)


PLAIN = StepLinears(deferred=False)
