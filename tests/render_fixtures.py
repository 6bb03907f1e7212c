"""Synthetic CaseResults for the renderer tests: small, hand-made, every optional field filled.

Not a conftest: tests import these helpers explicitly, so what a test depends on is visible."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path
from typing import Any

from reportgen.graph.types import AttributionGraph
from reportgen.results import (
    METRIC_NAMES,
    Attribution,
    CaseResult,
    Comparison,
    Faithfulness,
    LayerMetrics,
    NodeNeurons,
    TokenScore,
    UnitRelevance,
)

DATA = Path(__file__).parent / "data"

HOSTILE_PROMPT = (
    "<script>alert(1)</script> </textarea> \\input{/etc/passwd} \\write18{rm -rf x} "
    "$ % # _ { } ~ ^ \\ <!-- 😀 中文"
)
HOSTILE_TOKENS = [
    "<|bos|>",
    "<script>alert(1)</script>",
    "</textarea>",
    "\\input{/etc/passwd}",
    "\\write18{rm -rf x}",
    " $ % # _ { } ~ ^ \\",
    "\n",
    " ",
    "😀",
    "中文",
    "<!--",
    "</script>",
]


def sample_result() -> CaseResult:
    """The real SmolLM2 result shipped with the tests (graph etc. are None)."""
    with open(DATA / "sample_result.json", encoding="utf-8") as f:
        return CaseResult.from_json(json.load(f))


def _score(text: str, token_id: int, logit: float, prob: float) -> TokenScore:
    return TokenScore(text=text, token=text.replace(" ", "Ġ"), id=token_id, logit=logit, prob=prob)


def make_attribution(
    texts: list[str], relevance: list[float], special: list[bool], *, model: str = "tiny-model"
) -> Attribution:
    target = _score(" Yellow", 101, 10.5, 0.4)
    contrast = _score(" Blue", 102, 9.25, 0.2)
    return Attribution(
        model=model,
        mode="logit_diff",
        strategy="by_ref_token",
        k=None,
        objective="logit(target) - logit(contrast)",
        tokens=[t.replace(" ", "Ġ").replace("\n", "Ċ") for t in texts],
        token_texts=texts,
        token_ids=list(range(1, len(texts) + 1)),
        special=special,
        relevance=relevance,
        explained=1.25,
        target=target,
        contrast=contrast,
        top_k=[target, contrast, _score(" Green", 103, 8.0, 0.1)],
        prompt_length=len(texts),
        notes=["a note for the reader"],
    )


def make_graph(n_tokens: int) -> dict[str, Any]:
    layers = ["emb", "0", "0.mid", "1"]
    node_relevance = [
        [round(((i + 1) * (j - 1.5)) / 10, 3) for j in range(n_tokens)] for i in range(len(layers))
    ]
    edges = [
        {"source_layer": "emb", "target_layer": "0", "source": 1, "target": 2, "weight": 0.8},
        {"source_layer": "0", "target_layer": "0.mid", "source": 2, "target": 3, "weight": -0.3},
        {
            "source_layer": "0.mid",
            "target_layer": "1",
            "source": 3,
            "target": n_tokens - 1,
            "weight": 0.05,
        },
        {
            "source_layer": "emb",
            "target_layer": "1",
            "source": 0,
            "target": n_tokens - 1,
            "weight": -0.6,
        },
    ]
    return {
        "tokens": [f"t{j}" for j in range(n_tokens)],
        "layers": layers,
        "node_relevance": node_relevance,
        "edges": edges,
        "meta": {"prune": "cum_mass", "p": 0.85},
    }


def metrics_row(layer: str, **values: Any) -> LayerMetrics:
    """The metrics of one layer: ``values``, every other metric 0 (no positions for a list)."""
    first = LayerMetrics.from_json(
        {name: [] if name.startswith(("hubs", "degree")) else 0 for name in METRIC_NAMES}
        | {"layer": layer}
    )
    return replace(first, **values)


def make_result(
    case_id: str = "synthetic-case",
    *,
    model: str = "tiny-model",
    texts: list[str] | None = None,
    relevance: list[float] | None = None,
    special: list[bool] | None = None,
    prompt: str = "List three primary colors.",
    full: bool = True,
    tags: dict[str, str] | None = None,
    explained_offset: float = 0.0,
) -> CaseResult:
    """A small CaseResult; with ``full`` every optional section (graph, metrics, ...) is set."""
    texts = texts or ["<s>", "List", " three", " primary", " colors", ".", "\n", "Red", ":"]
    n = len(texts)
    relevance = relevance or [0.9, 0.2, -0.1, 0.35, -0.4, 0.05, 0.0, 0.1, 0.6][:n]
    special = special or [i == 0 for i in range(n)]
    att = make_attribution(texts, relevance, special, model=model)
    if explained_offset:
        att = Attribution(**{**att.__dict__, "explained": att.explained + explained_offset})
    extra: dict[str, Any] = {}
    if full:
        extra = {
            "graph": AttributionGraph.from_json(make_graph(n)),
            # the metrics a dossier draws, and two it leaves to data.json (gini_out, edges_in)
            "metrics": tuple(
                metrics_row(
                    layer,
                    nodes=3 + i,
                    edges_in=2 * i,
                    gini_out=0.5 + 0.1 * i,
                    hubs_90=list(range(1 + i % 2)),
                    verticality=0.25 * i,
                    mean_lookback=1.5 * i,
                )
                for i, layer in enumerate(["emb", "0", "0.mid", "1"])
            ),
            "neurons": (
                NodeNeurons(
                    layer="1",
                    position=3,
                    token=" primary",
                    relevance=0.42,
                    dimensions=(UnitRelevance(17, 0.2), UnitRelevance(5, -0.1)),
                ),
            ),
            "faithfulness": Faithfulness.from_json(
                {
                    "flip_k": {"attnlrp": 2, "grad_x_input": 4, "gradient": None, "random": 5.5},
                    "aopc": {"attnlrp": 0.9, "grad_x_input": 0.5, "gradient": 0.2, "random": 0.1},
                    "curves": {
                        "attnlrp": [1.25, 0.3, -0.2, -0.5],
                        "grad_x_input": [1.25, 0.9, 0.4, 0.1],
                        "gradient": [1.25, 1.1, 1.0, 0.8],
                        "random": [1.25, 1.2, 1.1, 1.0],
                    },
                    # the numbers the dossier's flip sentence is written from
                    "budget": 3,
                    "baseline_f": 1.25,
                    "contrastive": True,
                    "order": {"attnlrp": [1, 2]},
                    "random_flip_k_seeds": [5, 6],
                    # the rest of what the flip test records
                    "insertion": {},
                    "points": None,
                    "mask": "input embedding replaced by zeros",
                    "gradient_f": 1.25,
                    "random_seeds": 2,
                    "n_tokens": n,
                    "maskable": n - 1,
                    "masked_sets": 16,
                    "forwarded_tokens": 16 * n,
                }
            ),
            "comparisons": (
                Comparison(
                    model="other-model",
                    explained=-0.5,
                    target_logit=7.0,
                    target_token="ĠYellow",
                    contrast_logit=7.5,
                    contrast_token="ĠBlue",
                    greedy_token="ĠBlue",
                    conservation=0.8,
                    segments={"instruction": -0.2},
                    tokens=["<s>", "List", "Ġthree", "Ġprimary", "Ġcolors", "."],
                    relevance=[0.0, -0.1, -0.05, -0.05, 0.0, 0.1],
                ),
            ),
        }
    return CaseResult(
        case_id=case_id,
        title=f"Synthetic case {case_id}",
        description="A hand-made case to exercise every section of the dossier.",
        model=model,
        prompt=prompt,
        chat=True,
        prefix="The primary colors are:\n\nRed:",
        tags=tags if tags is not None else {"benchmark": "custom", "pattern": "URT"},
        segments={"instruction": [1, 6]},
        case_file=f"{case_id}.toml",
        case_toml=f'id = "{case_id}"\nprompt = {json.dumps(prompt)}\n',
        attribution=att,
        environment={
            "reportgen": "0.1.0",
            "torch": "2.13.0",
            "command": f"reportgen run {case_id}",
        },
        **extra,
    )


CASES = Path(__file__).resolve().parent.parent / "cases"


def collected_result(case_file: str = "humaneval/humaneval-30.toml") -> CaseResult:
    """A synthetic result of a shipped collected case: its case file's text (with the
    ``[source]`` table: both outputs and the verifier's verdicts), prompt, prefix, tags, and
    the target and contrast tokens of the pin; the numbers are make_result's."""
    import tomllib

    text = (CASES / case_file).read_text(encoding="utf-8")
    case = tomllib.loads(text)
    source = case["source"]
    result = make_result(case["id"], tags=dict(case["tags"]), prompt=case["prompt"])
    att = result.attribution
    target = TokenScore(
        text=source["target_text"],
        token=source["target_text"],
        id=case["target"],
        logit=10.5,
        prob=0.4,
    )
    contrast = TokenScore(
        text=source["contrast_text"],
        token=source["contrast_text"],
        id=case["contrast"],
        logit=8.43,
        prob=0.05,
    )
    att = Attribution(
        **{
            **att.__dict__,
            "target": target,
            "contrast": contrast,
            "top_k": [target, contrast],
            "explained": 2.07,
        }
    )
    return CaseResult(
        **{
            **result.__dict__,
            "title": case["title"],
            "description": case["description"],
            "prefix": case["prefix"],
            "case_file": Path(case_file).name,
            "case_toml": text,
            "attribution": att,
        }
    )


