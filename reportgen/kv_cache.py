"""A clean forward's keys and values, and a cache cut from them: what a run on the positions
from some point on starts from (the ablations' suffix runs, the continuations' decoding, the
flip test's masked suffixes). The bottom floor of the forward passes (torch and transformers only,
imported when called), so every module that reuses a clean forward's states can import it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported where a forward runs, not where results are read
    import torch

#: per layer, the (keys, values) of every position of a clean forward, batch of one
KeysValues = tuple[tuple["torch.Tensor", "torch.Tensor"], ...]


def prefix_cache(
    states: Sequence[tuple[torch.Tensor, torch.Tensor]], start: int, rows: int = 1
) -> Any:
    """A KV cache of the first ``start`` positions of a clean forward's per-layer (keys, values),
    for ``rows`` rows (views, not copies: a forward on it appends new tensors and leaves
    ``states`` as they were). What a run on the positions from ``start`` on starts from."""
    from transformers import DynamicCache

    return DynamicCache(
        ddp_cache_data=[
            (k[:, :, :start].expand(rows, -1, -1, -1), v[:, :, :start].expand(rows, -1, -1, -1))
            for k, v in states
        ]
    )
