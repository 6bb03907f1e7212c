"""Edges by batch-packed multi-target backpropagation: the reference the closed form is tested
against, and the method for blocks the closed form does not cover.

The source state is repeated B times along the batch, row b is seeded at target position j_b, so
n targets cost ceil(n/B) backward passes of the block instead of n (docs/method.md section 3).
``packed_head_edges`` is the per-head reference (section 4.6)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

import lxt

from ..attention_impl import attention_function
from ..objectives import Objective
from .stream import EdgeBuffer
from .trace import (
    Trace,
    chain,
    check_blocks,
    mid_module,
    node_relevance,
    token_strings,
    trace,
)
from .types import AttributionGraph, HeadEdges, edge_meta


def packing_size(
    n_tokens: int,
    hidden: int,
    intermediate: int,
    heads: int,
    budget_bytes: float,
    bytes_per_value: int = 4,
) -> int:
    """How many target rows fit one block's forward+backward in ``budget_bytes``.

    The estimate is per packed sequence: ~14 hidden-sized and ~4 MLP-sized activations per token
    kept for the backward pass, plus the attention matrix (heads x n x n) a few times over. It
    grows with the sequence length, so long prompts get smaller batches."""
    per_token = 14 * hidden + 4 * intermediate + 3 * heads * n_tokens
    per_sequence = per_token * n_tokens * bytes_per_value
    return max(1, int(budget_bytes // max(per_sequence, 1)))


def model_packing_size(model: nn.Module, traced: Trace, memory_budget_gb: float) -> int:
    """``packing_size`` for ``model``'s block sizes and the traced sequence."""
    config = model.config
    state = traced.states[0]
    hidden = state.shape[-1]
    return packing_size(
        state.shape[1],
        hidden,
        getattr(config, "intermediate_size", None) or 4 * hidden,
        config.num_attention_heads,
        memory_budget_gb * 2**30,
        state.element_size(),
    )


def packed_rows(
    run: Callable[[torch.Tensor], torch.Tensor],
    source: torch.Tensor,
    seed: torch.Tensor,
    targets: Sequence[int],
    capture: Callable[[nn.Module, Callable[[], torch.Tensor]], torch.Tensor] | None = None,
    last_block: nn.Module | None = None,
) -> np.ndarray:
    """Rows A[j, :] for the target positions ``targets`` in one backward pass.

    With ``capture`` the seed is placed at the mid-block state of ``last_block`` instead of at
    the output of ``run``."""
    batch = len(targets)
    x = source.expand(batch, *source.shape[1:]).clone().requires_grad_(True)
    out = capture(last_block, lambda: run(x)) if capture else run(x)
    seeds = torch.zeros_like(out)
    index = torch.tensor(list(targets), device=out.device)
    seeds[torch.arange(batch, device=out.device), index] = seed[0, index]
    (grad,) = torch.autograd.grad(out, x, seeds)
    return (x.detach() * grad).sum(-1).double().cpu().numpy()


def capture_mid(
    architecture: lxt.Architecture,
) -> Callable[[nn.Module, Callable[[], torch.Tensor]], torch.Tensor]:
    """Run a forward and return the mid-block state of ``block`` it passed through."""

    def run(block: nn.Module, forward: Callable[[], torch.Tensor]) -> torch.Tensor:
        box: list[torch.Tensor] = []
        handle = mid_module(block, architecture).register_forward_pre_hook(
            lambda m, a: box.append(a[0])
        )
        try:
            forward()
        finally:
            handle.remove()
        return box[0]

    return run


def build_graph(
    model: nn.Module,
    tokenizer: Any,
    token_ids: Sequence[int],
    objective: Objective,
    *,
    split: bool = False,
    node_threshold: float = 0.0,
    min_edge_weight: float = 0.0,
    top_per_target: int | None = None,
    batch_size: int | None = None,
    memory_budget_gb: float = 2.0,
    progress: Callable[[int, int], None] = lambda done, total: None,
    traced: Trace | None = None,
    layers: Sequence[int] | None = None,
) -> AttributionGraph:
    """The attribution graph by batch-packed multi-target backpropagation.

    ``node_threshold`` skips target nodes with |R| below it (fewer passes, but column sums are
    then only approximate -- the graph's meta says so). ``batch_size`` overrides the packing
    size derived from ``memory_budget_gb`` and the sequence length."""
    device = next(model.parameters()).device
    ids = torch.tensor([list(token_ids)], device=device)
    if traced is None:
        traced = trace(model, ids, objective, split=split)
    blocks = lxt.decoder_blocks(model)
    architecture = lxt.architecture_of(model)
    n = ids.shape[1]
    if batch_size is None:
        batch_size = model_packing_size(model, traced, memory_budget_gb)
    relevance = node_relevance(traced)
    buffer = EdgeBuffer(min_edge_weight, top_per_target)
    passes = skipped = 0
    step = 2 if split else 1
    total = len(blocks)
    # node layers kept: the embeddings plus the outputs of the chosen blocks (all by default)
    chosen = check_blocks(layers, total)
    if split and len(chosen) != total:
        raise ValueError("a layer subset cannot be combined with the mid-block split")
    kept_states = [0]
    with lxt.lrp_rules(model), torch.enable_grad():
        previous = -1
        for last in chosen:
            span = range(previous + 1, last + 1)  # the blocks between two kept node layers
            source_index = (previous + 1) * step
            target_index = source_index + 1 if split else last + 1
            source = traced.states[source_index]
            seed = traced.grads[target_index]
            active = [
                j
                for j in range(n)
                if abs(relevance[target_index, j]) > node_threshold and bool(seed[0, j].any())
            ]
            skipped += sum(1 for j in range(n) if seed[0, j].any()) - len(active)
            capture = capture_mid(architecture) if split else None
            run = chain(blocks, traced.calls, span)
            for start in range(0, len(active), batch_size):
                chunk = active[start : start + batch_size]
                rows = packed_rows(run, source, seed, chunk, capture, blocks[last])
                buffer.add(len(kept_states) - 1, len(kept_states), np.array(chunk), rows)
                passes += 1
            kept_states.append(target_index)
            if split:  # the MLP half is position-wise: mid -> output edges are the diagonal R_mid
                mid = target_index
                diagonal = np.diag(relevance[mid])
                positions = np.nonzero(relevance[mid] != 0)[0]
                buffer.add(len(kept_states) - 1, len(kept_states), positions, diagonal[positions])
                kept_states.append(mid + 1)
            previous = last
            progress(last + 1, total)
    meta = edge_meta(
        "packed",
        split=split,
        passes=passes,
        skipped=skipped,
        node_threshold=node_threshold,
        min_edge_weight=min_edge_weight,
        top_per_target=top_per_target,
        explained=traced.explained,
        exact_note="column sums equal the source relevance exactly",
        skipped_word="skipped",
        batch_size=batch_size,
    )
    return buffer.graph(
        token_strings(tokenizer, token_ids),
        tuple(traced.names[i] for i in kept_states),
        relevance[kept_states],
        meta,
    )