def hostile_result(case_id: str = "hostile-case") -> CaseResult:
    """Every string a renderer must escape: HTML, LaTeX, emoji, CJK, comment openers."""
    n = len(HOSTILE_TOKENS)
    relevance = [50.0] + [(-1) ** i * 0.1 * i for i in range(1, n)]
    special = [True] + [False] * (n - 1)
    result = make_result(
        case_id,
        texts=HOSTILE_TOKENS,
        relevance=relevance,
        special=special,
        prompt=HOSTILE_PROMPT,
        tags={"benchmark": "<b>bench</b>", "pattern": "\\write18{x}"},
    )
    graph = result.graph.to_json()
    graph["tokens"] = HOSTILE_TOKENS
    graph["layers"] = ["emb", "</script>", "0.mid", "1"]
    for e in graph["edges"]:
        for key in ("source_layer", "target_layer"):
            if e[key] == "0":
                e[key] = "</script>"
    return CaseResult(
        **{
            **result.__dict__,
            "title": "<script>alert(1)</script> \\input{/etc/passwd}",
            "description": "</textarea> $ % # _ { } ~ ^ \\ 😀 中文",
            "case_toml": f'prompt = """{HOSTILE_PROMPT}"""\n',
            "graph": AttributionGraph.from_json(graph),
            "environment": {"<script>alert(1)</script>": "\\write18{rm -rf x}"},
        }
    )


