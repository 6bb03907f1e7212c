"""Our token-level attribution graph in the graph-file format of circuit-tracer and Neuronpedia.

circuit-tracer's ``create_graph_files`` writes, and Neuronpedia's graph viewer loads, one JSON
object ``{metadata, qParams, nodes, links}`` (schema: Neuronpedia's
``apps/webapp/app/api/graph/graph-schema.json``; node fields as in circuit-tracer's
``frontend/graph_models.py``). Their nodes are transcoder features, error nodes, token
embeddings and logits; ours are whole hidden states. The mapping, written into every file's
``metadata.info.description``:

- the ``emb`` layer (the input of the first block) -> ``feature_type = "embedding"`` nodes on
  layer ``"E"``, one per input token (``E_<token id>_<position>``), as circuit-tracer keeps them;
- every later node layer (a block's output ``"<l>"`` or its mid-block state ``"<l>.mid"``) ->
  ``feature_type = "residual stream"`` nodes with ``feature = -1`` (no dictionary feature: the
  whole residual vector) on layer ``"0"``, ``"1"``, ... in depth order; ``metadata.info``
  lists which of our layers each number is;
- the explained value f -> one ``feature_type = "logit"`` node at the last position on layer
  ``<last residual layer + 2>`` (circuit-tracer's ``n_layers + 1``), ``is_target_logit`` true,
  fed by the last layer's nodes with weight R (their relevance: the share of f they carry);
- our edges (s, i) -> (t, j) with weight A_{j,i} -> links with the same weight.

Every node also carries our own numbers (``relevance``, ``reportgen_layer``); the viewer ignores
keys it does not know. ``influence`` is left null: circuit-tracer's cumulative influence is not
what our pruning computes, so no node threshold is set either."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .. import __version__
from ..graph.types import AttributionGraph
from ..results import Attribution, CaseResult

FEATURE_TYPE_RESIDUAL = "residual stream"


def _layer_names(layers: Sequence[str]) -> dict[str, str]:
    """Our node layer -> the viewer's layer label ("E", "0", "1", ...)."""
    names = {layers[0]: "E"}
    for k, layer in enumerate(layers[1:]):
        names[layer] = str(k)
    return names


def _describe(layer: str) -> str:
    if layer == "emb":
        return "token embedding (input of block 0)"
    if layer.endswith(".mid"):
        return f"block {layer[:-4]}, mid-block (after attention)"
    return f"block {layer} output"


