"""A realistic long CaseResult (2k to 16k tokens) without running a model, for the long-input
rendering tests and benchmarks/bench_long_render.py.

The tokens are real: the source of Python's own ``argparse.py`` (shipped with every interpreter;
about 22,000 SmolLM2 tokens), with a paragraph of hostile text in front (backslashes, braces,
``%``, ``#``, control characters, right-to-left override, CJK, emoji), tokenized with the
embedded model's tokenizer when it is cached (``tokenizers`` only, no model), otherwise with a
byte-level-BPE-like splitter that makes the same kinds of tokens (a newline plus indentation in
one token, a leading space). Everything else is shaped like the compute side's output:
heavy-tailed relevance, a pruned graph of a few hundred nodes over the embedded model's 31 node
layers, per-layer metrics with the real keys, neuron detail, and the long path's faithfulness
(the curves on a grid of k, None where no k was evaluated, a flip scan cut by the
compute budget, the random baseline from the seeds the budget had room for)."""

from __future__ import annotations

import math
import re
import sysconfig
from pathlib import Path
from typing import Any

import numpy as np

from reportgen.faithfulness import failure_pattern
from reportgen.graph.types import AttributionGraph
from reportgen.results import (
    Attribution,
    CaseResult,
    Comparison,
    Faithfulness,
    LayerMetrics,
    NodeNeurons,
    TokenScore,
)

TOKENIZER = Path.home() / ".cache/reportgen/models/smollm2-135m-instruct/tokenizer.json"
SOURCE = Path(sysconfig.get_paths()["stdlib"]) / "argparse.py"
HOSTILE = (
    "Notes \\section{x} \\input{/etc/passwd} \\write18{rm -rf x} {braces} 100% #hash $x$ "
    "a & b ~ ^ _ | <tag> -- `` '' \x07bell \x1b[31mansi\x1b[0m\ttab\r\n"
    "\u202eevil\u202c zero\u200bwidth caf\u00e9 na\u00efve \u4e2d\u6587 \U0001f600 "
    "\\\\ \\{ \\} \\% end\n\n"
)
QUESTION = (
    "\n```\n\nWhich method of ArgumentParser adds a group whose arguments exclude each other? "
    "Answer with the method name."
)
GRAPH_LAYERS = ["emb", *[str(i) for i in range(30)]]  # SmolLM2-135M: 30 blocks
FAITHFULNESS_GRID = (1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50)  # compute.py's
RANDOM_GRID = (5, 20, 50)
BUDGET = 50

_PIECE = re.compile(r"\n[ \t]*|[ ]?[A-Za-z_]+|[ ]?[0-9]|[ ]?[^\sA-Za-z0-9_]+|\s")


def _tokenize(text: str) -> tuple[list[int], list[str], list[str]]:
    """(ids, tokenizer strings, decoded texts) of ``text``."""
    if TOKENIZER.is_file():
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(TOKENIZER))
        ids = tok.encode(text, add_special_tokens=False).ids
        return ids, [tok.id_to_token(i) for i in ids], [tok.decode([i]) for i in ids]
    pieces = _PIECE.findall(text)
    vocab: dict[str, int] = {}
    ids = [vocab.setdefault(p, 100 + len(vocab)) for p in pieces]
    return ids, [p.replace(" ", "Ġ").replace("\n", "Ċ") for p in pieces], pieces


def _score(text: str, token_id: int, logit: float, prob: float) -> TokenScore:
    return TokenScore(text=text, token=text.replace(" ", "Ġ"), id=token_id, logit=logit, prob=prob)


