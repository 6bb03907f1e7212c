"""Graph metrics per node layer, as pure functions of a (pruned) AttributionGraph (docs/method.md section 7).

Definitions, for node layer s with n token positions, "active" = touched by a kept edge:
- nodes: active nodes in s.  edges_in / edges_out: kept edges ending / starting in s.
- edge_node_ratio: edges_in / nodes.  fan_in: edges_in / nodes with an incoming edge;
  fan_out: edges_out / nodes with an outgoing edge.
- sparsity: 1 - nodes / n.
- gini_in / gini_out: the Gini coefficient of a node's incoming (outgoing) |weights|, averaged
  over the nodes that have such edges.  gini_relevance: Gini of |R| over all n positions of s.
  Gini(x) = sum_i (2i - m - 1) x_(i) / (m sum x) for x sorted ascending, i = 1..m; 0 = equal.
- verticality: incoming |mass| from the same position / all incoming |mass|.
- hubs_90 (and _pos / _neg): the fewest positions whose |R| (positive R, negative R) holds 90 %
  of the layer's total of that kind; reported as a count and the list of positions.
- degree_hubs: active positions whose degree (in + out) exceeds mean + std over active nodes.
- centre_of_mass: sum_i i |R_i| / sum_i |R_i|.
- mean_lookback: mean of (target - source) over incoming edges.
- local_ratio: share of incoming edges with source position = target position.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .prune import active_nodes
from .types import AttributionGraph


def gini(values: np.ndarray) -> float:
    x = np.sort(np.abs(np.asarray(values, dtype=np.float64)))
    m = x.size
    if m == 0 or x.sum() == 0:
        return 0.0
    ranks = np.arange(1, m + 1)
    return float(((2 * ranks - m - 1) * x).sum() / (m * x.sum()))


def mass_hubs(values: np.ndarray, share: float = 0.9) -> list[int]:
    """The fewest positions whose values (>= 0) add up to ``share`` of the total."""
    values = np.asarray(values, dtype=np.float64)
    total = values.sum()
    if total <= 0:
        return []
    order = np.argsort(-values, kind="stable")
    cumulative = np.cumsum(values[order])
    count = int(np.searchsorted(cumulative, share * total - 1e-12 * total, side="left")) + 1
    return sorted(int(i) for i in order[:count])


def _mean_gini_per_node(nodes: np.ndarray, weights: np.ndarray) -> float:
    if nodes.size == 0:
        return 0.0
    return float(np.mean([gini(weights[nodes == node]) for node in np.unique(nodes)]))


def layer_metrics(graph: AttributionGraph, layer: int) -> dict[str, Any]:
    n = graph.n_tokens
    relevance = graph.node_relevance[layer]
    active = active_nodes(graph)[layer]
    incoming = graph.edge_target_layer == layer
    outgoing = graph.edge_source_layer == layer
    in_targets, in_sources = graph.edge_target[incoming], graph.edge_source[incoming]
    in_weights = np.abs(graph.edge_weight[incoming]).astype(np.float64)
    out_sources, out_weights = (
        graph.edge_source[outgoing],
        np.abs(graph.edge_weight[outgoing]).astype(np.float64),
    )
    nodes = int(active.sum())
    degree = np.bincount(in_targets, minlength=n) + np.bincount(out_sources, minlength=n)
    active_degree = degree[active]
    degree_hubs = []
    if active_degree.size:
        limit = active_degree.mean() + active_degree.std()
        degree_hubs = [int(i) for i in np.nonzero(active & (degree > limit))[0]]
    magnitude = np.abs(relevance)
    same = in_sources == in_targets
    return {
        "layer": graph.layers[layer],
        "nodes": nodes,
        "edges_in": int(incoming.sum()),
        "edges_out": int(outgoing.sum()),
        "edge_node_ratio": float(incoming.sum() / nodes) if nodes else 0.0,
        "fan_in": float(incoming.sum() / np.unique(in_targets).size) if in_targets.size else 0.0,
        "fan_out": float(outgoing.sum() / np.unique(out_sources).size) if out_sources.size else 0.0,
        "sparsity": 1.0 - nodes / n,
        "gini_in": _mean_gini_per_node(in_targets, in_weights),
        "gini_out": _mean_gini_per_node(out_sources, out_weights),
        "gini_relevance": gini(relevance),
        "verticality": float(in_weights[same].sum() / in_weights.sum())
        if in_weights.sum() > 0
        else 0.0,
        "hubs_90": mass_hubs(magnitude),
        "hubs_90_pos": mass_hubs(np.clip(relevance, 0, None)),
        "hubs_90_neg": mass_hubs(np.clip(-relevance, 0, None)),
        "degree_hubs": degree_hubs,
        "centre_of_mass": float((np.arange(n) * magnitude).sum() / magnitude.sum())
        if magnitude.sum() > 0
        else 0.0,
        "mean_lookback": float((in_targets - in_sources).mean()) if in_targets.size else 0.0,
        "local_ratio": float(same.mean()) if in_targets.size else 0.0,
        "relevance_sum": float(relevance.sum()),
    }


def graph_metrics(graph: AttributionGraph) -> list[dict[str, Any]]:
    """One metrics dict per node layer, in layer order."""
    return [layer_metrics(graph, layer) for layer in range(len(graph.layers))]