#: attention implementation that masks the head-output gradient of the replayed block
HEAD_MASK_IMPLEMENTATION = "reportgen_head_mask"
_HEAD_MASK: list[torch.Tensor] = []  # [batch, heads] while a block is replayed


def _head_masked_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    **kwargs: Any,
) -> tuple[torch.Tensor, Any]:
    """transformers' sdpa, with the gradient at the head outputs [batch, n, heads, d] multiplied
    by the current head mask (the forward is untouched, so every rule sees the same inputs)."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    output, weights = sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    if _HEAD_MASK and output.requires_grad:
        mask = _HEAD_MASK[-1].to(output.dtype)[:, None, :, None]
        output.register_hook(lambda grad: grad * mask)
    return output, weights


def packed_head_edges(
    model: nn.Module,
    tokenizer: Any,
    token_ids: Sequence[int],
    objective: Objective,
    *,
    blocks: Sequence[int] | None = None,
    batch_size: int | None = None,
    memory_budget_gb: float = 2.0,
    traced: Trace | None = None,
) -> HeadEdges:
    """Head-level edges by backpropagation, the reference for the closed form.

    For target j and head h: one modified backward from block output j (seeded with f's
    gradient there) with the gradient at the head outputs zeroed except for head h; the same
    with every head zeroed leaves only the residual path, and the difference is head h's edges.
    (j, h) rows are packed ``batch_size`` to a backward pass."""
    device = next(model.parameters()).device
    ids = torch.tensor([list(token_ids)], device=device)
    if traced is None:
        traced = trace(model, ids, objective, split=False)
    all_blocks = lxt.decoder_blocks(model)
    if len(traced.states) != len(all_blocks) + 1:
        raise ValueError("the per-head reference needs a trace without the mid-block split")
    chosen = check_blocks(blocks, len(all_blocks))
    n = ids.shape[1]
    n_heads = model.config.num_attention_heads
    if batch_size is None:
        batch_size = model_packing_size(model, traced, memory_budget_gb)
    per_block, residuals = [], []
    passes = 0
    with (
        lxt.lrp_rules(model),
        torch.enable_grad(),
        attention_function(model, HEAD_MASK_IMPLEMENTATION, _head_masked_attention),
    ):
        for index in chosen:
            source, seed = traced.states[index], traced.grads[index + 1]
            targets = [j for j in range(n) if bool(seed[0, j].any())]
            # head n_heads stands for "every head masked": the residual path alone
            rows = [(j, h) for j in targets for h in range(n_heads + 1)]
            result = np.zeros((n_heads + 1, n, n))
            run = chain(all_blocks, traced.calls, range(index, index + 1))
            for start in range(0, len(rows), batch_size):
                part = rows[start : start + batch_size]
                mask = torch.zeros(len(part), n_heads, dtype=source.dtype, device=device)
                for row, (_, h) in enumerate(part):
                    if h < n_heads:
                        mask[row, h] = 1
                _HEAD_MASK.append(mask)
                try:
                    values = packed_rows(run, source, seed, [j for j, _ in part])
                finally:
                    _HEAD_MASK.pop()
                passes += 1
                for row, (j, h) in enumerate(part):
                    result[h, j] = values[row]
            residual_rows = result[n_heads]
            per_block.append(result[:n_heads] - residual_rows[None])
            residuals.append(np.diag(residual_rows).copy())
    relevance = node_relevance(traced)
    return HeadEdges(
        tokens=token_strings(tokenizer, token_ids),
        blocks=tuple(chosen),
        heads=np.stack(per_block) if per_block else np.zeros((0, n_heads, n, n)),
        residual=np.stack(residuals) if residuals else np.zeros((0, n)),
        source_relevance=relevance[chosen],
        meta={"method": "packed", "backward_passes": passes, "batch_size": batch_size},
    )