def _tokens(n_tokens: int) -> tuple[list[int], list[str], list[str], list[bool], int]:
    """n_tokens tokens of a chat prompt: <|im_start|>user, the document, the question,
    <|im_end|>, <|im_start|>assistant, the response prefix. Returns the document's end too."""
    head_ids, head_tokens, head_texts = [1], ["<|im_start|>"], ["<|im_start|>"]
    for ids, tokens, texts in [_tokenize("user\nHere is a Python module.\n\n```python\n")]:
        head_ids += ids
        head_tokens += tokens
        head_texts += texts
    q_ids, q_tokens, q_texts = _tokenize(QUESTION)
    tail_ids = [*q_ids, 2, 1]
    tail_tokens = [*q_tokens, "<|im_end|>", "<|im_start|>"]
    tail_texts = [*q_texts, "<|im_end|>", "<|im_start|>"]
    a_ids, a_tokens, a_texts = _tokenize("assistant\nThe method is `")
    tail_ids += a_ids
    tail_tokens += a_tokens
    tail_texts += a_texts
    room = n_tokens - len(head_ids) - len(tail_ids)
    if room < 10:
        raise ValueError(f"n_tokens={n_tokens} leaves no room for the document")
    d_ids, d_tokens, d_texts = _tokenize(HOSTILE + SOURCE.read_text(encoding="utf-8"))
    if len(d_ids) < room:
        raise ValueError(f"{SOURCE} has only {len(d_ids)} tokens, {room} asked for")
    ids = head_ids + d_ids[:room] + tail_ids
    tokens = head_tokens + d_tokens[:room] + tail_tokens
    texts = head_texts + d_texts[:room] + tail_texts
    special = [t in ("<|im_start|>", "<|im_end|>") for t in tokens]
    return ids, tokens, texts, special, len(head_ids) + room


def _relevance(rng: np.random.Generator, n: int, special: list[bool]) -> np.ndarray:
    """Heavy-tailed: most tokens near zero, a few hundred clearly relevant, a handful dominant
    (Student t with 1.5 degrees of freedom), more mass near the end of the input."""
    rel = rng.standard_t(1.5, n) * 0.004
    rel *= 1 + 3 * (np.arange(n) / n) ** 4
    for i in rng.choice(n, 12, replace=False):
        rel[i] = rng.choice([-1, 1]) * rng.uniform(0.3, 1.2)
    rel[np.asarray(special)] = 0.0
    rel[0] = 2.5  # the attention sink: large, special, out of the colour scale
    return np.round(rel, 7)


def _graph(
    rng: np.random.Generator, tokens: list[str], relevance: np.ndarray, special: list[bool]
) -> AttributionGraph:
    """A pruned graph: the strongest ~120 positions and the output position; each layer keeps
    a changing subset of them (12 to 20 nodes), each node fed by the same position one layer
    down (residual) and by one or two earlier positions (attention), weights that sum to the
    node's relevance."""
    n = len(tokens)
    out = n - 1
    plain = [i for i in range(n) if not special[i]]
    hot = sorted(plain, key=lambda i: -abs(relevance[i]))[:120]
    layers = GRAPH_LAYERS
    node = np.zeros((len(layers), n))
    nodes_at: list[list[int]] = []
    for li in range(len(layers)):
        size = 12 + (li * 7) % 9
        chosen = set(rng.choice(hot, size, replace=False).tolist()) | {out}
        if li < 3:
            chosen |= {0}  # the sink early on
        nodes_at.append(sorted(chosen))
    src_l, tgt_l, src, tgt, weight = [], [], [], [], []
    node[0, nodes_at[0]] = relevance[nodes_at[0]] + rng.normal(0, 0.01, len(nodes_at[0]))
    node[0, out] = 0.4
    for li in range(1, len(layers)):
        below = nodes_at[li - 1]
        for pos in nodes_at[li]:
            feeders = [p for p in below if p <= pos]
            if not feeders:
                continue
            picks = {pos} if pos in below else set()
            for p in rng.choice(feeders, min(len(feeders), 1 + int(rng.integers(0, 3)))):
                picks.add(int(p))
            for p in sorted(picks):
                w = float(node[li - 1, p]) * (0.6 if p == pos else 0.25) + rng.normal(0, 0.05)
                src_l.append(li - 1)
                tgt_l.append(li)
                src.append(p)
                tgt.append(pos)
                weight.append(w)
                node[li, pos] += w
    node[-1, out] = node[-1, out] or 1.4
    return AttributionGraph(
        tokens=tuple(tokens),
        layers=tuple(layers),
        node_relevance=node,
        edge_source_layer=np.asarray(src_l, dtype=np.int16),
        edge_target_layer=np.asarray(tgt_l, dtype=np.int16),
        edge_source=np.asarray(src, dtype=np.int32),
        edge_target=np.asarray(tgt, dtype=np.int32),
        edge_weight=np.asarray(weight, dtype=np.float32),
        meta={
            "method": "closed",
            "exact": True,
            "explained": 1.4,
            "pruned_cumulative_mass": 0.85,
            "pruned_node_threshold": 0.01,
            "connected_to": [len(layers) - 1, out],
            "edges_before_pruning": 40 * n * len(layers),
            "edges_after_pruning": len(weight),
            "prune": "cum_mass",
            "p": 0.85,
        },
    )


