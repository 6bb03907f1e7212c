"""How a token is masked: its input embedding row is replaced (zeros, or the unk/pad token's
embedding) and its position kept. The choice and its price are in ``deletion``'s docstring."""

from __future__ import annotations

from typing import Any

import torch

MASKS = ("zero", "unk")


def unwrap_model(model: Any) -> tuple[Any, Any]:
    """Accept a LoadedModel (module + tokenizer) or a bare module."""
    if hasattr(model, "model") and hasattr(model, "tokenizer"):
        return model.model, model.tokenizer
    return model, None


def fill_token(module: Any, tokenizer: Any, mask_token_id: int | None) -> int:
    """The token whose embedding replaces masked rows for mask='unk': the one asked for, else
    the tokenizer's (or config's) unk token, else its pad token."""
    token_id = mask_token_id
    for source in (tokenizer, getattr(module, "config", None)):
        for name in ("unk_token_id", "pad_token_id"):
            if token_id is None and source is not None:
                token_id = getattr(source, name, None)
    if token_id is None:
        raise ValueError("mask='unk' needs an unk or pad token (pass mask_token_id)")
    return int(token_id)


def mask_row(module: Any, token_id: int | None) -> torch.Tensor:
    embedding = module.get_input_embeddings()
    weight = embedding.weight
    if token_id is None:
        return torch.zeros(weight.shape[-1], dtype=weight.dtype, device=weight.device)
    ids = torch.tensor([token_id], device=weight.device)
    return embedding(ids)[0].detach()


def mask_description(mask: str, tokenizer: Any, token_id: int | None) -> str:
    common = "positions unchanged, special tokens never masked"
    if mask == "zero":
        return f"input embedding replaced by zeros ({common})"
    name = None
    if tokenizer is not None and token_id is not None:
        name = tokenizer.convert_ids_to_tokens(int(token_id))
    label = f"{name!r}, id {token_id}" if name else f"id {token_id}"
    return f"input embedding replaced by the unk/pad token's embedding ({label}; {common})"
