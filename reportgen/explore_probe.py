"""The explorer's side of a live hypothesis test (`POST /api/intervene`) and of pinned nodes
kept by "Save as case": reading what the page sends, and writing what it shows.

Kept out of ``explore.py`` (the app) so the request formats live in one
place. Errors are ValueErrors with one line naming the field, which the app answers as a 400.

A node is written three ways, all accepted wherever a node is: ``[layer, position]`` (the
case file's form, layer as the graph names it: ``"emb"``, ``"0"``, ``"3.mid"``), the text
``"layer:position"`` (what one types), and the graph explorer's id ``"n<layer index>-<position>"``
(its ``pinnedIds``; the layer index counts the explained graph's layers, so an id needs the
explained graph). Supernodes (labelled groups of pinned nodes) come as ``[label, [node, ...]]``,
as Neuronpedia's ``[label, node, node, ...]``, or as the case file's ``{label, nodes}``."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from .cases import GraphSettings
from .continuations import CONTINUATION_TOKENS
from .interventions import graph_nodes
from .probe import MAX_TOKENS, Intervention, ProbeResult, Run
from .results import Node

#: the request fields of /api/intervene beside the prompt's configuration
PROBE_FIELDS = ("ablate", "baseline", "mask", "fill", "tokens")
#: the request fields of /api/save that keep a pinned subgraph
PIN_FIELDS = ("pinned", "supernodes")
#: the strongest nodes of the explained graph the page offers to ablate
OFFERED = 20

_TYPED = re.compile(r"\s*(emb|[0-9]+(?:\.mid)?)\s*:\s*([0-9]+)\s*")
_NODE_ID = re.compile(r"n([0-9]+)-([0-9]+)")


def split_fields(data: Any, fields: Sequence[str]) -> tuple[Any, dict[str, Any]]:
    """(the body without ``fields``, those fields): the prompt's configuration is read by
    ``Config.from_json`` as it is for every other route."""
    if not isinstance(data, dict):
        return data, {}
    return (
        {k: v for k, v in data.items() if k not in fields},
        {k: data[k] for k in fields if k in data},
    )


def parse_node(value: Any, where: str, layers: Sequence[str] | None) -> Node:
    """One node in any of the module docstring's forms; ``layers``: the explained graph's."""
    if isinstance(value, str):
        typed = _TYPED.fullmatch(value)
        if typed:
            return typed.group(1), int(typed.group(2))
        found = _NODE_ID.fullmatch(value.strip())
        if found:
            if layers is None:
                raise ValueError(
                    f"{where}: node id {value!r} needs the explained graph (explain first), "
                    "or type layer:position"
                )
            index = int(found.group(1))
            if index >= len(layers):
                raise ValueError(f"{where}: node id {value!r} names no layer of the graph")
            return layers[index], int(found.group(2))
    elif (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], int)
        and not isinstance(value[1], bool)
        and value[1] >= 0
    ):
        return value[0], int(value[1])
    shown = repr(value)[:60]
    raise ValueError(f'{where}: {shown} is not a node: give "layer:position" (e.g. "emb:3")')


def _nodes(value: Any, where: str, layers: Sequence[str] | None) -> tuple[Node, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ValueError(f"{where}: must be a list of nodes")
    return tuple(parse_node(v, f"{where}[{i}]", layers) for i, v in enumerate(value))


def parse_intervention(
    fields: Mapping[str, Any], layers: Sequence[str] | None
) -> tuple[Intervention, int]:
    """The intervention of an /api/intervene body and the continuation's length."""
    baseline = fields.get("baseline") or "mean"
    fill = fields.get("fill") or "zero"
    masked = fields.get("mask") or []
    if not isinstance(masked, list) or not all(
        isinstance(p, int) and not isinstance(p, bool) for p in masked
    ):
        raise ValueError("mask: must be a list of input positions (integers)")
    tokens = fields.get("tokens", CONTINUATION_TOKENS)
    if isinstance(tokens, bool) or not isinstance(tokens, int) or not 0 <= tokens <= MAX_TOKENS:
        raise ValueError(f"tokens: a continuation is 0..{MAX_TOKENS} tokens")
    intervention = Intervention(
        nodes=_nodes(fields.get("ablate"), "ablate", layers),
        baseline=str(baseline),
        masked=tuple(masked),
        mask=str(fill),
    )
    return intervention, tokens


