"""Exact attribution-graph edges in closed form: all targets of a layer at once, from one
modified backward pass (docs/method.md section 4).

Everything in a block except the attention mixing is position-wise, so row j of the gradients
one backward pass of f leaves at every block is what a backward seeded at target j alone would
give; the edges of each block are then attention-sized products (``closed_layer``), streamed in
chunks of target rows and optionally pruned on the way (``stream``, section 6)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ..objectives import Objective
from .closed_layer import chunk_edges
from .session import Session, open_session
from .stream import EdgeBuffer, stream_diagonal, stream_transition
from .trace import Trace, token_strings
from .types import AttributionGraph, edge_meta


def layer_step(
    session: Session,
    layer: int,
    buffer: EdgeBuffer,
    *,
    chunk: int,
    node_threshold: float,
    cumulative_mass: float | None,
) -> tuple[int, int, float]:
    """Block ``layer``'s edges (and, with the mid-block split, its MLP half's diagonal) into
    ``buffer``. Returns (skipped targets, recomputed chunks, the largest column-sum error relative
    to the source layer's total |R|)."""
    traced, relevance, n = session.traced, session.relevance, session.n
    source_index = layer * session.step
    target_index = source_index + 1
    attention, tensors, residual = session.layer(layer)
    seed = traced.grads[target_index][0]
    active = (seed != 0).any(-1).cpu().numpy() & (np.abs(relevance[target_index]) > node_threshold)
    skipped = int((seed != 0).any(-1).sum()) - int(active.sum())
    columns_sum = torch.zeros(n, dtype=torch.float64, device=traced.states[0].device)
    recomputed = stream_transition(
        buffer,
        lambda start: chunk_edges(attention, tensors, residual, start, chunk),
        range(0, n, chunk),
        active,
        source_index,
        target_index,
        columns_sum,
        cumulative_mass,
    )
    scale = max(float(np.abs(relevance[source_index]).sum()), 1e-30)
    error = float(np.abs(columns_sum.cpu().numpy() - relevance[source_index]).max()) / scale
    session.release(layer)  # the layer's tensors go with this function's frame
    if session.step == 2:  # the MLP half is position-wise: the diagonal R_mid
        stream_diagonal(buffer, target_index, relevance[target_index], cumulative_mass)
    return skipped, recomputed, error


def closed_form(
    model: nn.Module,
    tokenizer: Any,
    token_ids: Sequence[int],
    objective: Objective,
    *,
    split: bool = False,
    chunk: int = 256,
    node_threshold: float = 0.0,
    min_edge_weight: float = 0.0,
    top_per_target: int | None = None,
    cumulative_mass: float | None = None,
    checkpoint: bool | None = None,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> tuple[Trace, AttributionGraph]:
    """The trace of f's modified backward and the attribution graph from it, in closed form.

    Same nodes, node relevance and edge semantics as ``packed.build_graph`` (the reference).

    Pruning while streaming (no layer's n x n edges are ever held):
    ``min_edge_weight`` keeps |A| > tau (= ``prune.prune_threshold``); ``cumulative_mass=p``
    keeps, per transition, the edges ``prune.prune_cumulative_mass(graph, p)`` keeps on the full
    graph (of the edges the other options leave). ``checkpoint`` recomputes each block in the
    backward pass instead of storing its activations (default: from ``attribution.recompute_from(model)`` tokens)."""
    if cumulative_mass is not None and top_per_target is not None:
        raise ValueError("cumulative_mass and top_per_target cannot be combined")
    with open_session(model, token_ids, objective, split=split, checkpoint=checkpoint) as session:
        buffer = EdgeBuffer(min_edge_weight, top_per_target)
        column_error = 0.0
        skipped = recomputed = 0
        for layer in range(len(session.blocks)):
            layer_skipped, layer_recomputed, error = layer_step(
                session,
                layer,
                buffer,
                chunk=chunk,
                node_threshold=node_threshold,
                cumulative_mass=cumulative_mass,
            )
            skipped += layer_skipped
            recomputed += layer_recomputed
            column_error = max(column_error, error)
            progress(layer + 1, len(session.blocks))
    traced = session.traced
    extra: dict[str, Any] = {}
    if cumulative_mass is not None:
        extra = {"pruned_cumulative_mass": cumulative_mass, "recomputed_chunks": recomputed}
    meta = edge_meta(
        "closed",
        split=split,
        passes=1,
        skipped=skipped,
        node_threshold=node_threshold,
        min_edge_weight=min_edge_weight,
        top_per_target=top_per_target,
        explained=traced.explained,
        # the note names the method's section (the text is part of every shipped graph's meta)
        exact_note="closed form (docs/method.md section 4): column sums equal the source relevance exactly",
        skipped_word="left out",
        cumulative_mass=cumulative_mass,
        chunk=chunk,
        checkpointed=session.checkpoint,
        column_sum_error=column_error,
        **extra,
    )
    graph = buffer.graph(
        token_strings(tokenizer, token_ids), tuple(traced.names), session.relevance, meta
    )
    return traced, graph


def closed_form_graph(*args: Any, **kwargs: Any) -> AttributionGraph:
    """``closed_form`` (same arguments) without the trace: one parameter list to keep."""
    return closed_form(*args, **kwargs)[1]