def _gini(values: np.ndarray) -> float:
    v = np.sort(np.abs(values))
    if not v.sum():
        return 0.0
    k = np.arange(1, len(v) + 1)
    return float((2 * (k * v).sum()) / (len(v) * v.sum()) - (len(v) + 1) / len(v))


def _metrics(graph: AttributionGraph) -> list[dict[str, Any]]:
    """Per node layer, the compute side's metric keys (numbers and lists of positions)."""
    rows = []
    for li, layer in enumerate(graph.layers):
        row = graph.node_relevance[li]
        pos = np.flatnonzero(row)
        e_in = int((graph.edge_target_layer == li).sum())
        e_out = int((graph.edge_source_layer == li).sum())
        nodes = max(len(pos), 1)
        mass = np.abs(row[pos])
        order = pos[np.argsort(-mass)]
        cum = np.cumsum(np.sort(mass)[::-1]) / max(mass.sum(), 1e-12)
        hubs = sorted(order[: int(np.searchsorted(cum, 0.9)) + 1].tolist())
        rows.append(
            {
                "layer": layer,
                "nodes": len(pos),
                "edges_in": e_in,
                "edges_out": e_out,
                "edge_node_ratio": e_in / nodes,
                "fan_in": e_in / nodes,
                "fan_out": e_out / nodes,
                "sparsity": 1 - len(pos) / graph.n_tokens,
                "gini_in": 0.0 if li == 0 else 0.3,
                "gini_out": 0.4,
                "gini_relevance": _gini(row[pos]),
                "verticality": 0.0 if li == 0 else 0.55 + 0.01 * (li % 20),
                "local_ratio": 0.0 if li == 0 else 0.2,
                "hubs_90": hubs,
                "hubs_90_pos": [p for p in hubs if row[p] > 0],
                "hubs_90_neg": [p for p in hubs if row[p] < 0],
                "degree_hubs": hubs[:2],
                "centre_of_mass": float((pos * mass).sum() / max(mass.sum(), 1e-12)),
                "mean_lookback": 0.0 if li == 0 else 310.5 + li,
                "relevance_sum": float(row.sum()),
            }
        )
    return rows


def _neurons(
    rng: np.random.Generator, graph: AttributionGraph, texts: list[str]
) -> list[dict[str, Any]]:
    """The 20 strongest nodes with their top hidden dimensions and MLP neurons."""
    flat = [
        (abs(graph.node_relevance[li, p]), li, int(p))
        for li in range(1, len(graph.layers))
        for p in np.flatnonzero(graph.node_relevance[li])
    ]
    out = []
    for _, li, p in sorted(flat, reverse=True)[:20]:
        r = float(graph.node_relevance[li, p])
        dims = rng.choice(576, 10, replace=False)
        mlp = rng.choice(1536, 10, replace=False)
        out.append(
            {
                "layer": graph.layers[li],
                "position": p,
                "token": texts[p],
                "relevance": r,
                "dimensions": [
                    {"index": int(d), "relevance": float(r * 0.15 / (j + 1))}
                    for j, d in enumerate(dims)
                ],
                "mlp_neurons": [
                    {"index": int(m), "relevance": float(r * 0.03 / (j + 1))}
                    for j, m in enumerate(mlp)
                ],
                "mlp_relevance": r * 0.09,
            }
        )
    return out


