"""AttnLRP rules in their efficient Input x Gradient form (docs/method.md section 2).

Relevance of a tensor x is ``x * modified_grad(x)``.  Each rule changes one local piece of the
backward pass and is linear in the incoming gradient, so the modified backward stays linear in
its seed (the attribution graph relies on that).  A rule is a small frozen object that knows how
to attach itself to one module and returns a handle that undoes the attachment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

__all__ = [
    "Rule",
    "IdentityRule",
    "ScaleOutputGradient",
    "ScaleInputGradient",
    "FusedQKVGradient",
    "RMSNormRule",
    "LayerNormRule",
    "scale_gradient",
    "identity_rule",
]


class _ScaleGradient(torch.autograd.Function):
    """Forward is the identity; backward multiplies the gradient by a constant (or per-channel) scale."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, scale: torch.Tensor | float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad * ctx.scale, None


def scale_gradient(x: torch.Tensor, scale: torch.Tensor | float) -> torch.Tensor:
    """The uniform rule's share: the value passes unchanged, the gradient is scaled."""
    return _ScaleGradient.apply(x, scale)


class _IdentityRule(torch.autograd.Function):
    """y = phi(x) forward; backward treats phi as relevance-preserving: grad_x = grad_y * y / x."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
        ctx.save_for_backward(x, y)
        ctx.eps = eps
        return y.view_as(y)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        x, y = ctx.saved_tensors
        # sign-safe stabiliser: never divides by zero, keeps the sign of x
        denominator = x + ctx.eps * torch.where(x >= 0, 1.0, -1.0).to(x.dtype)
        return grad * (y / denominator), None, None


def identity_rule(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Return ``y`` (computed from ``x`` by an elementwise non-linearity) with the identity rule's backward."""
    return _IdentityRule.apply(x, y.detach(), eps)


class Rule(Protocol):
    def attach(self, module: nn.Module, config: Any) -> RemovableHandle: ...


@dataclass(frozen=True)
class IdentityRule:
    """Elementwise non-linearities (SiLU, GELU, ...): relevance passes through unchanged.

    Why: the non-linearity is a gate on a single value, so LRP's identity rule assigns the
    output's relevance to its input one to one (grad_in = grad_out * phi(x) / x)."""

    eps: float = 1e-10

    def attach(self, module: nn.Module, config: Any) -> RemovableHandle:
        eps = self.eps

        def hook(
            mod: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor
        ) -> torch.Tensor:
            return identity_rule(inputs[0], output, eps)

        return module.register_forward_hook(hook)


@dataclass(frozen=True)
class ScaleOutputGradient:
    """Uniform rule share applied to the output of a projection.

    Used on q/k/v projections: the two matmuls of attention (q.k^T and A.v) each split their
    output relevance equally between their two inputs, so v keeps 1/2 and q, k keep 1/4.
    Scaling at the projection output is equivalent to scaling right before the attention kernel
    because everything in between (rotary embedding, per-head norms under the identity rule,
    head reshapes) is linear -- and it leaves sdpa/eager/flash kernels untouched."""

    scale: float

    def attach(self, module: nn.Module, config: Any) -> RemovableHandle:
        scale = self.scale

        def hook(
            mod: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor
        ) -> torch.Tensor:
            return scale_gradient(output, scale)

        return module.register_forward_hook(hook)


@dataclass(frozen=True)
class ScaleInputGradient:
    """Uniform rule for an elementwise product a*b feeding this module (the gated MLP's down
    projection): both factors receive half of the product's relevance, i.e. the gradient
    reaching the product is halved."""

    scale: float = 0.5

    def attach(self, module: nn.Module, config: Any) -> RemovableHandle:
        scale = self.scale

        def hook(mod: nn.Module, inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
            return (scale_gradient(inputs[0], scale), *inputs[1:])

        return module.register_forward_pre_hook(hook)


def _qkv_sections(module: nn.Module, config: Any) -> tuple[int, int, int]:
    # nn.Linear calls it out_features, GPT-2's Conv1D calls it nf
    out_features = getattr(module, "out_features", None) or module.nf
    heads = getattr(config, "num_attention_heads", None)
    kv_heads = getattr(config, "num_key_value_heads", None)
    if heads is None or kv_heads is None:
        if out_features % 3:
            raise ValueError(f"cannot split fused qkv output of size {out_features} into three")
        third = out_features // 3
        return third, third, third
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    q, kv = heads * head_dim, kv_heads * head_dim
    if q + 2 * kv != out_features:
        raise ValueError(f"fused qkv output {out_features} != {q} + 2*{kv}")
    return q, kv, kv


@dataclass(frozen=True)
class FusedQKVGradient:
    """The q/k/v shares (1/4, 1/4, 1/2) for projections that emit q, k and v concatenated
    (GPT-2's c_attn, Phi-3's qkv_proj)."""

    q_scale: float = 0.25
    k_scale: float = 0.25
    v_scale: float = 0.5

    def attach(self, module: nn.Module, config: Any) -> RemovableHandle:
        q, k, v = _qkv_sections(module, config)
        scales = torch.cat(
            [
                torch.full((q,), self.q_scale),
                torch.full((k,), self.k_scale),
                torch.full((v,), self.v_scale),
            ]
        )

        def hook(
            mod: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor
        ) -> torch.Tensor:
            return scale_gradient(output, scales.to(device=output.device, dtype=output.dtype))

        return module.register_forward_hook(hook)


def _norm_eps(module: nn.Module) -> float:
    for name in ("variance_epsilon", "eps", "epsilon"):
        value = getattr(module, name, None)
        if isinstance(value, float):
            return value
    return 1e-5


@dataclass(frozen=True)
class RMSNormRule:
    """Identity rule on RMSNorm: the denominator sqrt(mean(x^2)+eps) is treated as a constant,
    which makes the norm linear in x so relevance passes through it unchanged.

    ``weight_offset`` is 1 for Gemma-style norms that scale by (1 + weight)."""

    weight_offset: float = 0.0

    def attach(self, module: nn.Module, config: Any) -> RemovableHandle:
        offset = self.weight_offset

        def hook(
            mod: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor
        ) -> torch.Tensor:
            x = inputs[0]
            x32 = x.to(torch.promote_types(x.dtype, torch.float32))
            denominator = torch.sqrt(x32.pow(2).mean(-1, keepdim=True) + _norm_eps(mod)).detach()
            y = x32 / denominator
            weight = getattr(mod, "weight", None)
            if weight is not None:
                y = y * (offset + weight.to(y.dtype))
            return y.to(output.dtype)

        return module.register_forward_hook(hook)


@dataclass(frozen=True)
class LayerNormRule:
    """Identity rule on LayerNorm: the mean subtraction stays differentiable (it is linear),
    the standard deviation is treated as a constant."""

    def attach(self, module: nn.Module, config: Any) -> RemovableHandle:
        def hook(
            mod: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor
        ) -> torch.Tensor:
            x = inputs[0].to(torch.promote_types(inputs[0].dtype, torch.float32))
            centred = x - x.mean(-1, keepdim=True)
            variance = centred.pow(2).mean(-1, keepdim=True)
            y = centred / torch.sqrt(variance + _norm_eps(mod)).detach()
            weight = getattr(mod, "weight", None)
            bias = getattr(mod, "bias", None)
            if weight is not None:
                y = y * weight.to(y.dtype)
            if bias is not None:
                y = y + bias.to(y.dtype)
            return y.to(output.dtype)

        return module.register_forward_hook(hook)
