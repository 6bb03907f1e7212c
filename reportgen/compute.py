"""Case -> CaseResult (the computing half of `run` and `build`), with an on-disk result cache.

The cache key covers everything the numbers depend on: the case file's text, the model's
identity (weights hash where known), and a hash of the computing code itself -- so an edit to
the math invalidates old results, while an edit to templates re-renders without recomputing."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import __version__, cache_files
from .attribution import Attribution, attribution_from
from .cache_keys import code_version, model_identity
from .cases import Case, check_layers
from .clean_forward import CleanForward, clean_forward
from .compare import compare_models
from .errors import CaseError, ModelLoadError, warn
from .faithfulness import failure_pattern, faithfulness
from .graph.step import compute_graph
from .graph.types import AttributionGraph
from .interventions import case_circuit, pinned_meta
from .models import LoadedModel, cache_dir, load_model
from .objectives import Objective
from .pipeline import attribute_prepared, check_fits, prepare_question
from .progress import Progress, no_progress, return_freed_memory
from .results import CaseResult, Comparison, Faithfulness, LayerMetrics, NodeNeurons

#: the flip test's grid of k when the exact test (every k) does not fit the budget
FAITHFULNESS_GRID = (1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50)
#: the flip test's compute budget, at any input length, in token-forwards of SmolLM2-135M (16
#: full forwards of a 2k-token input; the hand-written SmolLM2 chat cases fit it whole, the
#: collected HumanEval ones of 130-280 tokens do not). A
#: test that fits is exact at every k; one that does not is sampled within it (grid, exact flip
#: scans or their ranges, the random seeds that fit), and the dossier says so
FAITHFULNESS_COST_BUDGET = 32_768
#: ... of SmolLM2-135M: the budget is compute, 2 FLOPs per block parameter per token-forward of
#: this many block parameters; a model with more gets proportionally fewer token-forwards
#: (Qwen2.5-Coder-1.5B: about 2,700), one with fewer the same 32,768
FAITHFULNESS_REFERENCE_BLOCK_PARAMETERS = 106_202_880
#: the coarser k of a sampled test's random baseline (so more seeds fit)
FAITHFULNESS_RANDOM_GRID = (5, 20, 50)

#: what quick mode (``--fast``) leaves out; the dossier names it
FAST_SKIPS = ("faithfulness", "interventions")


def result_key(
    case: Case, case_text: str, runtime: dict[str, Any] | None = None, *, fast: bool = False
) -> str:
    """``runtime``: what else changes the numbers (per model: device type, dtype, quantisation);
    ``None`` is the default float32 CPU run. ``fast``: a quick-mode result (no faithfulness)
    is stored under its own key, which a full build never reads (and the other way round)."""
    fields: dict[str, Any] = {
        "case": case_text,
        "model": model_identity(case.model),
        "compare": [model_identity(m) for m in case.compare],
        "code": code_version(),
    }
    if runtime is not None:
        fields["runtime"] = runtime
    if fast:
        fields["mode"] = "fast: " + ",".join(FAST_SKIPS)
    payload = json.dumps(fields, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def results_cache() -> Path:
    return cache_dir() / "results"


_ENVELOPE = "reportgen-result"
_canonical = cache_files.canonical


def cached_result(key: str) -> CaseResult | None:
    """The stored result of ``key``, or None. Anything damaged or foreign (not JSON, not our
    envelope, a checksum that does not match, wrong types, a folder, an unreadable file) is
    reported in one line and recomputed, never trusted and never fatal."""
    path = results_cache() / f"{key}.json"
    if not path.exists() and not path.is_symlink():
        return None
    try:
        body = cache_files.read_sealed(path, _ENVELOPE, key, field="result")
        if not isinstance(body, dict):
            raise ValueError("a result stored under another key")
        result = CaseResult.from_json(body)
        check_result(result)
        return result
    except (OSError, ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        warn(f"damaged result cache entry {path} ({reason[:120]}); recomputing the case")
        return None


def check_result(result: CaseResult) -> None:
    """Raise TypeError unless the fields every page reads have the types they need."""
    att = result.attribution
    n = len(att.token_ids)
    checks = {
        "case_id": isinstance(result.case_id, str),
        "title": isinstance(result.title, str),
        "model": isinstance(result.model, str),
        "prompt": isinstance(result.prompt, str),
        "explained": isinstance(att.explained, int | float) and not isinstance(att.explained, bool),
        "token_ids": all(isinstance(t, int) for t in att.token_ids),
        "relevance": len(att.relevance) == n
        and all(isinstance(r, int | float) and not isinstance(r, bool) for r in att.relevance),
        "token_texts": len(att.token_texts) == n
        and all(isinstance(t, str) for t in att.token_texts),
        "special": len(att.special) == n,
        "graph": result.graph is None or isinstance(result.graph, AttributionGraph),
        "segments": isinstance(result.segments, dict),
        "tags": isinstance(result.tags, dict),
    }
    bad = [name for name, ok in checks.items() if not ok]
    if bad:
        raise TypeError(f"wrong type or length of {', '.join(bad)}")


def store_result(key: str, result: CaseResult) -> None:
    """Write atomically; a cache that cannot be written costs a warning, never the result."""
    target = results_cache() / f"{key}.json"
    cache_files.write_sealed(target, _ENVELOPE, key, result.to_json(), field="result")


def environment(loaded: LoadedModel, command: str) -> dict[str, Any]:
    import torch
    import transformers

    return {
        "reportgen": __version__,
        "code_version": code_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "model": loaded.name,
        "model_source": loaded.source,
        "model_sha256": loaded.weights_sha256 or "unknown",
        "dtype": loaded.dtype,
        "quantization": getattr(loaded, "quantization", None) or "none",
        # the device type, not the index: which GPU of a machine ran a case changes no number
        "device": str(loaded.device).split(":", 1)[0],
        **(
            {"device_name": _device_name(loaded.device)}
            if str(loaded.device).startswith("cuda")
            else {}
        ),
        "command": command,
    }


def _device_name(device: str) -> str:
    import torch

    return torch.cuda.get_device_name(torch.device(device))


def case_faithfulness(
    loaded: LoadedModel,
    attribution: Attribution,
    objective: Objective,
    progress: Callable[[int, int], None] | None = None,
    clean: CleanForward | None = None,
) -> dict[str, Any]:
    """The flip test as a dossier shows it: deletion curves only (insertion doubles the cost),
    within the model's compute budget (``faithfulness_cost_budget``): exact at every k when the
    whole test fits, else on a grid of k with flip-k exact or bounded
    (``faithfulness.faithfulness``). The budget depends on the model's size, not on the input's
    length: a 300-token case of a 1.5B model is sampled where SmolLM2's is exact."""
    return faithfulness(
        loaded,
        attribution.token_ids,
        objective,
        attribution.relevance,
        attribution.special,
        budget=50,
        insertion=False,
        points=FAITHFULNESS_GRID,
        cost_budget=faithfulness_cost_budget(loaded.model),
        exact_if_fits=True,
        random_points=FAITHFULNESS_RANDOM_GRID,
        progress=progress,
        clean=clean,
    )


