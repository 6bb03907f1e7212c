"""The question -> attribution step, shared by `attribute`, `run`, `build` and `explore`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .attribution import Attribution, attribute
from .errors import CaseError, TokenError
from .inputs import PreparedInput, ResolvedToken, prepare_input, resolve_token
from .models import LoadedModel
from .objectives import Objective
from .question import Question


@dataclass(frozen=True)
class PreparedQuestion:
    inputs: PreparedInput
    objective: Objective
    target: ResolvedToken | None
    contrast: ResolvedToken | None


#: config fields that hold a model's context length, by the architectures' naming
CONTEXT_FIELDS = ("max_position_embeddings", "n_positions", "n_ctx", "max_sequence_length")


def context_length(model: Any) -> tuple[int, str] | None:
    """The most tokens ``model`` takes (and the config field that says so), or None."""
    config = getattr(model, "config", None)
    if config is None:
        return None
    configs = [config]
    text = getattr(config, "get_text_config", None)
    if callable(text):
        configs.insert(0, text())
    for cfg in configs:
        for name in CONTEXT_FIELDS:
            value = getattr(cfg, name, None)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value, name
    return None


def check_context(loaded: LoadedModel, n_tokens: int, where: str | None = None) -> None:
    """Refuse an input longer than the model's context, before anything runs on it (longer
    inputs give meaningless positions and run for hours). ``where``: the case file."""
    limit = context_length(loaded.model)
    if limit is None or n_tokens <= limit[0]:
        return
    problem = (
        f"the input is {n_tokens:,} tokens, more than the {limit[0]:,} of {loaded.name}'s "
        f"context ({limit[1]} in its config); shorten the prompt"
    )
    if where is not None:
        raise CaseError(where, "prompt", problem)
    raise TokenError(problem)


def check_fits(loaded: LoadedModel, n_tokens: int, where: str | None = None) -> float:
    """The context check and the memory estimate of a case of ``n_tokens`` (one line each,
    before the work starts); returns the estimate in GB."""
    from .progress import check_memory

    check_context(loaded, n_tokens, where)
    config = getattr(loaded.model, "config", None)
    return check_memory(
        n_tokens,
        layers=int(getattr(config, "num_hidden_layers", 30) or 30),
        hidden=int(getattr(config, "hidden_size", 576) or 576),
        where=where or "the input",
        weights_gb=weights_gb(loaded.model),
    )


def weights_gb(model: Any) -> float | None:
    """The model's parameter bytes in GB (None for something without parameters): the memory
    check counts the loaded model's own weights, not SmolLM2's."""
    parameters = getattr(model, "parameters", None)
    if parameters is None:
        return None
    return sum(p.numel() * p.element_size() for p in parameters()) / 1024**3


def prepare_question(
    loaded: LoadedModel, question: Question, where: str | None = None
) -> PreparedQuestion:
    """Token ids and objective of ``question``; ``where`` (the case file) names the file in
    errors. An input longer than the model's context is refused here, on every command."""
    tokenizer = loaded.tokenizer

    def named(field: str, make: Any) -> Any:
        """``make()``; a token error becomes one naming the case file and ``field``."""
        try:
            return make()
        except TokenError as exc:
            if where is None:
                raise
            raise CaseError(where, field, str(exc)) from None

    prompt_field = "prefix_ids" if question.prompt.prefix_ids is not None else "prompt"
    inputs = named(prompt_field, lambda: prepare_input(tokenizer, question.prompt))
    check_context(loaded, len(inputs.token_ids), where)
    target = (
        named("target", lambda: resolve_token(tokenizer, question.target, "target"))
        if question.target is not None
        else None
    )
    contrast = (
        named("contrast", lambda: resolve_token(tokenizer, question.contrast, "contrast"))
        if question.contrast is not None
        else None
    )
    if target is None:  # a Question leaves the target out for max_logit only
        target = resolve_token(tokenizer, _greedy_next(loaded, inputs), "target")
    if question.strategy == "by_ref_token" and contrast is not None:  # (a Question has one)
        if contrast.id == target.id:
            same = TokenError(
                f"target {question.target!r} and contrast {question.contrast!r} are the same "
                f"token (id {target.id}, {target.token!r}): the logit difference would be 0. "
                "Give a contrast that starts with another token"
            )
            if where is not None:
                raise CaseError(where, "contrast", str(same))
            raise same
    objective = Objective(
        mode=question.mode,
        target_id=target.id,
        strategy=question.strategy,
        contrast_id=contrast.id if contrast is not None else None,
        k=question.k,
    )
    return PreparedQuestion(inputs, objective, target, contrast)


def _greedy_next(loaded: LoadedModel, inputs: PreparedInput) -> int:
    import torch

    ids = torch.tensor([list(inputs.token_ids)], device=loaded.model.device)
    with torch.no_grad():
        return int(loaded.model(input_ids=ids).logits[0, -1].argmax())


def attribute_prepared(
    loaded: LoadedModel, prepared: PreparedQuestion, top_k: int = 10
) -> Attribution:
    """AttnLRP of a prepared question (callers that also need its inputs or objective)."""
    return attribute(
        loaded,
        prepared.inputs,
        prepared.objective,
        target=prepared.target,
        contrast=prepared.contrast,
        top_k=top_k,
    )


def explain(loaded: LoadedModel, question: Question, top_k: int = 10) -> Attribution:
    return attribute_prepared(loaded, prepare_question(loaded, question), top_k)
