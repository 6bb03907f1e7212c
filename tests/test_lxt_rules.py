"""Each AttnLRP rule against its definition, computed independently in float64."""

import pytest
import torch
from torch import nn

import lxt
from lxt.rules import _qkv_sections

torch.manual_seed(0)


def _grad(
    module: nn.Module, x: torch.Tensor, seed: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.clone().requires_grad_(True)
    y = module(x)
    (g,) = torch.autograd.grad(y, x, seed)
    return y.detach(), g


def test_identity_rule_passes_relevance_unchanged():
    act = nn.SiLU()
    x = torch.randn(5, 7, dtype=torch.float64)
    x[0, 0] = 0.0  # the stabiliser must keep this finite
    seed = torch.randn(5, 7, dtype=torch.float64)
    handle = lxt.IdentityRule().attach(act, None)
    y, g = _grad(act, x, seed)
    handle.remove()
    assert torch.equal(y, nn.functional.silu(x))
    expected = seed * nn.functional.silu(x) / (x + 1e-10 * torch.where(x >= 0, 1.0, -1.0))
    torch.testing.assert_close(g, expected)
    # relevance in = relevance out, elementwise (away from x = 0)
    torch.testing.assert_close((x * g)[x != 0], (y * seed)[x != 0])
    assert torch.isfinite(g).all()


@pytest.mark.parametrize("scale", [0.25, 0.5])
def test_scale_output_gradient(scale):
    lin = nn.Linear(4, 3).double()
    x = torch.randn(2, 4, dtype=torch.float64)
    seed = torch.randn(2, 3, dtype=torch.float64)
    _, plain = _grad(lin, x, seed)
    handle = lxt.ScaleOutputGradient(scale).attach(lin, None)
    y, scaled = _grad(lin, x, seed)
    handle.remove()
    torch.testing.assert_close(y, lin(x).detach())
    torch.testing.assert_close(scaled, scale * plain)


def test_scale_input_gradient_halves_the_product():
    down = nn.Linear(6, 2, bias=False).double()
    a = torch.randn(3, 6, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, 6, dtype=torch.float64, requires_grad=True)
    handle = lxt.ScaleInputGradient(0.5).attach(down, None)
    out = down(a * b)
    seed = torch.randn_like(out)
    ga, gb = torch.autograd.grad(out, (a, b), seed)
    handle.remove()
    product_grad = seed @ down.weight  # d out / d (a*b)
    torch.testing.assert_close(ga, 0.5 * product_grad * b)
    torch.testing.assert_close(gb, 0.5 * product_grad * a)
    # uniform rule: each factor carries half the product's relevance
    torch.testing.assert_close(a * ga, 0.5 * (a * b) * product_grad)


def test_fused_qkv_sections_and_scales():
    class Cfg:
        num_attention_heads, num_key_value_heads, hidden_size, head_dim = 4, 2, 16, 4

    lin = nn.Linear(16, 16 + 8 + 8).double()
    assert _qkv_sections(lin, Cfg) == (16, 8, 8)
    x = torch.randn(2, 16, dtype=torch.float64)
    seed = torch.randn(2, 32, dtype=torch.float64)
    handle = lxt.FusedQKVGradient().attach(lin, Cfg)
    _, g = _grad(lin, x, seed)
    handle.remove()
    scale = torch.cat(
        [torch.full((16,), 0.25), torch.full((8,), 0.25), torch.full((8,), 0.5)]
    ).double()
    torch.testing.assert_close(g, (seed * scale) @ lin.weight)


class _RMS(nn.Module):
    def __init__(self, n: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n, dtype=torch.float64))
        self.variance_epsilon = 1e-6

    def forward(self, x):
        return (
            self.weight * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.variance_epsilon)
        )


@pytest.mark.parametrize("offset", [0.0, 1.0])
def test_rmsnorm_rule_detaches_the_denominator(offset):
    norm = _RMS(6)
    x = torch.randn(3, 6, dtype=torch.float64)
    seed = torch.randn(3, 6, dtype=torch.float64)
    handle = lxt.RMSNormRule(weight_offset=offset).attach(norm, None)
    y, g = _grad(norm, x, seed)
    handle.remove()
    sigma = torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)
    torch.testing.assert_close(y, x / sigma * (offset + norm.weight.detach()))
    torch.testing.assert_close(g, seed * (offset + norm.weight.detach()) / sigma)
    if offset == 0.0:
        torch.testing.assert_close(y, norm(x).detach())  # the forward is unchanged
    # linear map -> relevance conserved exactly
    torch.testing.assert_close((x * g).sum(-1), (y * seed).sum(-1))


def test_layernorm_rule_keeps_the_mean_differentiable():
    norm = nn.LayerNorm(5).double()
    with torch.no_grad():
        norm.weight.normal_()
        norm.bias.normal_()
    x = torch.randn(4, 5, dtype=torch.float64)
    seed = torch.randn(4, 5, dtype=torch.float64)
    handle = lxt.LayerNormRule().attach(norm, None)
    y, g = _grad(norm, x, seed)
    handle.remove()
    torch.testing.assert_close(y, norm(x).detach())
    sigma = torch.sqrt(x.var(-1, unbiased=False, keepdim=True) + norm.eps)
    ws = seed * norm.weight.detach() / sigma
    torch.testing.assert_close(g, ws - ws.mean(-1, keepdim=True))
