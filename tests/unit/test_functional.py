"""The training-time kernels of s2s.cpu.functional compute the same functions."""

from __future__ import annotations

import pytest
import torch

from s2s.cpu import functional as fn


def test_fast_tanh_matches_tanh_in_value_and_gradient():
    x = torch.linspace(-12, 12, 5001, dtype=torch.float32, requires_grad=True)
    y = fn.tanh(x)
    assert y.grad_fn is not None and "SigmoidTanh" in type(y.grad_fn).__name__  # the fast path ran
    torch.testing.assert_close(y, torch.tanh(x), atol=3e-7, rtol=0)
    (g,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(g, 1 - torch.tanh(x.detach()) ** 2, atol=1e-6, rtol=0)


def test_tanh_is_the_plain_operator_without_gradients():
    x = torch.randn(100)
    with torch.no_grad():
        assert torch.equal(fn.tanh(x), torch.tanh(x))


@pytest.mark.parametrize("p", [0.1, 0.25, 0.5])
def test_dropout_keeps_expectation_and_rate(p):
    torch.manual_seed(0)
    x = torch.ones(200_000)
    y = fn.dropout(x, p, training=True)
    dropped = y == 0
    assert abs(dropped.float().mean().item() - p) < 0.01
    for lane in range(4):  # each 16-bit lane of the random words drops at the same rate
        assert abs(dropped[lane::4].float().mean().item() - p) < 0.015
    assert torch.allclose(y[y != 0], torch.full_like(y[y != 0], 1 / (1 - p)), rtol=1e-4)
    assert abs(y.mean().item() - 1.0) < 0.01


def test_dropout_mask_has_the_input_shape_and_follows_the_seed():
    x = torch.ones(7, 5, 3)  # 105 elements: not a multiple of the four lanes per word
    torch.manual_seed(3)
    a = fn.dropout(x, 0.5, training=True)
    torch.manual_seed(3)
    b = fn.dropout(x, 0.5, training=True)
    assert a.shape == x.shape and torch.equal(a, b)
    assert 0 < int((a == 0).sum()) < 105


def test_dropout_is_identity_in_eval_and_at_zero_rate():
    x = torch.randn(50)
    assert fn.dropout(x, 0.5, training=False) is x
    assert fn.dropout(x, 0.0, training=True) is x
    module = fn.Dropout(0.5).eval()
    assert torch.equal(module(x), x)


def test_dropout_gradient_uses_the_same_mask():
    torch.manual_seed(1)
    x = torch.randn(1000, requires_grad=True)
    y = fn.dropout(x, 0.3, training=True)
    (g,) = torch.autograd.grad(y.sum(), x)
    assert torch.equal(g == 0, y.detach() == 0)


def test_dot_last_is_the_linear_in_pytorch_and_an_accurate_sum_in_onnxruntime():
    import io

    import numpy as np
    import onnx
    import onnxruntime as ort

    class Energies(torch.nn.Module):
        def forward(self, x, v):
            return fn.dot_last(x, v)

    g = torch.Generator().manual_seed(0)
    x = torch.tanh(2 * torch.randn(32, 20, 512, generator=g))  # additive attention's tanh layer
    v = 0.5 * torch.randn(512, generator=g)  # energies reach about 35, as in a trained model
    linear = torch.nn.Linear(512, 1, bias=False)
    with torch.no_grad():
        linear.weight.copy_(v.unsqueeze(0))
        assert torch.equal(fn.dot_last(x, v), linear(x).squeeze(-1))  # PyTorch's numbers are unchanged

    f = io.BytesIO()
    torch.onnx.export(Energies(), (x, v), f, dynamo=False, input_names=["x", "v"])
    ops = {node.op_type for node in onnx.load_from_string(f.getvalue()).graph.node}
    assert "ReduceSum" in ops and not ops & {"MatMul", "Gemm"}, ops
    session = ort.InferenceSession(f.getvalue(), providers=["CPUExecutionProvider"])
    got = session.run(None, {"x": x.numpy(), "v": v.numpy()})[0]
    exact = (x.double() * v.double()).sum(-1).numpy()
    ulp = np.spacing(np.float32(np.abs(exact).max()))
    # on these inputs a MatMul with one output column errs by 5.9 ulps in onnxruntime, Mul + ReduceSum by 1.2
    assert np.abs(got - exact).max() <= 4 * ulp


def test_dot_rows_sums_in_lanes_for_inference_and_is_bmm_for_training():
    import numpy as np

    g = torch.Generator().manual_seed(0)
    x = 3 * torch.tanh(2 * torch.randn(32, 20, 512, generator=g))  # keys of Luong's general attention
    y = 0.5 * torch.randn(32, 512, generator=g)  # one decoder state per batch row
    exact = (x.double() * y.double().unsqueeze(1)).sum(-1)
    ulp = float(np.spacing(np.float32(exact.abs().max())))
    bmm = torch.bmm(x, y.unsqueeze(-1)).squeeze(-1)
    with torch.no_grad():
        got = fn.dot_rows(x, y)
    # bmm's single running sum errs by about 9 ulps here; the lanes' sum by about 1.3
    assert float((got.double() - exact).abs().max()) <= 3 * ulp < float((bmm.double() - exact).abs().max())
    x.requires_grad_(True)
    trained = fn.dot_rows(x, y)
    assert torch.equal(trained.detach(), bmm) and trained.requires_grad  # training keeps the bmm