CODE_LINES = [
    "def fahrenheit_to_celsius(value):",
    '    """Convert a temperature."""',
    "    if value is None:",
    "        return None",
    "    return (value - 32) * 5 / 9",
    "",
]


def long_result(n_tokens: int, case_id: str = "long-case") -> CaseResult:
    """A CaseResult of ``n_tokens`` tokens of indented code (tokens that hold a newline plus
    indentation, as real tokenizers make them), with a pruned graph: only a few dozen nodes and
    edges, the way the pruned subgraph of a long input looks."""
    texts = ["<|im_start|>"]
    words: list[str] = []
    for line in CODE_LINES:
        stripped = line.lstrip(" ")
        indent = line[: len(line) - len(stripped)]
        words.append("\n" + indent)
        words.extend([w if i == 0 else " " + w for i, w in enumerate(stripped.split(" ")) if w])
    while len(texts) < n_tokens:
        texts.extend(words[: n_tokens - len(texts)])
    relevance = [
        0.0 if i == 0 else round(((i * 7919) % 1000 - 500) / 5000 * (1 + (i % 97 == 0) * 8), 6)
        for i in range(n_tokens)
    ]
    special = [i == 0 for i in range(n_tokens)]
    result = make_result(
        case_id, texts=texts, relevance=relevance, special=special, prompt="".join(texts[1:])
    )
    layers = ["emb", *[str(i) for i in range(8)]]
    node_relevance = [[0.0] * n_tokens for _ in layers]
    hot = [i for i in range(1, n_tokens) if i % 97 == 0][:12] + [n_tokens - 1]
    edges = []
    for li, layer in enumerate(layers):
        for j, pos in enumerate(hot):
            node_relevance[li][pos] = round(0.1 * (1 + j % 3) * (-1) ** j, 3)
            if li:
                edges.append(
                    {
                        "source_layer": layers[li - 1],
                        "target_layer": layer,
                        "source": pos,
                        "target": n_tokens - 1 if j % 2 else pos,
                        "weight": round(0.05 * (1 + j % 4) * (-1) ** li, 3),
                    }
                )
    graph = {
        "tokens": texts,
        "layers": layers,
        "node_relevance": node_relevance,
        "edges": edges,
        "meta": {"prune": "cum_mass", "p": 0.85},
    }
    k = 50
    curves = {
        name: [1.25 - step * k_ for k_ in range(k + 1)]
        for name, step in (("attnlrp", 0.05), ("grad_x_input", 0.03), ("gradient", 0.02))
    }
    curves["random"] = [1.25 - 0.001 * k_ for k_ in range(k + 1)]
    faith = replace(
        result.faithfulness,
        curves=curves,
        flip_k={"attnlrp": 26, "grad_x_input": 42, "gradient": None, "random": None},
        aopc={name: 0.5 for name in curves},
        budget=k,
        order={name: hot[:k] for name in curves},
    )
    return CaseResult(
        **{
            **result.__dict__,
            "graph": AttributionGraph.from_json(graph),
            "faithfulness": faith,
            "segments": {"instruction": [1, min(40, n_tokens)]},
        }
    )


