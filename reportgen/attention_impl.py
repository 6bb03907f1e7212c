"""Run a model with our own attention function for a while, through transformers' registries.

Both the closed form (which records q, k, v and the head-output gradient) and the per-head
reference (which masks the head-output gradient) need to see every attention call of a model
without knowing its architecture. transformers routes each call through the function registered
under the config's ``_attn_implementation``; we register ours under a name of our own (the
class-level ``register`` keeps every other entry) and switch the configs to it and back."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from torch import nn


def _configs(model: nn.Module) -> list[Any]:
    seen: dict[int, Any] = {}
    for module in model.modules():
        config = getattr(module, "config", None)
        if config is not None and hasattr(config, "_attn_implementation_internal"):
            seen.setdefault(id(config), config)
            for name in getattr(config, "sub_configs", {}) or {}:
                sub = getattr(config, name, None)
                if sub is not None and hasattr(sub, "_attn_implementation_internal"):
                    seen.setdefault(id(sub), sub)
    return list(seen.values())


@contextlib.contextmanager
def attention_function(
    model: nn.Module, name: str, function: Callable[..., tuple[Any, Any]]
) -> Iterator[None]:
    """Route every attention call of ``model`` through ``function`` (registered as ``name``,
    with sdpa's mask), restoring each config's own implementation afterwards."""
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask
    from transformers.modeling_utils import AttentionInterface

    AttentionInterface.register(name, function)
    AttentionMaskInterface.register(name, sdpa_mask)
    configs = _configs(model)
    previous = [config._attn_implementation_internal for config in configs]
    for config in configs:
        config._attn_implementation_internal = name
    try:
        yield
    finally:
        for config, value in zip(configs, previous, strict=True):
            config._attn_implementation_internal = value
