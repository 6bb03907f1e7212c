"""Coarse to fine: the hidden dimensions and MLP neurons behind the strongest graph nodes."""

from __future__ import annotations

from typing import Any

import numpy as np

from .prune import active_nodes
from .trace import Trace
from .types import AttributionGraph


def strongest_nodes(graph: AttributionGraph, count: int) -> list[tuple[int, int]]:
    """(layer index, position) of the ``count`` nodes still in ``graph`` (touched by a kept
    edge) with the largest |relevance|, strongest first (ties in layer-major order)."""
    active = active_nodes(graph)
    magnitude = np.where(active, np.abs(graph.node_relevance), -1.0)
    order = np.argsort(-magnitude, axis=None, kind="stable")[:count]
    found = []
    for flat in order:
        layer, position = divmod(int(flat), graph.n_tokens)
        if magnitude[layer, position] < 0:
            break
        found.append((layer, position))
    return found


def refine_neurons(
    traced: Trace, graph: AttributionGraph, *, top_nodes: int = 8, top_units: int = 10
) -> list[dict[str, Any]]:
    """For the strongest nodes still in ``graph`` (after pruning), the hidden dimensions (h * g
    per dimension) and, for block outputs, the MLP neurons of that block at that position that
    carry the most relevance."""
    details = []
    for layer, position in strongest_nodes(graph, top_nodes):
        state = traced.names.index(graph.layers[layer])  # a layer-subset graph skips states
        per_dim = (
            (traced.states[state][0, position] * traced.grads[state][0, position])
            .double()
            .cpu()
            .numpy()
        )
        entry: dict[str, Any] = {
            "layer": graph.layers[layer],
            "position": position,
            "token": graph.tokens[position],
            "relevance": float(graph.node_relevance[layer, position]),
            "dimensions": _top_units(per_dim, top_units),
        }
        name = graph.layers[layer]
        if name not in ("emb",) and not name.endswith(".mid") and traced.neuron_relevance:
            block = int(name)
            neurons = traced.neuron_relevance[block][position].double().cpu().numpy()
            entry["mlp_neurons"] = _top_units(neurons, top_units)
            entry["mlp_relevance"] = float(neurons.sum())
        details.append(entry)
    return details


def _top_units(values: np.ndarray, count: int) -> list[dict[str, float | int]]:
    order = np.argsort(-np.abs(values), kind="stable")[:count]
    return [{"index": int(i), "relevance": float(values[i])} for i in order]
