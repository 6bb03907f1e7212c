"""The data of the dossier's interactive graph explorer (assets/explorer.js draws it).

From the result's pruned graph (the ``reportgen graph`` JSON: tokens, layers, node_relevance,
edges) this keeps what is worth drawing and bounds it, so a 10,000-token case stays smooth:
at most ``MAX_EDGES`` edges, the strongest by |weight| whose endpoints fit in ``MAX_NODES``
nodes (the output node always). The token axis is grouped to the positions
that hold a drawn node. The full graph stays in the downloads (graph.npz, edges.csv).

Node ids are derived from content (``n<layer index>-<position>``) and every list is sorted, so
the same result gives byte-identical pages. Numbers are rounded to 6 significant digits (what
the panel can show); the downloads keep full precision."""

from __future__ import annotations

from typing import Any

from ..results import CaseResult
from .tokens import visible_text

MAX_EDGES = 4000
MAX_NODES = 2500
TOP_NEURONS = 8


def _r(value: float) -> float:
    return float(f"{float(value):.6g}")


def node_id(layer_index: int, position: int) -> str:
    return f"n{layer_index}-{position}"


def explorer_data(result: CaseResult) -> dict[str, Any] | None:
    """Nodes, edges, token labels and neuron detail for the explorer; None without a graph."""
    if result.graph is None:
        return None
    graph = result.graph
    if not graph.layers:
        return None
    layers = list(graph.layers)
    index = {name: i for i, name in enumerate(layers)}
    relevance = graph.node_relevance.tolist()
    n_tokens = graph.n_tokens
    output = (len(layers) - 1, n_tokens - 1)

    # (source layer index, source, target layer index, target, weight)
    edges = list(
        zip(
            graph.edge_source_layer.tolist(),
            graph.edge_source.tolist(),
            graph.edge_target_layer.tolist(),
            graph.edge_target.tolist(),
            graph.edge_weight.tolist(),
            strict=True,
        )
    )
    edges_total = len(edges)
    endpoints = {(sl, s) for sl, s, _, _, _ in edges} | {(tl, t) for _, _, tl, t, _ in edges}
    nodes_total = len(endpoints | {output})
    # strongest first (ties by position: deterministic); an edge is drawn while its endpoints
    # fit in the node budget, so what is drawn is the strongest connected structure
    edges.sort(key=lambda e: (-abs(e[4]), e[0], e[1], e[2], e[3]))
    chosen = {output}
    kept = []
    for e in edges:
        new = {(e[0], e[1]), (e[2], e[3])} - chosen
        if len(chosen) + len(new) > MAX_NODES:
            continue
        chosen |= new
        kept.append(e)
        if len(kept) == MAX_EDGES:
            break
    edges = kept
    nodes = sorted(chosen)
    position_of = {n: i for i, n in enumerate(nodes)}
    columns = sorted({pos for _, pos in nodes})
    neurons: dict[str, Any] = {}
    for n in result.neurons or []:
        key = (index.get(n.layer), n.position)
        if key in position_of:
            neurons[node_id(*key)] = {
                "top": [[t.index, _r(t.relevance)] for t in n.dimensions[:TOP_NEURONS]],
                "mlp": [[t.index, _r(t.relevance)] for t in (n.mlp_neurons or ())[:TOP_NEURONS]],
            }
    edges.sort(key=lambda e: (e[2], e[3], e[0], e[1]))
    max_weight = max((abs(e[4]) for e in edges), default=0.0)
    att = result.attribution
    # the decoded text of each token (" are"), as the heatmap shows it; the graph's own token
    # strings ("Ġare") when the attribution does not match the graph
    texts = att.token_texts if len(att.token_texts) == n_tokens else graph.tokens
    return {
        "layers": layers,
        "columns": columns,
        "labels": [visible_text(str(texts[pos])) for pos in columns],
        "nodes": [[li, pos, _r(relevance[li][pos])] for li, pos in nodes],
        "edges": [[position_of[(sl, s)], position_of[(tl, t)], _r(w)] for sl, s, tl, t, w in edges],
        "output": position_of[output],
        "neurons": neurons,
        "max_weight": _r(max_weight),
        "target": visible_text(att.target.text),
        "contrast": visible_text(att.contrast.text) if att.contrast is not None else None,
        "counts": {
            "nodes_total": nodes_total,
            "edges_total": edges_total,
            "nodes_drawn": len(nodes),
            "edges_drawn": len(edges),
        },
    }
