"""What is explained: a scalar f of the last position's logits (docs/method.md section 1)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .question import MODES, STRATEGIES


@dataclass(frozen=True)
class Objective:
    """``target_id`` is the token whose preference is explained; ``contrast_id`` is only used
    by ``logit_diff``/``by_ref_token``; ``k`` only by ``by_topk_avg``."""

    mode: str
    target_id: int
    strategy: str | None = None
    contrast_id: int | None = None
    k: int = 10

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.mode == "logit_diff":
            if self.strategy not in STRATEGIES:
                raise ValueError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
            if self.strategy == "by_ref_token" and self.contrast_id is None:
                raise ValueError("logit_diff by_ref_token needs a contrast token")
            if self.strategy == "by_topk_avg" and self.k < 1:
                raise ValueError(f"k must be >= 1, got {self.k}")

    def describe(self) -> str:
        if self.mode == "max_logit":
            return "logit(target)"
        if self.strategy == "by_ref_token":
            return "logit(target) - logit(contrast)"
        if self.strategy == "by_topk_avg":
            return f"logit(target) - mean of the top-{self.k} logits (target included when it is among them)"
        return "logit(target) - mean logit over the vocabulary"

    def value(self, logits: torch.Tensor) -> torch.Tensor:
        """f for a vector of last-position logits (or a batch of them, shape [..., vocab])."""
        target = logits[..., self.target_id]
        if self.mode == "max_logit":
            return target
        if self.strategy == "by_ref_token":
            return target - logits[..., self.contrast_id]
        if self.strategy == "by_topk_avg":
            k = min(self.k, logits.shape[-1])
            return target - logits.topk(k, dim=-1).values.mean(-1)
        return target - logits.mean(-1)

    def seed(self, logits: torch.Tensor) -> torch.Tensor:
        """df/dlogits: the objective is linear in the logits once the top-k set is fixed, so
        the seed of the backward pass is this constant vector."""
        probe = logits.detach().clone().requires_grad_(True)
        self.value(probe).sum().backward()
        return probe.grad
