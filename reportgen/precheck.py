"""What `validate` can check of a case's tokens without loading a model's weights.

The build refuses a case whose target or contrast is not in the vocabulary, whose ``id:N`` is
outside it, whose target and contrast are one token, whose ``prefix_ids`` do not decode to its
prefix, whose input is longer than the model's context or whose spans run past the input. All
of that needs the tokenizer and the config only: where the model is on disk (a local folder, a
fetched embedded model) `validate` loads those two and runs the same code the build runs
(:func:`reportgen.pipeline.prepare_question`). Models not on disk (hub ids not cached, GGUF
files) are left to the build."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from .cases import Case
from .errors import CaseError, ReportgenError


def _model_folder(spec: str) -> Path | None:
    from .models import EMBEDDED_MODELS, embedded_path

    folder = embedded_path(spec) if spec in EMBEDDED_MODELS else Path(spec)
    return folder if (folder / "config.json").is_file() else None


def _light_model(spec: str) -> Any:
    """A stand-in for a loaded model with its tokenizer and config (no weights), or None."""
    folder = _model_folder(spec)
    if folder is None:
        return None
    try:
        from transformers import AutoConfig, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(folder)
        config = AutoConfig.from_pretrained(folder)
    except Exception:  # noqa: BLE001 -- the build reports a model it cannot load
        return None
    return SimpleNamespace(name=spec, tokenizer=tokenizer, model=SimpleNamespace(config=config))


def token_problems(cases: list[Case]) -> list[CaseError]:
    """One error per case the build would refuse for its tokens (see the module's text)."""
    from .pipeline import prepare_question

    models: dict[str, Any] = {}
    problems: list[CaseError] = []
    for case in cases:
        if case.model not in models:
            models[case.model] = _light_model(case.model)
        light = models[case.model]
        if light is None:
            continue
        try:
            prepared = prepare_question(light, case.question, where=case.path)
        except CaseError as exc:
            problems.append(exc)
            continue
        except ReportgenError as exc:
            problems.append(CaseError(case.path, None, str(exc)))
            continue
        n = len(prepared.inputs.token_ids)
        spans = [(f"segments.{name}", span) for name, span in case.segments.items()]
        spans += [(f"relevant[{i}]", span) for i, span in enumerate(case.relevant)]
        for field_name, (start, end) in spans:
            if end > n:
                problems.append(
                    CaseError(
                        case.path, field_name, f"span [{start}, {end}) exceeds the {n} input tokens"
                    )
                )
                break
    return problems
