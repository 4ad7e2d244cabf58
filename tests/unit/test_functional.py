"""The training-time kernels of s2s.models.functional compute the same functions."""

from __future__ import annotations

import pytest
import torch

from s2s.models import functional as fn


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
