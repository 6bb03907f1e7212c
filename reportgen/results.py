"""CaseResult: the plain data one case produces -- the only thing renderers ever see.

No tensors, no models: numbers, strings, lists and dicts, so a result can be cached as JSON
and rendered again without recomputation."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from .attribution import Attribution, TokenScore
from .graph.types import AttributionGraph
from .interventions import Continuations, Interventions


@dataclass(frozen=True)
class CaseResult:
    case_id: str
    title: str
    description: str
    model: str
    prompt: str
    chat: bool
    prefix: str
    tags: dict[str, str]
    segments: dict[str, list[int]]  # name -> [start, end) token span
    case_file: str  # file name of the case (e.g. "primary-colors-yellow.toml")
    case_toml: str  # the case file's text, offered as a download
    attribution: Attribution
    # the pruned attribution graph; its meta adds edges_before_pruning, edges_after_pruning, prune,
    # p. In JSON (data.json, the result cache) it takes the codec's form (AttributionGraph.to_json)
    graph: AttributionGraph | None = None
    # per node layer: {"layer": id, "nodes": int, "edges": int, ...metric name -> number}
    metrics: list[dict[str, Any]] | None = None
    # strongest nodes: {"layer", "position", "token", "relevance", "top": [{"index", "relevance"}]}
    neurons: list[dict[str, Any]] | None = None
    # {"flip_k": {ordering: int|None}, "aopc": {...}, "curves": {ordering: [f at k=0..K]}, "sentence"}
    faithfulness: dict[str, Any] | None = None
    # other models on the same case: {"model", "explained", "target_logit", "contrast_logit", "segments": {name: sum}}
    comparisons: list[dict[str, Any]] | None = None
    # package versions, model hash, the command that reproduces it
    environment: dict[str, Any] = field(default_factory=dict)
    # the graph's nodes ablated inside the model, and the greedy text after target and contrast
    # (docs/method.md section 10); in JSON their ``to_json`` forms
    interventions: Interventions | None = None
    continuations: Continuations | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(replace(self, graph=None, interventions=None, continuations=None))
        data["attribution"] = self.attribution.to_json()
        data["graph"] = self.graph.to_json() if self.graph is not None else None
        for name in ("interventions", "continuations"):
            value = getattr(self, name)
            data[name] = value.to_json() if value is not None else None
        return data

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=1, sort_keys=True, ensure_ascii=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CaseResult:
        data = dict(data)
        att = dict(data["attribution"])
        att.pop("relevance_sum", None)
        att.pop("conservation", None)
        att["target"] = TokenScore(**att["target"])
        att["contrast"] = TokenScore(**att["contrast"]) if att.get("contrast") else None
        att["top_k"] = [TokenScore(**t) for t in att["top_k"]]
        data["attribution"] = Attribution(**att)
        if data.get("graph") is not None:
            data["graph"] = AttributionGraph.from_json(data["graph"])
        if data.get("interventions") is not None:
            data["interventions"] = Interventions.from_json(data["interventions"])
        if data.get("continuations") is not None:
            data["continuations"] = Continuations.from_json(data["continuations"])
        return cls(**data)