def long_faithfulness(
    rng: np.random.Generator, relevance: np.ndarray, special: list[bool], f0: float
) -> dict[str, Any]:
    """The long path's return value (faithfulness.faithfulness with ``points``, a
    ``cost_budget`` and ``random_points``, as compute.py calls it beyond 1,024 tokens): the
    ranked orderings' deletion curves on the grid plus every k up to their flip, None at the k
    not evaluated; the gradient order's scan cut by the budget (flip-k None, its range in
    ``flip_bounds``); the random baseline from 3 of 5 seeds on the coarser random grid."""
    n = len(relevance)
    maskable = [i for i in range(n) if not special[i]]
    k_max = min(BUDGET, len(maskable))
    grid = sorted({0, k_max, *[k for k in FAITHFULNESS_GRID if k <= k_max]})
    random_grid = sorted({0, k_max, *[k for k in RANDOM_GRID if k <= k_max]})
    attn = sorted(maskable, key=lambda i: -relevance[i])
    orders = {
        "attnlrp": attn,
        "grad_x_input": attn[:3] + sorted(maskable, key=lambda i: -abs(relevance[i]))[3:],
        "gradient": list(rng.permutation(maskable)),
    }
    randoms = [list(np.random.default_rng(s).permutation(maskable)) for s in range(5)]
    drops = {"attnlrp": 0.3, "grad_x_input": 0.16, "gradient": 0.01}
    cuts = {"gradient": 13}  # the budget ended the gradient order's flip scan before k = 13
    seed_drops = [0.06, 0.01, 0.05]  # the 3 seeds the budget had room for

    def curve(drop: float, ks: list[int], cut: int | None) -> tuple[list[float | None], Any]:
        full = [f0 - drop * k - 0.02 * math.sin(k) for k in range(k_max + 1)]
        flip = next((k for k in range(1, k_max + 1) if full[k] <= 0), None)
        scanned = min(flip or k_max, cut - 1 if cut else k_max)
        seen = set(ks) | set(range(1, scanned + 1))
        values = [round(f, 6) if k in seen else None for k, f in enumerate(full)]
        return values, next(
            (k for k in range(1, k_max + 1) if values[k] is not None and values[k] <= 0), None
        )

    curves: dict[str, list[float | None]] = {}
    flip_k: dict[str, Any] = {}
    bounds: dict[str, list[int | None]] = {}
    for name, drop in drops.items():
        curves[name], flip_k[name] = curve(drop, grid, cuts.get(name))
        if name in cuts:
            bounds[name] = [cuts[name], flip_k[name]]
            flip_k[name] = None
    seeds = [curve(d, random_grid, None) for d in seed_drops]
    used = len(seeds)
    curves["random"] = [
        None if any(c[k] is None for c, _ in seeds) else sum(c[k] for c, _ in seeds) / used
        for k in range(k_max + 1)
    ]
    seed_flips = [f for _, f in seeds]
    flip_k["random"] = sum(f if f is not None else k_max + 1 for f in seed_flips) / used
    aopc_points = [k for k in grid if k >= 1 and all(c[k] is not None for c in curves.values())]

    def aopc(c: list[float | None]) -> float | None:
        vals = [c[k] for k in aopc_points]
        return sum(f0 - v for v in vals) / len(vals) if vals else None

    return {
        "flip_k": flip_k,
        "aopc": {name: aopc(c) for name, c in curves.items()},
        "curves": curves,
        "insertion": {},
        "order": {
            **{name: [int(i) for i in o[:k_max]] for name, o in orders.items()},
            "random": [int(i) for i in randoms[0][:k_max]],
        },
        "budget": k_max,
        "points": grid,
        "mask": "input embedding replaced by zeros (positions unchanged, special tokens never "
        "masked)",
        "baseline_f": f0,
        "gradient_f": f0,
        "random_flip_k_seeds": seed_flips,
        "random_seeds": 5,
        "n_tokens": n,
        "maskable": len(maskable),
        "masked_sets": 180,
        "forwarded_tokens": 180 * n,
        "contrastive": True,
        "cost_budget": 32_768,
        "cost_spent": 31_950,
        "sets_refused": 9,
        "flip_bounds": bounds,
        "random_seeds_used": used,
        "random_points": random_grid,
        "aopc_points": aopc_points,
        # the real rule, on a span in the middle of the document marked as relevant
        "failure_pattern": failure_pattern(
            [float(r) for r in relevance], special, [(n // 2, n // 2 + 20)]
        ),
    }


def long_dossier(n_tokens: int, case_id: str | None = None) -> CaseResult:
    """A long CaseResult of exactly ``n_tokens`` tokens, seeded (the same every run)."""
    rng = np.random.default_rng(n_tokens)
    ids, tokens, texts, special, doc_end = _tokens(n_tokens)
    relevance = _relevance(rng, n_tokens, special)
    target = _score("add", 723, 17.9, 0.41)
    contrast = _score("add_mutually_exclusive_group", 3662, 16.5, 0.1)
    explained = target.logit - contrast.logit
    att = Attribution(
        model="smollm2-135m-instruct",
        mode="logit_diff",
        strategy="by_ref_token",
        k=None,
        objective="logit(target) - logit(contrast)",
        tokens=tokens,
        token_texts=texts,
        token_ids=ids,
        special=special,
        relevance=[float(r) for r in relevance],
        explained=explained,
        target=target,
        contrast=contrast,
        top_k=[target, contrast, _score("parse", 3000, 15.2, 0.05)],
        prompt_length=n_tokens,
        notes=["the contrast is the first subtoken of 'add_mutually_exclusive_group'"],
    )
    graph = _graph(rng, tokens, relevance, special)  # the graph keeps the tokenizer's strings
    case_id = case_id or f"long-argparse-{n_tokens // 1000}k"
    prompt = "".join(t for t, s in zip(texts, special, strict=True) if not s)
    return CaseResult(
        case_id=case_id,
        title=f"Names add where add_mutually_exclusive_group is asked ({n_tokens:,} tokens "
        "of argparse.py)",
        description="A synthetic long dossier: real tokens, made-up numbers shaped like the "
        "compute side's (render tests only).",
        model="smollm2-135m-instruct",
        prompt=prompt,
        chat=True,
        prefix="The method is `",
        tags={"benchmark": "long-context", "pattern": "OIT", "source": "argparse.py"},
        segments={"document": [11, doc_end], "question": [doc_end, n_tokens - 8]},
        case_file=f"{case_id}.toml",
        case_toml=f'id = "{case_id}"\nprompt = """(the {n_tokens}-token prompt)"""\n',
        attribution=att,
        graph=graph,
        metrics=tuple(LayerMetrics.from_json(m) for m in _metrics(graph)),
        neurons=tuple(NodeNeurons.from_json(n) for n in _neurons(rng, graph, texts)),
        faithfulness=Faithfulness.from_json(long_faithfulness(rng, relevance, special, explained)),
        comparisons=(
            Comparison(
                model="gemma3-270m",
                explained=-0.8,
                target_logit=12.0,
                target_token="Ġparse",
                contrast_logit=12.8,
                contrast_token="Ġadd",
                greedy_token="Ġadd",
                conservation=0.7,
                segments={"document": 0.4, "question": -0.9},
                tokens=texts,
                relevance=[0.0] * len(texts),
            ),
        ),
        environment={
            "reportgen": "0.1.0",
            "torch": "2.13.0",
            "model": "smollm2-135m-instruct",
            "command": f"reportgen run {case_id}",
        },
    )
