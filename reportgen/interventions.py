"""Interventions that test the graph inside the model (what the model would have written is
:mod:`reportgen.continuations`).

A node of the attribution graph is (layer, position): ``"emb"``, the input of the first block,
or ``"0"``, ``"1"``, ..., a block's output hidden state (docs/method.md section 3). *Ablating* a
node replaces its hidden state h_l[i] by the mean of h_l over the input's positions in the clean
forward (``mean``) or by zeros (``zero``), and every later block is recomputed from there; a set
of nodes is ablated in one forward, each replacement applied at its own layer. The objective f
is the case's (``Objective.value`` of the last position's logits). Method: docs/method.md
section 10.

Cost: the clean forward once (f, the per-layer means and its KV cache: the case's one plain read
of the input, ``reportgen.clean_forward``, which the continuations and the flip test share), then
each ablated node set. In a causal LM, ablating positions from i on leaves every earlier position as it was, so a
set whose first position is late runs only the positions from there, on the clean forward's
cache cut to the earlier ones (a node at the last of 2,000 positions costs one position, not
2,000). The other sets run as rows of batched forwards: a batch runs its first blocks once, at
batch size 1, and widens to one row per set at the first layer any of its sets ablates, so the
blocks before that layer are not repeated. Each set takes the cheaper way (``suffix_cheaper``);
both give f to float rounding.

The computing side returns frozen dataclasses of numbers; the dossier's words and table are
written on the render side (``reportgen/render/circuits.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .clean_forward import CleanForward, clean_forward, hook_layers
from .continuations import Continuations, case_continuations
from .graph.types import AttributionGraph
from .kv_cache import KeysValues, prefix_cache
from .results import Interventions, Node, NodeEffect, SubgraphEffect

BASELINES = ("mean", "zero")
#: how many of the pruned graph's strongest nodes are ablated one at a time
STRONGEST = 10
#: token rows one batched ablation forward may hold (rows x input tokens)
BATCH_TOKENS = 8192

# --- ablation -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AblationRun:
    """f of the clean forward and f (and the top next token) after ablating each node set."""

    f_clean: float
    top_clean: int
    f: tuple[float, ...]
    top: tuple[int, ...]


def layer_index(name: str, blocks: int) -> int:
    """-1 for ``"emb"`` (the first block's input), b for block b's output ``"b"``. Mid-block
    states (``"b.mid"``) are not module boundaries a hook can replace: ValueError."""
    if name == "emb":
        return -1
    if name.isdigit() and int(name) < blocks:
        return int(name)
    raise ValueError(
        f"cannot ablate layer {name!r}: a node layer is 'emb' or a block output '0'..'{blocks - 1}'"
    )


def _last_logits(model: Any, ids: Any) -> Any:
    from .attribution import forward_kwargs

    return model(input_ids=ids, **forward_kwargs(model)).logits[:, -1]


def suffix_cheaper(tokens: int, start: int, first_layer: int, blocks: int) -> bool:
    """Whether a set whose first ablated position is ``start`` (its first layer
    ``first_layer``, -1 for the embeddings) costs less run on positions ``start`` on (every
    block, from the clean cache) than as a row of a batched forward (the blocks after its
    first layer, on every position). Costs are token-blocks."""
    return (tokens - start) * blocks < tokens * (blocks - 1 - first_layer)


def _suffix_logits(
    model: Any,
    blocks: Any,
    ids: Any,
    cache: KeysValues,
    plan: list[tuple[int, int]],
    means: Any,
) -> Any:
    """The last logits with ``plan``'s nodes ablated, run on the positions from the plan's
    first one on, the earlier positions' keys and values taken from the clean cache."""
    from .attribution import cache_argument, forward_kwargs

    start = min(position for _, position in plan)
    piece = prefix_cache(cache, start)
    at: dict[int, list[int]] = {}
    for layer, position in plan:
        at.setdefault(layer, []).append(position - start)

    def edit(layer: int, hidden: Any) -> Any:
        hidden = hidden.clone()
        hidden[0, at[layer]] = means[layer].to(hidden.dtype)
        return hidden

    handles = hook_layers(blocks, list(at), edit)
    try:
        kwargs = {**forward_kwargs(model), "use_cache": True, cache_argument(model): piece}
        return model(input_ids=ids[:, start:], **kwargs).logits[:, -1]
    finally:
        for handle in handles:
            handle.remove()


def ablate(
    model: Any,
    token_ids: Sequence[int],
    objective: Any,
    node_sets: Sequence[Sequence[tuple[str | int, int]]],
    *,
    baseline: str = "mean",
    batch_tokens: int = BATCH_TOKENS,
    clean: CleanForward | None = None,
) -> AblationRun:
    """f after ablating each set of ``node_sets`` (nodes as (layer name, position)), one set per
    row of batched forwards. An empty set is the clean forward: ``clean`` when the caller has
    it (the case's one read of the input), else computed here."""
    import torch

    import lxt

    if baseline not in BASELINES:
        raise ValueError(f"baseline must be one of {BASELINES}, got {baseline!r}")
    blocks = lxt.decoder_blocks(model)
    count, n = len(blocks), len(token_ids)
    sets: list[list[tuple[int, int]]] = []
    for nodes in node_sets:
        plan = []
        for layer, position in nodes:
            if not 0 <= int(position) < n:
                raise ValueError(f"position {position} is outside the {n} input tokens")
            plan.append((layer_index(str(layer), count), int(position)))
        sets.append(plan)
    device = next(model.parameters()).device
    ids = torch.tensor([list(token_ids)], device=device)
    if clean is None:
        clean = clean_forward(model, token_ids)
    clean.check(token_ids)
    means = {
        layer: clean.means[layer] if baseline == "mean" else torch.zeros_like(clean.means[layer])
        for layer in {layer for plan in sets for layer, _ in plan}
    }
    f_clean = float(objective.value(clean.logits.double()))
    top_clean = int(clean.logits.argmax())
    f_values: list[float] = [f_clean] * len(sets)
    tops: list[int] = [top_clean] * len(sets)
    late = [
        i
        for i, plan in enumerate(sets)
        if plan
        and clean.states is not None
        and suffix_cheaper(n, min(p for _, p in plan), min(layer for layer, _ in plan), count)
    ]
    for index in late:
        with torch.no_grad():
            logits = _suffix_logits(model, blocks, ids, clean.states, sets[index], means)
        f_values[index] = float(objective.value(logits.double())[0])
        tops[index] = int(logits[0].argmax())
    # the other sets sorted by their first ablated layer, so a batch widens as late as it can
    order = sorted(
        (i for i in range(len(sets)) if sets[i] and i not in late),
        key=lambda i: min(layer for layer, _ in sets[i]),
    )
    rows = max(1, batch_tokens // max(n, 1))
    for start in range(0, len(order), rows):
        chunk = order[start : start + rows]
        by_layer: dict[int, list[tuple[int, int]]] = {}
        for row, index in enumerate(chunk):
            for layer, position in sets[index]:
                by_layer.setdefault(layer, []).append((row, position))
        width = len(chunk)
        index_of = {
            layer: (
                torch.tensor([row for row, _ in pairs], device=device),
                torch.tensor([position for _, position in pairs], device=device),
            )
            for layer, pairs in by_layer.items()
        }

        def edit(layer: int, hidden: Any, width: int = width, index_of: Any = index_of) -> Any:
            if hidden.shape[0] == 1 and width > 1:  # the first ablated layer: one row per set
                hidden = hidden.expand(width, *hidden.shape[1:])
            hidden = hidden.clone()
            rows_at, positions_at = index_of[layer]
            hidden[rows_at, positions_at] = means[layer].to(hidden.dtype)
            return hidden

        handles = hook_layers(blocks, list(by_layer), edit)
        try:
            with torch.no_grad():
                logits = _last_logits(model, ids)
        finally:
            for handle in handles:
                handle.remove()
        values = objective.value(logits.double())
        for row, index in enumerate(chunk):
            f_values[index] = float(values[row])
            tops[index] = int(logits[row].argmax())
    return AblationRun(f_clean, top_clean, tuple(f_values), tuple(tops))


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rank correlation (ties get their average rank); None for fewer than two
    points or a constant side."""
    if len(x) < 2 or len(x) != len(y):
        return None
    rx, ry = _ranks(np.asarray(x, dtype=np.float64)), _ranks(np.asarray(y, dtype=np.float64))
    rx, ry = rx - rx.mean(), ry - ry.mean()
    norm = float(np.sqrt((rx * rx).sum() * (ry * ry).sum()))
    if norm == 0.0:
        return None
    return float((rx * ry).sum() / norm)


def _ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values), dtype=np.float64)
    sorted_values = values[order]
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and sorted_values[j + 1] == sorted_values[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0
        i = j + 1
    return ranks


def graph_nodes(graph: AttributionGraph) -> tuple[list[Node], list[Node]]:
    """(strongest first, layer-major) nodes of the pruned graph that can be ablated: touched by
    a kept edge, not the output node (the last layer's last position), not a mid-block state."""
    from .graph.prune import active_nodes

    active = active_nodes(graph)
    output = (len(graph.layers) - 1, graph.n_tokens - 1)
    usable = [not name.endswith(".mid") for name in graph.layers]
    layer_major = [
        (layer, position)
        for layer, position in zip(*np.nonzero(active), strict=True)
        if usable[layer] and (layer, position) != output
    ]
    magnitude = np.abs(graph.node_relevance)
    strongest = sorted(layer_major, key=lambda node: -magnitude[node])  # stable: ties layer-major
    name = graph.layers
    return (
        [(name[int(layer)], int(position)) for layer, position in strongest],
        [(name[int(layer)], int(position)) for layer, position in layer_major],
    )


def case_interventions(
    model: Any,
    token_ids: Sequence[int],
    objective: Any,
    graph: AttributionGraph,
    *,
    count: int = STRONGEST,
    baseline: str = "mean",
    tokenizer: Any = None,
    pinned: Sequence[Node] = (),
    supernodes: Sequence[tuple[str, Sequence[Node]]] = (),
    clean: CleanForward | None = None,
) -> Interventions:
    """The dossier's interventions: the ``count`` strongest nodes of the pruned ``graph``
    ablated one at a time, then all of its nodes at once (docs/method.md section 10); with
    ``pinned`` nodes also those at once and each of the ``supernodes``, in the same batch."""
    strongest, everything = graph_nodes(graph)
    chosen = strongest[:count]
    sets: list[list[Node]] = [[node] for node in chosen]
    if everything:
        sets.append(everything)
    groups: list[tuple[str, list[Node]]] = []
    if pinned and not any(layer.endswith(".mid") for layer, _ in pinned):
        groups = [("", list(pinned))]
        groups += [
            (label, list(nodes))
            for label, nodes in supernodes
            if not any(layer.endswith(".mid") for layer, _ in nodes)
        ]
    run = ablate(
        model,
        token_ids,
        objective,
        [*sets, *(nodes for _, nodes in groups)],
        baseline=baseline,
        clean=clean,
    )
    layer_of = {name: i for i, name in enumerate(graph.layers)}
    effects = tuple(
        NodeEffect(
            layer=layer,
            position=position,
            relevance=float(graph.node_relevance[layer_of[layer], position]),
            f_ablated=run.f[i],
        )
        for i, (layer, position) in enumerate(chosen)
    )

    def effect(row: int, nodes: Sequence[Node]) -> SubgraphEffect:
        return SubgraphEffect(
            nodes=tuple(nodes),
            f_ablated=run.f[row],
            flips=run.f_clean > 0 >= run.f[row],
            top_id=run.top[row],
            top_token=tokenizer.decode([run.top[row]]) if tokenizer is not None else "",
        )

    subgraph = effect(len(chosen), everything) if everything else None
    group_effects = [effect(len(sets) + i, nodes) for i, (_, nodes) in enumerate(groups)]
    return Interventions(
        baseline=baseline,
        f_clean=run.f_clean,
        nodes=effects,
        subgraph=subgraph,
        rank_correlation=spearman(
            [e.relevance for e in effects], [run.f_clean - e.f_ablated for e in effects]
        ),
        pinned=group_effects[0] if group_effects else None,
        supernodes=tuple(
            (label, group) for (label, _), group in zip(groups[1:], group_effects[1:], strict=True)
        ),
    )


# --- a pinned subgraph ----------------------------------------------------------------------


def pinned_meta(case: Any, graph: AttributionGraph) -> dict[str, Any]:
    """The case's ``[graph] pinned`` and ``supernodes`` for the graph's metadata (nothing when
    the case pins nothing): every node checked against the graph's layers and tokens, the
    supernodes' nodes pinned too."""
    from .errors import CaseError

    settings = case.graph
    if not settings.pinned and not settings.supernodes:
        return {}
    named = [("graph.pinned", i, node) for i, node in enumerate(settings.pinned)]
    for g, (_, nodes) in enumerate(settings.supernodes):
        named += [(f"graph.supernodes[{g}].nodes", i, node) for i, node in enumerate(nodes)]
    pinned: list[list[Any]] = []
    for field_name, i, (layer, position) in named:
        if layer not in graph.layers:
            raise CaseError(
                case.path,
                f"{field_name}[{i}]",
                f"layer {layer!r} is not a layer of the graph ({', '.join(graph.layers[:4])}, …)",
            )
        if position >= graph.n_tokens:
            raise CaseError(
                case.path,
                f"{field_name}[{i}]",
                f"position {position} is outside the {graph.n_tokens} input tokens",
            )
        if [layer, position] not in pinned:
            pinned.append([layer, position])
    return {
        "pinned": pinned,
        "supernodes": [
            {"label": label, "nodes": [[layer, position] for layer, position in nodes]}
            for label, nodes in settings.supernodes
        ],
    }


# --- the case's step ------------------------------------------------------------------------


@dataclass(frozen=True)
class Circuit:
    """What ``compute_case``'s interventions step returns: the ablations, the continuations,
    and the case's pinned subgraph for the graph's metadata (empty when it pins nothing)."""

    interventions: Interventions
    continuations: Continuations | None
    pinned: dict[str, Any]


def case_circuit(
    loaded: Any,
    case: Any,
    question: Any,
    pruned: AttributionGraph,
    clean: CleanForward | None = None,
) -> Circuit:
    """The graph tested inside the model (its nodes ablated) and what the model would have
    written after the target and after the contrast (docs/method.md section 10). ``clean``:
    the input's plain forward, which both start from (computed here when not given)."""
    pinned = pinned_meta(case, pruned)  # a bad node is a one-line error before any cost
    ids, objective = question.inputs.token_ids, question.objective
    if clean is None:
        clean = clean_forward(loaded.model, ids)
    interventions = case_interventions(
        loaded.model,
        ids,
        objective,
        pruned,
        tokenizer=loaded.tokenizer,
        baseline=case.graph.ablation,
        pinned=[(layer, position) for layer, position in pinned.get("pinned", [])],
        supernodes=[
            (group["label"], [(layer, position) for layer, position in group["nodes"]])
            for group in pinned.get("supernodes", [])
        ],
        clean=clean,
    )
    continuations = case_continuations(
        loaded.model,
        loaded.tokenizer,
        ids,
        objective.target_id,
        question.contrast.id if question.contrast is not None else None,
        source=case.source,
        prefix=case.question.prompt.prefix,
        prompt_states=clean.states,
    )
    return Circuit(interventions, continuations, pinned)
