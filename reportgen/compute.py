"""Case -> CaseResult (the computing half of `run` and `build`), with an on-disk result cache.

The cache key covers everything the numbers depend on: the case file's text, the model's
identity (weights hash where known), and a hash of the computing code itself -- so an edit to
the math invalidates old results, while an edit to templates re-renders without recomputing."""

from __future__ import annotations

import hashlib
import json
import platform
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

from . import __version__
from .cases import Case
from .compare import compare_models
from .faithfulness import failure_pattern, faithfulness, flip_sentence
from .graphs import compute_graph
from .models import EMBEDDED_MODELS, LoadedModel, cache_dir, embedded_path, load_model
from .pipeline import Question, attribute_prepared, prepare_question
from .results import CaseResult

_COMPUTE_PACKAGES = ("lxt", "reportgen")
# the runner only schedules: the settings it resolves that change numbers are in the key itself
_RENDER_ONLY = ("render", "site.py", "cli.py", "build.py", "runner")


@lru_cache(maxsize=1)
def code_version() -> str:
    """Hash of the source files that compute numbers (rendering code excluded)."""
    digest = hashlib.sha256()
    root = Path(__file__).resolve().parent.parent
    for package in _COMPUTE_PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            relative = path.relative_to(root / package).as_posix()
            if package == "reportgen" and relative.startswith(_RENDER_ONLY):
                continue
            digest.update(relative.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def model_identity(spec: str) -> str:
    """A string that changes when the model's weights change, known without loading it."""
    if spec in EMBEDDED_MODELS:
        meta = embedded_path(spec) / "reportgen-model.json"
        if meta.exists():
            return f"{spec}:{json.loads(meta.read_text()).get('weights_sha256')}"
        return f"{spec}:unfetched"
    path = Path(spec).expanduser()
    if path.exists():
        stat = path.stat()
        return f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    return f"hf:{spec}"


def result_key(case: Case, case_text: str, runtime: dict[str, Any] | None = None) -> str:
    """``runtime``: what else changes the numbers (per model: device type, dtype, quantisation);
    ``None`` is the default float32 CPU run."""
    fields: dict[str, Any] = {
        "case": case_text,
        "model": model_identity(case.model),
        "code": code_version(),
    }
    if runtime is not None:
        fields["runtime"] = runtime
    payload = json.dumps(fields, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def results_cache() -> Path:
    return cache_dir() / "results"


def cached_result(key: str) -> CaseResult | None:
    path = results_cache() / f"{key}.json"
    if not path.exists():
        return None
    try:
        return CaseResult.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, TypeError, KeyError):
        return None  # a stale or damaged entry is recomputed, never trusted


def store_result(key: str, result: CaseResult) -> None:
    folder = results_cache()
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{key}.tmp"
    tmp.write_text(result.dumps(), encoding="utf-8")
    tmp.replace(folder / f"{key}.json")


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


def compute_case(
    case: Case,
    loaded: LoadedModel,
    *,
    command: str,
    case_text: str | None = None,
    progress: Callable[[str], None] = lambda step: None,
    load_other: Callable[[str], LoadedModel] = load_model,
    use_cache: bool = True,
) -> CaseResult:
    """All numbers of one case. Later steps (graph, metrics, faithfulness) plug in here.
    ``use_cache=False`` (``--no-cache``) also bypasses the graph cache.
    ``case_text``: the case file's text when the caller has it (a worker of a Ray cluster may
    not see the driver's files); default: read ``case.path``."""
    if case_text is None:
        case_text = Path(case.path).read_text(encoding="utf-8")
    progress("attribution")
    question = prepare_question(loaded, Question.from_case(case))
    attribution = attribute_prepared(loaded, question)
    n = len(attribution.token_ids)
    for name, (start, end) in case.segments.items():
        if end > n:
            raise ValueError(
                f"{case.path}: field 'segments.{name}': span [{start}, {end}) exceeds the {n} tokens"
            )
    progress("graph")
    graph = compute_graph(
        loaded,
        question.inputs.token_ids,
        question.objective,
        case.graph,
        model_identity=model_identity(case.model),
        code=code_version(),
        use_cache=use_cache,
    )
    progress("faithfulness")
    faith = faithfulness(
        loaded,
        attribution.token_ids,
        question.objective,
        attribution.relevance,
        attribution.special,
        budget=50,
        insertion=False,  # the dossier shows deletion curves; insertion doubles the cost
    )
    faith["sentence"] = flip_sentence(faith, attribution.token_texts)
    pattern = failure_pattern(attribution.relevance, attribution.special, list(case.relevant))
    if pattern is not None:
        faith["failure_pattern"] = pattern
    comparisons, comparison_errors = None, []
    if case.compare:
        progress("comparison")
        comparisons, comparison_errors = compare_models(
            Question.from_case(case),
            attribution,
            {k: list(v) for k, v in case.segments.items()},
            case.compare,
            load_other,
        )
    graph_data = graph.pruned.to_json()
    graph_data["meta"].update(
        {
            "edges_before_pruning": graph.full.n_edges,
            "edges_after_pruning": graph.pruned.n_edges,
            "prune": case.graph.prune,
            "p": case.graph.p,
        }
    )
    return CaseResult(
        case_id=case.id,
        title=case.title,
        description=case.description,
        model=case.model,
        prompt=case.prompt,
        chat=case.chat,
        prefix=case.prefix,
        tags=dict(case.tags),
        segments={name: list(span) for name, span in case.segments.items()},
        case_file=Path(case.path).name,
        case_toml=case_text,
        attribution=attribution,
        graph=graph_data,
        metrics=graph.metrics,
        neurons=graph.neurons,
        faithfulness=faith,
        comparisons=comparisons,
        environment={
            **environment(loaded, command),
            **({"comparison_errors": comparison_errors} if comparison_errors else {}),
        },
    )