def faithfulness_cost_budget(model: Any) -> int:
    """The flip test's budget in token-forwards of ``model``: the same compute as
    ``FAITHFULNESS_COST_BUDGET`` token-forwards of SmolLM2-135M (never more token-forwards)."""
    try:
        from lxt import decoder_blocks

        parameters = sum(p.numel() for p in decoder_blocks(model).parameters())
    except Exception:  # noqa: BLE001 -- no architecture entry: count every parameter
        parameters = sum(p.numel() for p in model.parameters())
    if parameters <= FAITHFULNESS_REFERENCE_BLOCK_PARAMETERS:
        return FAITHFULNESS_COST_BUDGET
    return int(FAITHFULNESS_COST_BUDGET * FAITHFULNESS_REFERENCE_BLOCK_PARAMETERS / parameters)


def compute_case(
    case: Case,
    loaded: LoadedModel,
    *,
    command: str,
    case_text: str | None = None,
    progress: Progress = no_progress,
    load_other: Callable[[str], LoadedModel] = load_model,
    use_cache: bool = True,
    fast: bool = False,
) -> CaseResult:
    """All numbers of one case. ``fast`` (quick mode) skips the faithfulness test (the
    deletion curves: most of a short case's time); attribution and graph are the same.
    ``progress(step, done, total)`` reports the step inside the case (attribution, graph layer i of L, faithfulness masked sets done of total, comparison
    models) with plain values; a case that will not fit in memory fails before it starts.
    ``use_cache=False`` (``--no-cache``) also bypasses the graph cache. ``case_text``: the case
    file's text when the caller has it (a worker of a Ray cluster may not see the driver's
    files); default: read ``case.path``."""
    if case_text is None:
        case_text = Path(case.path).read_text(encoding="utf-8")
    question = prepare_question(loaded, case.question, where=case.path)
    n = len(question.inputs.token_ids)
    check_fits(loaded, n, where=case.path)
    spans = [(f"segments.{name}", span) for name, span in case.segments.items()]
    spans += [(f"relevant[{i}]", span) for i, span in enumerate(case.relevant)]
    for field_name, (start, end) in spans:
        if end > n:
            raise CaseError(
                case.path, field_name, f"span [{start}, {end}) exceeds the {n} input tokens"
            )
    blocks = getattr(getattr(loaded.model, "config", None), "num_hidden_layers", None)
    check_layers(case.path, case.graph.layers, blocks if isinstance(blocks, int) else None)
    identity = model_identity(case.model)
    # the graph first: its trace is the AttnLRP pass the attribution reads (one pass, not two);
    # only a graph read from the cache leaves the attribution a pass of its own
    progress("graph", 0, 1)
    graph = compute_graph(
        loaded,
        question.inputs.token_ids,
        question.objective,
        case.graph,
        model_identity=identity,
        code=code_version(),
        use_cache=use_cache,
        progress=lambda done, total: progress("graph", done, total),
    )
    progress("attribution", 0, 1)
    if graph.lrp_pass is not None:
        attribution = attribution_from(
            loaded,
            question.inputs,
            question.objective,
            graph.lrp_pass,
            target=question.target,
            contrast=question.contrast,
        )
        graph = dataclasses.replace(graph, lrp_pass=None)  # its tensors are read
    else:
        attribution = attribute_prepared(loaded, question)
    progress("attribution", 1, 1)
    return_freed_memory(len(attribution.token_ids))
    circuit = None  # quick mode: the pinned subgraph (for its figure) without the ablations
    pinned = pinned_meta(case, graph.pruned)
    faith = None
    if not fast:
        progress("interventions", 0, 1)
        # the input's one plain read: the ablations, the continuations and the flip test all
        # start from it
        clean = clean_forward(loaded.model, question.inputs.token_ids)
        circuit = case_circuit(loaded, case, question, graph.pruned, clean)
        progress("faithfulness", 0, 1)
        faith = case_faithfulness(
            loaded,
            attribution,
            question.objective,
            progress=lambda done, total: progress("faithfulness", done, total),
            clean=clean,
        )
        del clean
        return_freed_memory(len(attribution.token_ids))
        pattern = failure_pattern(attribution.relevance, attribution.special, list(case.relevant))
        if pattern is not None:
            faith["failure_pattern"] = pattern
    comparisons, comparison_errors = None, []
    if case.compare:
        progress("comparison", 0, len(case.compare))
        try:
            comparisons, comparison_errors = compare_models(
                case.question,
                attribution,
                {k: list(v) for k, v in case.segments.items()},
                case.compare,
                load_other,
            )
        except ModelLoadError as exc:
            raise CaseError(case.path, "compare", str(exc)) from None
    return CaseResult(
        case_id=case.id,
        title=case.title,
        description=case.description,
        model=case.model,
        prompt=case.question.prompt.prompt,
        chat=case.question.prompt.chat,
        prefix=case.question.prompt.prefix,
        tags=dict(case.tags),
        segments={name: list(span) for name, span in case.segments.items()},
        case_file=Path(case.path).name,
        case_toml=case_text,
        attribution=attribution,
        graph=graph.pruned.with_meta(
            edges_before_pruning=graph.full.n_edges,
            edges_after_pruning=graph.pruned.n_edges,
            prune=case.graph.prune,
            p=case.graph.p,
            **pinned,
        ),
        metrics=tuple(LayerMetrics.from_json(m) for m in graph.metrics),
        neurons=tuple(NodeNeurons.from_json(n) for n in graph.neurons),
        faithfulness=Faithfulness.from_json(faith) if faith is not None else None,
        comparisons=None
        if comparisons is None
        else tuple(Comparison.from_json(c) for c in comparisons),
        interventions=circuit.interventions if circuit else None,
        continuations=circuit.continuations if circuit else None,
        environment={
            **environment(loaded, command),
            "model_identity": identity,
            **({"quick_mode_skipped": list(FAST_SKIPS)} if fast else {}),
            **({"comparison_errors": comparison_errors} if comparison_errors else {}),
        },
    )