def neuronpedia_graph(
    graph: AttributionGraph | Mapping[str, Any],
    *,
    slug: str,
    model: str,
    token_ids: Sequence[int],
    token_texts: Sequence[str],
    target_text: str,
    target_id: int,
    target_prob: float | None,
    objective: str,
    explained: float,
    contrast_text: str | None = None,
) -> dict[str, Any]:
    """The graph file for ``graph`` (an ``AttributionGraph``, or the ``reportgen graph`` JSON
    form of one) of the input
    ``token_ids`` / ``token_texts``."""
    if not isinstance(graph, AttributionGraph):
        graph = AttributionGraph.from_json(graph)
    layers = list(graph.layers)
    n = len(token_ids)
    if graph.n_tokens != n or len(token_texts) != n:
        raise ValueError(f"graph of {graph.n_tokens} tokens, input of {n}")
    relevance = graph.node_relevance.tolist()
    label = _layer_names(layers)
    index = {layer: i for i, layer in enumerate(layers)}

    def nid(layer: str, pos: int) -> str:
        if layer == layers[0]:
            return f"E_{int(token_ids[pos])}_{pos}"
        return f"{label[layer]}_-1_{pos}"

    def node(layer: str, pos: int) -> dict[str, Any]:
        r = float(relevance[index[layer]][pos])
        text = token_texts[pos]
        base = {
            "node_id": nid(layer, pos),
            "layer": label[layer],
            "ctx_idx": pos,
            "influence": None,
            "activation": None,
            "relevance": r,
            "reportgen_layer": layer,
        }
        if layer == layers[0]:
            return {
                **base,
                "feature": pos,
                "feature_type": "embedding",
                "jsNodeId": f"E_{int(token_ids[pos])}-{pos}",
                "clerp": f"Emb: {text!r} (R = {r:+.4g})",
            }
        return {
            **base,
            "feature": -1,
            "feature_type": FEATURE_TYPE_RESIDUAL,
            "jsNodeId": f"{label[layer]}_-1-{pos}",
            "clerp": f"{_describe(layer)} at {text!r} (R = {r:+.4g})",
        }

    used: set[tuple[str, int]] = {(layers[0], pos) for pos in range(n)}
    links = []
    for e in graph.edges():
        source = (e.source_layer, e.source)
        target = (e.target_layer, e.target)
        used |= {source, target}
        links.append({"source": nid(*source), "target": nid(*target), "weight": e.weight})

    logit_layer = str(len(layers) - 1 + 1)  # residual layers are 0..len-2; circuit-tracer's n+1
    logit_id = f"{logit_layer}_{int(target_id)}_{n - 1}"
    prob = float(target_prob) if target_prob is not None else 0.0
    what = f"{target_text!r}" + (f" over {contrast_text!r}" if contrast_text is not None else "")
    logit = {
        "node_id": logit_id,
        "feature": int(target_id),
        "layer": logit_layer,
        "ctx_idx": n - 1,
        "feature_type": "logit",
        "token_prob": prob,
        "is_target_logit": True,
        "jsNodeId": f"L_{int(target_id)}-{n - 1}",
        "clerp": f"Output {what}: {objective} = {explained:+.4g} (p={prob:.3f})",
        "influence": None,
        "activation": None,
        "relevance": float(explained),
        "reportgen_layer": "output",
    }
    last = layers[-1]
    for pos in range(n):
        r = float(relevance[-1][pos])
        if r != 0.0 and len(layers) > 1:
            used.add((last, pos))
            links.append({"source": nid(last, pos), "target": logit_id, "weight": r})

    nodes = [node(layer, pos) for layer, pos in sorted(used, key=lambda u: (index[u[0]], u[1]))]
    nodes.append(logit)
    meta = graph.meta
    mapping = ", ".join(f"{label[layer]} = {_describe(layer)}" for layer in layers)
    description = (
        "Token-level attribution graph from reportgen (contrastive AttnLRP): every node is a "
        "whole hidden state h[layer, position], not a dictionary feature. 'embedding' nodes are "
        "the input of the first block, 'residual stream' nodes (feature -1) the residual state "
        f"after a block or its attention half, the logit node the explained value f = {objective}"
        f" = {explained:+.6g}. A link's weight is the relevance that flows from its source "
        "state into its target state (column sums are exact); a link into the logit node is the "
        f"source's relevance. Layers: {mapping}; logit = layer {logit_layer}."
    )
    settings = {k: meta[k] for k in ("method", "backward_passes", "batch_size") if k in meta}
    pruning = {k: meta[k] for k in ("prune", "p") if k in meta}
    return {
        "metadata": {
            "slug": slug,
            "scan": model,
            "transcoder_list": [],
            "prompt_tokens": [str(t) for t in token_texts],
            "prompt": "".join(str(t) for t in token_texts),
            "schema_version": 1,
            "info": {
                "description": description,
                "generator": {"name": "reportgen", "version": __version__},
            },
            "generation_settings": settings,
            "pruning_settings": pruning,
            "reportgen_layers": {label[layer]: layer for layer in layers},
        },
        "qParams": {
            "pinnedIds": [],
            "supernodes": [],
            "linkType": "both",
            "clickedId": "",
            "sg_pos": "",
        },
        "nodes": nodes,
        "links": links,
    }


def neuronpedia_from_attribution(
    graph: AttributionGraph | Mapping[str, Any], attribution: Attribution, *, slug: str, model: str
) -> dict[str, Any]:
    """The graph file of ``graph`` with the prompt, target and f of its ``attribution``."""
    att = attribution
    return neuronpedia_graph(
        graph,
        slug=slug,
        model=model,
        token_ids=att.token_ids,
        token_texts=att.token_texts,
        target_text=att.target.text,
        target_id=att.target.id,
        target_prob=att.target.prob,
        objective=att.objective,
        explained=att.explained,
        contrast_text=att.contrast.text if att.contrast is not None else None,
    )


def neuronpedia_from_result(result: CaseResult) -> dict[str, Any] | None:
    """The graph file of a CaseResult's graph (the dossier download); None without a graph."""
    if result.graph is None:
        return None
    return neuronpedia_from_attribution(
        result.graph, result.attribution, slug=result.case_id, model=result.model
    )