@dataclass(frozen=True)
class Pins:
    """A pinned subgraph and its labelled groups, as the case's ``[graph]`` table holds them."""

    pinned: tuple[Node, ...]
    supernodes: tuple[tuple[str, tuple[Node, ...]], ...] = ()

    def settings(self, graph: GraphSettings) -> GraphSettings:
        """``graph`` with this subgraph pinned (what ``cases.case_toml`` writes)."""
        return replace(graph, pinned=self.pinned, supernodes=self.supernodes)


def _group(item: Any, where: str, layers: Sequence[str] | None) -> tuple[str, tuple[Node, ...]]:
    if isinstance(item, dict) and set(item) == {"label", "nodes"}:
        label, members = item["label"], item["nodes"]
    elif isinstance(item, list) and item and isinstance(item[0], str):
        label, rest = item[0], item[1:]
        # [label, [node, ...]] -- unless that one list is itself a node ([layer, position])
        one_list = len(rest) == 1 and isinstance(rest[0], list)
        is_pair = one_list and len(rest[0]) == 2 and isinstance(rest[0][1], int)
        members = rest[0] if one_list and not is_pair else rest
    else:
        raise ValueError(f"{where}: a group is [label, [node, ...]]")
    if not isinstance(label, str) or not label.strip():
        raise ValueError(f"{where}: a group needs a label")
    return label, _nodes(members, f"{where}.nodes", layers)


def parse_pins(
    fields: Mapping[str, Any], layers: Sequence[str] | None, n_tokens: int
) -> Pins | None:
    """The pinned nodes and groups of a save request (None when it pins nothing); every
    group's nodes are pinned too (the case's rule). Nodes are checked against the explained
    graph's ``layers`` (when there is one) and the input's ``n_tokens``; the rest (disjoint
    groups, distinct labels) is the case parser's to say."""
    raw_groups = fields.get("supernodes") or []
    if not isinstance(raw_groups, list):
        raise ValueError("supernodes: must be a list of [label, [node, ...]]")
    groups = tuple(_group(item, f"supernodes[{i}]", layers) for i, item in enumerate(raw_groups))
    pinned = list(dict.fromkeys(_nodes(fields.get("pinned"), "pinned", layers)))
    for _, nodes in groups:
        pinned += [node for node in nodes if node not in pinned]
    if not pinned:
        return None
    for layer, position in pinned:
        if layers is not None and layer not in layers:
            raise ValueError(f"pinned: layer {layer!r} is not a layer of the explained graph")
        if position >= n_tokens:
            raise ValueError(
                f"pinned: node {layer}:{position} is outside the {n_tokens} input tokens"
            )
    return Pins(tuple(pinned), groups)


# --- what the page shows ------------------------------------------------------------------


def offered_nodes(graph: Any, tokens: Sequence[str], count: int = OFFERED) -> list[dict[str, Any]]:
    """The explained graph's strongest ablatable nodes (``interventions.graph_nodes``), each
    with its relevance, its token and its explorer id: the list the page offers."""
    if graph is None:
        return []
    strongest, _ = graph_nodes(graph)
    index = {name: i for i, name in enumerate(graph.layers)}
    return [
        {
            "layer": layer,
            "position": position,
            "id": f"n{index[layer]}-{position}",
            "relevance": float(graph.node_relevance[index[layer], position]),
            "token": tokens[position],
        }
        for layer, position in strongest[:count]
    ]


def _run_json(run: Run, visible: Any) -> dict[str, Any]:
    return {
        "f": run.f,
        "top_k": [
            {
                "id": t.id,
                "text": t.text,
                "display": visible(t.text),
                "logit": t.logit,
                "prob": t.prob,
            }
            for t in run.top
        ],
        "continuation": None if run.continuation is None else list(run.continuation),
        "text": run.text,
    }


def probe_json(result: ProbeResult, visible: Any) -> dict[str, Any]:
    """The answer of /api/intervene: both runs side by side; ``visible`` makes a token's
    whitespace visible (the page's token display)."""
    given = result.intervention
    return {
        "intervention": {
            "ablate": [[layer, position] for layer, position in given.nodes],
            "baseline": given.baseline,
            "mask": list(given.masked),
            "fill": given.mask,
        },
        "tokens": result.tokens,
        "clean": _run_json(result.clean, visible),
        "after": _run_json(result.after, visible),
        "delta_f": result.f_after - result.f_clean,
        "flips": result.flips,
    }
