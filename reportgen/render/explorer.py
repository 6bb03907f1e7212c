"""The data of the dossier's interactive graph explorer (assets/explorer.js draws it).

From the result's pruned graph (the ``reportgen graph`` JSON: tokens, layers, node_relevance,
edges) this keeps what is worth drawing and bounds it, so a 10,000-token case stays smooth:
at most ``MAX_EDGES`` edges, the strongest by |weight| whose endpoints fit in ``MAX_NODES``
nodes (the output node always). The token axis is grouped to the positions
that hold a drawn node. The full graph stays in the downloads (graph.npz, edges.csv).

For the circuit tools (assets/explorer-pins.js, explorer-export.js) the data also carries the
case file's pinned subgraph (``[graph] pinned`` / ``supernodes``: the view a page opens on when
its link names none), the interventions' numbers by node id, and each drawn column's token id
(the Neuronpedia node ids of an exported subgraph). Pinned and ablated nodes are always drawn.

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
    # the case's pinned nodes and the ablated ones are drawn whatever their edges
    pinned, groups = _pinned(graph.meta or {}, index, n_tokens)
    ablated = _ablated(result, index, n_tokens)
    chosen = {output} | set(pinned) | set(ablated)
    nodes_total = len(endpoints | chosen)
    # strongest first (ties by position: deterministic); an edge is drawn while its endpoints
    # fit in the node budget, so what is drawn is the strongest connected structure
    edges.sort(key=lambda e: (-abs(e[4]), e[0], e[1], e[2], e[3]))
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
    ids = att.token_ids if len(att.token_ids) == n_tokens else None
    return {
        "case_id": result.case_id,
        "layers": layers,
        "columns": columns,
        "labels": [visible_text(str(texts[pos])) for pos in columns],
        "token_ids": [int(ids[pos]) for pos in columns] if ids is not None else None,
        "nodes": [[li, pos, _r(relevance[li][pos])] for li, pos in nodes],
        "edges": [[position_of[(sl, s)], position_of[(tl, t)], _r(w)] for sl, s, tl, t, w in edges],
        "output": position_of[output],
        "neurons": neurons,
        "max_weight": _r(max_weight),
        "target": visible_text(att.target.text),
        "contrast": visible_text(att.contrast.text) if att.contrast is not None else None,
        "pinned": {
            "ids": [node_id(*n) for n in pinned],
            "supernodes": [[label, *(node_id(*n) for n in members)] for label, members in groups],
        },
        "interventions": _interventions(result, ablated, index),
        "counts": {
            "nodes_total": nodes_total,
            "edges_total": edges_total,
            "nodes_drawn": len(nodes),
            "edges_drawn": len(edges),
        },
    }


Key = tuple[int, int]  # (layer index, position)


def _key(layer: Any, position: Any, index: dict[str, int], n_tokens: int) -> Key | None:
    """A node named by the result (layer name, position) as the explorer's key; None when it
    is not a node of this graph."""
    li = index.get(str(layer))
    pos = int(position)
    return (li, pos) if li is not None and 0 <= pos < n_tokens else None


def _pinned(
    meta: dict[str, Any], index: dict[str, int], n_tokens: int
) -> tuple[list[Key], list[tuple[str, list[Key]]]]:
    """The case file's pinned nodes and supernodes (label, members) from the graph's meta."""
    pinned = [
        k for layer, pos in meta.get("pinned") or [] if (k := _key(layer, pos, index, n_tokens))
    ]
    groups = []
    for group in meta.get("supernodes") or []:
        members = [
            k
            for layer, pos in group.get("nodes") or []
            if (k := _key(layer, pos, index, n_tokens)) and k in pinned
        ]
        if members:
            groups.append((str(group["label"]), members))
    return pinned, groups


def _ablated(result: CaseResult, index: dict[str, int], n_tokens: int) -> dict[Key, float]:
    """f after ablating each of the interventions' nodes alone, by node."""
    if result.interventions is None:
        return {}
    out = {}
    for n in result.interventions.nodes:
        if (k := _key(n.layer, n.position, index, n_tokens)) is not None:
            out[k] = _r(n.f_ablated)
    return out


def _interventions(
    result: CaseResult, ablated: dict[Key, float], index: dict[str, int]
) -> dict[str, Any] | None:
    """The interventions' numbers the explorer shows next to pinned nodes and groups: f_clean,
    f ablated per node (by id), and the case file's pinned set and supernodes ablated at once
    (matched by their node sets)."""
    iv = result.interventions
    if iv is None:
        return None

    def group(label: str, effect: Any) -> dict[str, Any]:
        return {
            "label": label,
            "ids": [node_id(index[str(layer)], int(pos)) for layer, pos in effect.nodes],
            "f_ablated": _r(effect.f_ablated),
            "flips": bool(effect.flips),
        }

    groups = [] if iv.pinned is None else [group("", iv.pinned)]
    groups += [group(label, effect) for label, effect in iv.supernodes]
    sub = iv.subgraph
    return {
        "baseline": iv.baseline,
        "f_clean": _r(iv.f_clean),
        "nodes": {node_id(*k): f for k, f in sorted(ablated.items())},
        "groups": groups,
        "subgraph": None
        if sub is None
        else {"count": len(sub.nodes), "f_ablated": _r(sub.f_ablated), "flips": bool(sub.flips)},
    }