def random_graph(
    n_tokens: int, n_layers: int, per_layer: int, tokens: list[str] | None = None
) -> AttributionGraph:
    """A seeded random pruned graph: ``per_layer`` edges per layer transition, each from a
    token to one up to 49 places later, node relevance the sum of the edges at the node."""
    rng = random.Random(0)
    layers = ["emb"] + [str(i) for i in range(n_layers - 1)]
    relevance = [[0.0] * n_tokens for _ in layers]
    edges = []
    for li in range(n_layers - 1):
        for _ in range(per_layer):
            s = rng.randrange(n_tokens)
            t = min(n_tokens - 1, s + rng.randrange(50))
            w = rng.gauss(0, 1)
            edges.append(
                {
                    "source_layer": layers[li],
                    "target_layer": layers[li + 1],
                    "source": s,
                    "target": t,
                    "weight": w,
                }
            )
            relevance[li][s] += w
            relevance[li + 1][t] += w
    tokens = tokens if tokens is not None else [f"w{i}" for i in range(n_tokens)]
    return AttributionGraph.from_json(
        {
            "tokens": tokens,
            "layers": layers,
            "node_relevance": relevance,
            "edges": edges,
            "meta": {},
        }
    )


#: the case file's pinned subgraph of :func:`circuit_result` (as ``[graph] pinned``)
CIRCUIT_PINNED = [["emb", 1], ["0", 2], ["1", 8], ["emb", 0]]


def circuit_result(case_id: str = "circuit-case") -> CaseResult:
    """make_result with a pinned subgraph in its graph's meta (a supernode "subject" of the two
    embeddings) and interventions: two nodes ablated alone, the pinned set and the supernode
    ablated at once (numbers made up, distinct, so a page shows which is which)."""
    from dataclasses import replace

    from reportgen.results import Interventions, NodeEffect, SubgraphEffect

    result = make_result(case_id)
    graph = result.graph.with_meta(
        pinned=CIRCUIT_PINNED,
        supernodes=[{"label": "subject", "nodes": [["emb", 1], ["emb", 0]]}],
    )
    pinned = tuple((layer, pos) for layer, pos in CIRCUIT_PINNED)
    interventions = Interventions(
        baseline="mean",
        f_clean=1.25,
        nodes=(NodeEffect("emb", 1, -0.05, 0.375), NodeEffect("1", 8, 2.6, -0.625)),
        subgraph=SubgraphEffect(pinned[:3], -0.875, True, 102, " Blue"),
        rank_correlation=-1.0,
        pinned=SubgraphEffect(pinned, -0.5, True, 102, " Blue"),
        supernodes=(("subject", SubgraphEffect((("emb", 1), ("emb", 0)), 0.1875, False, 101)),),
    )
    return replace(result, graph=graph, interventions=interventions)
