"""CaseResult: the plain data one case produces -- the only thing renderers ever see.

No tensors, no models: numbers, strings, lists and dicts, so a result can be cached as JSON
and rendered again without recomputation. This module and everything it imports load without
torch (a test checks it), so rendering a cached result never loads the model stack: the
computing modules (``attribution``, ``compute``) import the types from here, not the reverse."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from .continuations import Continuations
from .graph.types import AttributionGraph


@dataclass(frozen=True)
class TokenScore:
    """A vocabulary entry at the explained position with its logit and probability."""

    text: str
    token: str
    id: int
    logit: float
    prob: float
    first_subtoken_of: str | None = None


#: a graph node: (layer as the graph names it, position)
Node = tuple[str, int]


# --- interventions (reportgen.interventions computes them) ---------------------------------------


@dataclass(frozen=True)
class NodeEffect:
    """One node ablated alone: its graph relevance and f after the ablation."""

    layer: str
    position: int
    relevance: float
    f_ablated: float


@dataclass(frozen=True)
class SubgraphEffect:
    """Every node of the pruned subgraph (the output node excepted) ablated in one forward.

    ``flips``: f ≤ 0 after the ablation while f > 0 before (with a contrast token: the model
    now prefers the contrast); ``top_id``/``top_token``: the model's most likely next token
    after it (its id, and its text where the tokenizer was at hand)."""

    nodes: tuple[Node, ...]
    f_ablated: float
    flips: bool
    top_id: int
    top_token: str = ""


@dataclass(frozen=True)
class Interventions:
    baseline: str
    f_clean: float
    nodes: tuple[NodeEffect, ...]
    subgraph: SubgraphEffect | None
    rank_correlation: float | None
    # the case's ``[graph] pinned`` nodes ablated at once, and each supernode (label, effect);
    # None / empty when the case pins nothing (or pins a mid-block state, which is not ablated)
    pinned: SubgraphEffect | None = None
    supernodes: tuple[tuple[str, SubgraphEffect], ...] = ()

    def deltas(self) -> list[float]:
        """Δf = f_clean − f_ablated per node, in the order of ``nodes``."""
        return [self.f_clean - node.f_ablated for node in self.nodes]

    def to_json(self) -> dict[str, Any]:
        data = self._core_json()
        if self.pinned is not None:  # only cases that pin nodes have the keys
            data["pinned"] = _effect_json(self.pinned)
            data["supernodes"] = [
                {"label": label, **_effect_json(effect)} for label, effect in self.supernodes
            ]
        return data

    def _core_json(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline,
            "f_clean": self.f_clean,
            "nodes": [
                {
                    "layer": n.layer,
                    "position": n.position,
                    "relevance": n.relevance,
                    "f_ablated": n.f_ablated,
                }
                for n in self.nodes
            ],
            "subgraph": None if self.subgraph is None else _effect_json(self.subgraph),
            "rank_correlation": self.rank_correlation,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Interventions:
        sub = data.get("subgraph")
        return cls(
            baseline=str(data["baseline"]),
            f_clean=float(data["f_clean"]),
            nodes=tuple(
                NodeEffect(
                    str(n["layer"]),
                    int(n["position"]),
                    float(n["relevance"]),
                    float(n["f_ablated"]),
                )
                for n in data["nodes"]
            ),
            subgraph=None if sub is None else _effect_from_json(sub),
            rank_correlation=None
            if data.get("rank_correlation") is None
            else float(data["rank_correlation"]),
            pinned=None if data.get("pinned") is None else _effect_from_json(data["pinned"]),
            supernodes=tuple(
                (str(group["label"]), _effect_from_json(group))
                for group in data.get("supernodes") or []
            ),
        )


def _effect_json(effect: SubgraphEffect) -> dict[str, Any]:
    return {
        "nodes": [[layer, position] for layer, position in effect.nodes],
        "f_ablated": effect.f_ablated,
        "flips": effect.flips,
        "top_id": effect.top_id,
        "top_token": effect.top_token,
    }


def _effect_from_json(data: Mapping[str, Any]) -> SubgraphEffect:
    return SubgraphEffect(
        nodes=tuple((str(layer), int(position)) for layer, position in data["nodes"]),
        f_ablated=float(data["f_ablated"]),
        flips=bool(data["flips"]),
        top_id=int(data["top_id"]),
        top_token=str(data.get("top_token", "")),
    )


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
class LayerMetrics:
    """The graph metrics of one node layer of the pruned graph (``graph.metrics``, definitions
    in docs/method.md section 7). Renderers pick metrics by name (:data:`METRIC_NAMES`)."""

    layer: str
    nodes: int  # active nodes: touched by a kept edge
    edges_in: int
    edges_out: int
    edge_node_ratio: float
    fan_in: float
    fan_out: float
    sparsity: float
    gini_in: float
    gini_out: float
    gini_relevance: float
    verticality: float
    hubs_90: list[int]  # the fewest positions holding 90 % of |R| (of positive, negative R)
    hubs_90_pos: list[int]
    hubs_90_neg: list[int]
    degree_hubs: list[int]
    centre_of_mass: float
    mean_lookback: float
    local_ratio: float
    relevance_sum: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LayerMetrics:
        return cls(**{name: data[name] for name in cls.__dataclass_fields__})


#: every metric of a layer, by name, in the order the graph step computes them
METRIC_NAMES: tuple[str, ...] = tuple(LayerMetrics.__dataclass_fields__)[1:]


@dataclass(frozen=True)
class UnitRelevance:
    """A hidden dimension or an MLP neuron of one graph node, and the relevance it carries."""

    index: int
    relevance: float


def _units(data: Any) -> tuple[UnitRelevance, ...]:
    return tuple(UnitRelevance(index=u["index"], relevance=u["relevance"]) for u in data)


@dataclass(frozen=True)
class NodeNeurons:
    """What carries one of the strongest graph nodes (``graph.neurons.refine_neurons``): its
    hidden dimensions (h * g per dimension) and, for a block output, that block's MLP neurons at
    the position, each strongest first."""

    layer: str
    position: int
    token: str
    relevance: float
    dimensions: tuple[UnitRelevance, ...]
    mlp_neurons: tuple[UnitRelevance, ...] | None = None  # block outputs only
    mlp_relevance: float | None = None  # the sum over all the block's MLP neurons

    def to_json(self) -> dict[str, Any]:
        """The JSON form; the MLP keys only where the node has MLP neurons (as computed)."""
        data: dict[str, Any] = {
            "layer": self.layer,
            "position": self.position,
            "token": self.token,
            "relevance": self.relevance,
            "dimensions": [asdict(u) for u in self.dimensions],
        }
        if self.mlp_neurons is not None:
            data["mlp_neurons"] = [asdict(u) for u in self.mlp_neurons]
        if self.mlp_relevance is not None:
            data["mlp_relevance"] = self.mlp_relevance
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> NodeNeurons:
        mlp = data.get("mlp_neurons")
        return cls(
            layer=data["layer"],
            position=data["position"],
            token=data["token"],
            relevance=data["relevance"],
            dimensions=_units(data["dimensions"]),
            mlp_neurons=_units(mlp) if mlp is not None else None,
            mlp_relevance=data.get("mlp_relevance"),
        )


@dataclass(frozen=True)
class FailurePattern:
    """Why the model fails, for a case that marks its relevant spans
    (``faithfulness.failure_pattern``: URT, OIT, both or none, and the numbers that decide it)."""

    pattern: str  # "URT", "OIT", "URT+OIT" or "none"
    relevant_share: float  # of the total |R|, held by the relevant tokens
    token_share: float  # of the non-special tokens, inside the spans
    relevant_sum: float
    top_outside: int  # of the strongest positive tokens, how many lie outside the spans
    top_outside_share: float
    mean_rank_fraction: float
    relevant_abs: float
    outside_push: float  # the positive R outside the spans

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FailurePattern:
        return cls(**{f: data[f] for f in _FIELDS_OF_PATTERN})


_FIELDS_OF_PATTERN = tuple(FailurePattern.__dataclass_fields__)


@dataclass(frozen=True)
class FlipBudget:
    """What the compute budget did to a flip test too costly to run whole (``faithfulness``
    with ``cost_budget``): the token-forwards allowed and spent, the exact test's cost, the
    flip-k whose scan it cut (as [smallest k it can be, first flipping k seen or None]), the
    random seeds it had room for."""

    cost_budget: int
    cost_spent: int
    sets_refused: int
    flip_bounds: dict[str, list[int | None]]
    random_seeds_used: int
    random_points: list[int]
    aopc_points: list[int]
    exact_cost: int | None = None  # token-forwards of the exact test (None: not recorded)


@dataclass(frozen=True)
class Faithfulness:
    """The flip test of one case (``faithfulness.faithfulness``, docs/method.md): the deletion
    curves of each token ordering, the tokens masked until the preference flips, AOPC.

    Orderings (``faithfulness.ORDERINGS``) key the per-ordering numbers. In JSON the fields are
    one flat object, as computed: the budget's fields only for a test too costly to run whole, ``note`` only
    when f0 <= 0, ``failure_pattern`` only for a case that marks its relevant spans."""

    flip_k: dict[str, int | float | None]  # random: the mean over its seeds
    aopc: dict[str, float | None]
    curves: dict[str, list[float | None]]  # f at k = 0..budget; None where not evaluated
    insertion: dict[str, list[float]]  # empty when the insertion curves were skipped
    order: dict[str, list[int]]  # the positions each ordering masks first
    budget: int  # K: the most tokens masked
    points: list[int] | None  # the grid of k of a sampled test (None: every k)
    mask: str  # how a token is masked, in words
    baseline_f: float  # f0
    gradient_f: float
    random_flip_k_seeds: list[int | None]
    random_seeds: int
    n_tokens: int
    maskable: int
    masked_sets: int
    forwarded_tokens: int
    contrastive: bool
    cost: FlipBudget | None = None
    note: str | None = None
    failure_pattern: FailurePattern | None = None

    @property
    def flip_bounds(self) -> dict[str, list[int | None]]:
        """The flip-k ranges a budget left unscanned, by ordering (empty without a budget)."""
        return self.cost.flip_bounds if self.cost is not None else {}

    def to_json(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in _FLAT_FIELDS}
        if self.cost is not None:
            cost = asdict(self.cost)
            if cost["exact_cost"] is None:  # results computed before it was recorded
                del cost["exact_cost"]
            data.update(cost)
        if self.note is not None:
            data["note"] = self.note
        if self.failure_pattern is not None:
            data["failure_pattern"] = self.failure_pattern.to_json()
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Faithfulness:
        """The inverse of ``to_json`` (words a renderer adds, like ``sentence``, are ignored)."""
        pattern = data.get("failure_pattern")
        cost = None
        if data.get("cost_budget") is not None:
            cost = FlipBudget(
                **{f: data[f] for f in FlipBudget.__dataclass_fields__ if f != "exact_cost"},
                exact_cost=data.get("exact_cost"),
            )
        return cls(
            **{name: data[name] for name in _FLAT_FIELDS},
            cost=cost,
            note=data.get("note"),
            failure_pattern=FailurePattern.from_json(pattern) if pattern else None,
        )


_FLAT_FIELDS = tuple(
    name
    for name in Faithfulness.__dataclass_fields__
    if name not in ("cost", "note", "failure_pattern")
)


@dataclass(frozen=True)
class Comparison:
    """The same case on another model (``compare.compare_models``): its explained value and
    logits, and its input relevance with the case's segments carried over by characters."""

    model: str  # the model spec as the case file names it
    explained: float
    target_logit: float
    target_token: str
    contrast_logit: float | None
    contrast_token: str | None
    greedy_token: str  # what that model would write next
    conservation: float | None
    segments: dict[str, float]  # segment name -> sum of that model's relevance over it
    tokens: list[str]  # that model's tokens of the input
    relevance: list[float]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Comparison:
        return cls(**{name: data[name] for name in cls.__dataclass_fields__})


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
    # the graph metrics of each node layer, in layer order
    metrics: tuple[LayerMetrics, ...] | None = None
    # the strongest nodes of the pruned graph and the units that carry them
    neurons: tuple[NodeNeurons, ...] | None = None
    # the flip test: deletion curves, flip-k, AOPC (and the failure pattern)
    faithfulness: Faithfulness | None = None
    # the same case on other models
    comparisons: tuple[Comparison, ...] | None = None
    # package versions, model hash, the command that reproduces it
    environment: dict[str, Any] = field(default_factory=dict)
    # the graph's nodes ablated inside the model, and the greedy text after target and contrast
    # (docs/method.md section 10); in JSON their ``to_json`` forms
    interventions: Interventions | None = None
    continuations: Continuations | None = None

    def to_json(self) -> dict[str, Any]:
        """The one JSON form (data.json, the result cache): plain fields as they are, typed
        ones in their type's own ``to_json`` form."""
        data = asdict(replace(self, **dict.fromkeys(_TYPED)))
        data["attribution"] = self.attribution.to_json()
        for name in _TYPED:
            value = getattr(self, name)
            if isinstance(value, tuple):
                data[name] = [item.to_json() for item in value]
            else:
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
        if data.get("faithfulness") is not None:
            data["faithfulness"] = Faithfulness.from_json(data["faithfulness"])
        if data.get("metrics") is not None:
            data["metrics"] = tuple(LayerMetrics.from_json(m) for m in data["metrics"])
        if data.get("comparisons") is not None:
            data["comparisons"] = tuple(Comparison.from_json(c) for c in data["comparisons"])
        if data.get("neurons") is not None:
            data["neurons"] = tuple(NodeNeurons.from_json(n) for n in data["neurons"])
        return cls(**data)


#: the optional fields whose JSON form is their type's ``to_json`` (of each item, for a tuple)
_TYPED = (
    "graph",
    "metrics",
    "neurons",
    "faithfulness",
    "comparisons",
    "interventions",
    "continuations",
)
