"""What the explorer's page asks, as a :class:`~reportgen.question.Question`, and the case file
"Save as case" writes from it.

The request bodies are checked here (unknown fields, a missing or too long prompt), the response
prefix is tokenised to the exact ``prefix_ids`` a case file stores, and a saved case names its
tokens as a person would write them. Kept apart from the app (``explore.py``) so that the
questions and the saved cases can be used and tested without FastAPI."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from .cases import ID_PATTERN, Case, case_model_spec
from .errors import ReportgenError, TokenError
from .inputs import resolve_token
from .models import LoadedModel
from .question import OBJECTIVE_FIELDS, PROMPT_FIELDS, PromptSpec, Question

MAX_PROMPT_CHARS = 200_000


class ExploreError(ReportgenError):
    """A request the explorer cannot serve; the message is the one line the page shows."""


#: what the page's form holds: the question's fields but exact prefix ids (the explorer
#: tokenises the prefix itself); ``/api/save`` adds the case's presentation
FORM_FIELDS = ("prompt", "chat", "prefix", "bos", *OBJECTIVE_FIELDS)
SAVE_FIELDS = ("id", "title", "description")


def _form(data: Any) -> dict[str, Any]:
    """The form's fields of a request body that are given (JSON null: not given)."""
    if not isinstance(data, dict):
        raise ExploreError("the request body must be a JSON object")
    unknown = set(data) - {*FORM_FIELDS, *SAVE_FIELDS}
    if unknown:
        raise ExploreError(f"unknown field {sorted(unknown)[0]!r}")
    prompt = data.get("prompt")
    if prompt is None:
        raise ExploreError("prompt: type a prompt")
    if isinstance(prompt, str) and len(prompt) > MAX_PROMPT_CHARS:
        raise ExploreError(f"prompt: longer than {MAX_PROMPT_CHARS} characters")
    return {name: data[name] for name in FORM_FIELDS if data.get(name) is not None}


def prompt_from_json(data: Any) -> PromptSpec:
    """The prompt part of a request (all that a prediction needs)."""
    given = _form(data)
    return PromptSpec(**{name: given[name] for name in PROMPT_FIELDS if name in given})


def question_from_json(data: Any) -> Question:
    """The question a request asks, validated and with its defaults as from a case file or
    the command line (:class:`~reportgen.question.Question`)."""
    given = _form(data)
    objective = {name: given[name] for name in OBJECTIVE_FIELDS if name in given}
    return Question(prompt_from_json(data), **objective)


def prefix_ids_for(tokenizer: Any, prefix: str) -> tuple[int, ...] | None:
    """The exact ids of the response prefix (what a case file stores in ``prefix_ids``)."""
    if not prefix:
        return None
    ids = tuple(tokenizer.encode(prefix, add_special_tokens=False))
    if tokenizer.decode(list(ids)) != prefix:
        raise ExploreError(
            f"prefix: {prefix!r} does not survive tokenisation (it decodes to "
            f"{tokenizer.decode(list(ids))!r}); edit it"
        )
    return ids


def exact_prompt(loaded: LoadedModel, prompt: PromptSpec) -> PromptSpec:
    """``prompt`` with the exact ids of its response prefix."""
    return replace(prompt, prefix_ids=prefix_ids_for(loaded.tokenizer, prompt.prefix))


def case_token(tokenizer: Any, value: str | int, role: str) -> str | int:
    """As a hand-written case would say it: the token's text when that resolves back to the
    same id, else the id itself."""
    token = resolve_token(tokenizer, value, role)
    text = tokenizer.decode([token.id])
    try:
        same = text != "" and resolve_token(tokenizer, text, role).id == token.id
    except TokenError:
        same = False
    return text if same else token.id


def saved_case(
    loaded: LoadedModel,
    question: Question,
    *,
    model: str,
    case_id: str,
    title: str = "",
    description: str = "",
    case_dir: Path | None = None,
) -> Case:
    """The case of ``question`` as a person would write it (the text:
    :func:`~reportgen.cases.case_toml`): exact ``prefix_ids``, tokens as their text where that
    resolves back to the same id, the model path as read from ``case_dir`` (the case's folder;
    absolute without one)."""
    if not ID_PATTERN.fullmatch(case_id):
        raise ExploreError(f"id: must match [a-z0-9-]+ (it becomes the page URL), got {case_id!r}")
    if question.target is None:
        raise ExploreError("target: pick the token the model prefers")
    tokenizer = loaded.tokenizer
    contrast = question.contrast
    asked = replace(
        question,
        prompt=exact_prompt(loaded, question.prompt),
        target=case_token(tokenizer, question.target, "target"),
        contrast=case_token(tokenizer, contrast, "contrast") if contrast is not None else None,
    )
    return Case(
        path=str(Path(case_dir or ".") / f"{case_id}.toml"),
        id=case_id,
        title=title or case_id,
        description=description,
        model=case_model_spec(model, case_dir),
        question=asked,
    )
