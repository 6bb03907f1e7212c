"""The graph step of a case: edges (cached on disk), pruning, metrics, neuron details."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..attribution import InputPass
from ..cases import GraphSettings
from ..models import LoadedModel, cache_dir
from ..objectives import Objective
from . import store
from .closed import closed_form
from .closed_heads import closed_form_heads
from .metrics import graph_metrics
from .neurons import refine_neurons, strongest_nodes
from .packed import build_graph, packed_head_edges
from .prune import finish_pruning, prune
from .session import ClosedFormUnsupportedError, supports_closed_form
from .trace import trace
from .types import AttributionGraph, HeadEdges

#: from this many tokens on, the closed form prunes while it streams (the full edge set of a
#: layer grows like n^2: 10k tokens would be 1.5e9 edges)
STREAMING_FROM = 4096


@dataclass(frozen=True)
class GraphResult:
    full: AttributionGraph
    pruned: AttributionGraph
    metrics: list[dict[str, Any]]
    neurons: list[dict[str, Any]]
    #: the trace's AttnLRP pass when the graph was computed (None: read from the cache); the
    #: case's attribution is read from it instead of running the same pass again
    lrp_pass: InputPass | None = None


def choose_method(model: Any, method: str, layers: list[int] | None) -> str:
    """``auto`` takes the closed form where the architecture has its shape and every block's
    output is a node layer; ``packed`` always works and stays the reference."""
    if method == "packed":
        return "packed"
    closed_ok = supports_closed_form(model) and layers is None
    if method == "closed" and not closed_ok:
        reason = "a layer subset" if layers is not None else "this architecture"
        raise ValueError(f'graph.method: no closed form for {reason}; use "packed" or "auto"')
    return "closed" if closed_ok else "packed"


def compute_graph(
    loaded: LoadedModel,
    token_ids: tuple[int, ...],
    objective: Objective,
    settings: GraphSettings,
    *,
    model_identity: str,
    code: str,
    use_cache: bool = True,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> GraphResult:
    import torch

    layers = None if settings.layers == "all" else list(settings.layers)
    use_closed = choose_method(loaded.model, settings.method, layers) == "closed"
    # the closed form costs the same with or without skipped targets: compute it exactly and
    # leave the node threshold to pruning
    node_threshold = 0.0 if use_closed else settings.node_threshold
    # long prompts: prune by method while the closed form streams, never holding all n^2 edges
    streaming: dict[str, float] = {}
    if use_closed and len(token_ids) >= STREAMING_FROM and settings.prune != "none":
        streaming = (
            {"cumulative_mass": settings.p}
            if settings.prune == "cum_mass"
            else {"min_edge_weight": settings.threshold}
        )
    key = store.graph_key(
        model_identity,
        token_ids,
        objective,
        settings.split,
        node_threshold,
        f"{code}|{'closed' if use_closed else 'packed'}|{sorted(streaming.items())}",
        layers,
    )
    folder = cache_dir() / "graphs"
    cached = store.load(folder, key, len(token_ids)) if use_cache else None
    lrp_pass = None
    if cached is not None:
        full, node_neurons = cached
    else:
        full = traced = None
        if use_closed:
            try:
                traced, full = closed_form(
                    loaded.model,
                    loaded.tokenizer,
                    token_ids,
                    objective,
                    split=settings.split,
                    progress=progress,
                    **streaming,
                )
            except ClosedFormUnsupportedError:
                if settings.method == "closed":
                    raise
        if full is None:  # packed: the reference, and the fallback for what the closed form refuses
            ids = torch.tensor([list(token_ids)], device=loaded.model.device)
            traced = trace(loaded.model, ids, objective, split=settings.split)
            full = build_graph(
                loaded.model,
                loaded.tokenizer,
                token_ids,
                objective,
                split=settings.split,
                node_threshold=settings.node_threshold,
                progress=progress,
                traced=traced,
                layers=layers,
            )
        # neuron details for every node that could survive pruning are cheap to keep
        node_neurons = refine_neurons(traced, full, top_nodes=64)
        lrp_pass = traced.lrp_pass
        store.save(folder, key, full, node_neurons)  # --no-cache recomputes, then refreshes
    if streaming:  # edges are already pruned by method
        pruned = finish_pruning(full, settings.node_threshold)
    else:
        pruned = prune(
            full,
            settings.prune,
            p=settings.p,
            threshold=settings.threshold,
            node_threshold=settings.node_threshold,
        )
    kept = {(pruned.layers[layer], position) for layer, position in strongest_nodes(pruned, 8)}
    neurons = [n for n in node_neurons if (n["layer"], n["position"]) in kept]
    return GraphResult(
        full=full,
        pruned=pruned,
        metrics=graph_metrics(pruned),
        neurons=neurons,
        lrp_pass=lrp_pass,
    )


def compute_head_edges(
    loaded: LoadedModel,
    token_ids: tuple[int, ...],
    objective: Objective,
    *,
    blocks: list[int] | None,
    method: str = "auto",
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> HeadEdges:
    """One edge matrix per attention head for ``blocks`` (all when None): dense n x n per head,
    so ask for a few blocks on long prompts. The closed form gets them from its one backward
    pass; ``packed`` is the reference (a backward pass per target and head, packed)."""
    if choose_method(loaded.model, method, None) == "closed":
        return closed_form_heads(
            loaded.model, loaded.tokenizer, token_ids, objective, blocks=blocks, progress=progress
        )
    return packed_head_edges(loaded.model, loaded.tokenizer, token_ids, objective, blocks=blocks)
