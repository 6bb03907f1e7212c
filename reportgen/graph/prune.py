"""Pruning as pure functions: each takes an AttributionGraph and returns a new one (docs/method.md section 5)."""

from __future__ import annotations

import numpy as np

from .types import AttributionGraph


def prune_threshold(graph: AttributionGraph, tau: float) -> AttributionGraph:
    """Keep the edges with |weight| > tau."""
    return graph.with_edges(np.abs(graph.edge_weight) > tau, pruned_threshold=tau)


def cumulative_mass_cutoff(weights: np.ndarray, p: float) -> float:
    """The |weight| a_k* of the smallest set of edges (largest first) holding p of the total."""
    magnitudes = np.sort(np.abs(weights))[::-1]
    if magnitudes.size == 0 or magnitudes[0] == 0:
        return np.inf
    cumulative = np.cumsum(magnitudes, dtype=np.float64)
    k_star = int(np.searchsorted(cumulative, p * cumulative[-1], side="left"))
    return float(magnitudes[min(k_star, magnitudes.size - 1)])


def prune_cumulative_mass(graph: AttributionGraph, p: float = 0.85) -> AttributionGraph:
    """Per transition, keep the edges with |A| >= a_k*, where a_1 >= a_2 >= ... and k* is the
    smallest k whose cumulative |A| reaches p of the transition's total (ties at the cutoff stay)."""
    keep = np.zeros(graph.n_edges, dtype=bool)
    magnitude = np.abs(graph.edge_weight)
    for source_layer in np.unique(graph.edge_source_layer):
        members = graph.edge_source_layer == source_layer
        cutoff = cumulative_mass_cutoff(graph.edge_weight[members], p)
        keep |= members & (magnitude >= cutoff) & (magnitude > 0)
    return graph.with_edges(keep, pruned_cumulative_mass=p)


def prune_nodes(graph: AttributionGraph, threshold: float) -> AttributionGraph:
    """Drop every edge that touches a node with |relevance| <= threshold."""
    strong = np.abs(graph.node_relevance) > threshold
    keep = (
        strong[graph.edge_source_layer, graph.edge_source]
        & strong[graph.edge_target_layer, graph.edge_target]
    )
    return graph.with_edges(keep, pruned_node_threshold=threshold)


def connected_subgraph(
    graph: AttributionGraph, root: tuple[int, int] | None = None
) -> AttributionGraph:
    """Keep only the edges on paths that reach ``root`` (default: the last layer's last token,
    the node that carries the explained logit)."""
    root_layer, root_position = (
        root if root is not None else (len(graph.layers) - 1, graph.n_tokens - 1)
    )
    reached = np.zeros(graph.node_relevance.shape, dtype=bool)
    reached[root_layer, root_position] = True
    keep = np.zeros(graph.n_edges, dtype=bool)
    # edges run between consecutive node layers: sweep from the top down once
    for target_layer in range(root_layer, 0, -1):
        members = (graph.edge_target_layer == target_layer) & reached[
            target_layer, graph.edge_target
        ]
        keep |= members
        reached[graph.edge_source_layer[members], graph.edge_source[members]] = True
    return graph.with_edges(keep, connected_to=[int(root_layer), int(root_position)])


def active_nodes(graph: AttributionGraph) -> np.ndarray:
    """Boolean [layers, tokens]: nodes touched by at least one kept edge."""
    active = np.zeros(graph.node_relevance.shape, dtype=bool)
    active[graph.edge_source_layer, graph.edge_source] = True
    active[graph.edge_target_layer, graph.edge_target] = True
    return active


def finish_pruning(graph: AttributionGraph, node_threshold: float = 0.0) -> AttributionGraph:
    """After the edges are pruned by method: drop weak nodes, keep the part connected to the output."""
    if node_threshold > 0:
        graph = prune_nodes(graph, node_threshold)
    return connected_subgraph(graph)


def prune(
    graph: AttributionGraph,
    method: str,
    *,
    p: float = 0.85,
    threshold: float = 0.01,
    node_threshold: float = 0.0,
) -> AttributionGraph:
    """The case file's pruning recipe: edges by method, weak nodes, then the connected part."""
    if method == "none":
        return graph
    pruned = (
        prune_cumulative_mass(graph, p)
        if method == "cum_mass"
        else prune_threshold(graph, threshold)
    )
    return finish_pruning(pruned, node_threshold)
