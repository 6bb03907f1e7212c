"""CaseResult: the plain data one case produces -- the only thing renderers ever see.

No tensors, no models: numbers, strings, lists and dicts, so a result can be cached as JSON
and rendered again without recomputation. This module and everything it imports load without
torch (a test checks it), so rendering a cached result never loads the model stack: the
computing modules (``attribution``, ``compute``) import the types from here, not the reverse."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from .graph.types import AttributionGraph
from .interventions import Continuations, Interventions


@dataclass(frozen=True)
class TokenScore:
    """A vocabulary entry at the explained position with its logit and probability."""

    text: str
    token: str
    id: int
    logit: float
    prob: float
    first_subtoken_of: str | None = None


@dataclass(frozen=True)
class Attribution:
    """Plain result of one attribution: everything the renderers and the JSON need."""

    model: str
    mode: str
    strategy: str | None
    k: int | None
    objective: str
    tokens: list[str]  # token strings as the tokenizer has them ("Ġcapital")
    token_texts: list[str]  # each token decoded on its own (" capital")
    token_ids: list[int]
    special: list[bool]
    relevance: list[float]
    explained: float
    target: TokenScore
    contrast: TokenScore | None
    top_k: list[TokenScore]
    prompt_length: int
    notes: list[str] = field(default_factory=list)

    @property
    def relevance_sum(self) -> float:
        return float(sum(self.relevance))

    @property
    def conservation(self) -> float | None:
        """Share of the explained value that reaches the input (AttnLRP's softmax absorbs some)."""
        return self.relevance_sum / self.explained if self.explained else None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["relevance_sum"] = self.relevance_sum
        data["conservation"] = self.conservation
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Attribution:
        """The inverse of ``to_json`` (the derived ``relevance_sum`` and ``conservation`` are
        recomputed, not read)."""
        att = dict(data)
        att.pop("relevance_sum", None)
        att.pop("conservation", None)
        att["target"] = TokenScore(**att["target"])
        att["contrast"] = TokenScore(**att["contrast"]) if att.get("contrast") else None
        att["top_k"] = [TokenScore(**t) for t in att["top_k"]]
        return cls(**att)


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
        data["attribution"] = Attribution.from_json(data["attribution"])
        if data.get("graph") is not None:
            data["graph"] = AttributionGraph.from_json(data["graph"])
        if data.get("interventions") is not None:
            data["interventions"] = Interventions.from_json(data["interventions"])
        if data.get("continuations") is not None:
            data["continuations"] = Continuations.from_json(data["continuations"])
        return cls(**data)
