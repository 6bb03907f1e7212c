"""The case -> attribution step, shared by `attribute`, `run` and `build`."""

from __future__ import annotations

from dataclasses import dataclass

from .attribution import Attribution, attribute
from .cases import Case
from .errors import TokenError
from .inputs import PreparedInput, PromptSpec, ResolvedToken, prepare_input, resolve_token
from .models import LoadedModel
from .objectives import Objective


@dataclass(frozen=True)
class Question:
    """Everything that defines one explained prediction, independent of where it came from
    (a case file or CLI flags)."""

    prompt: PromptSpec
    target: str | int | None
    contrast: str | int | None = None
    mode: str = "logit_diff"
    strategy: str | None = "by_ref_token"
    k: int = 10

    @classmethod
    def from_case(cls, case: Case) -> Question:
        return cls(
            prompt=PromptSpec(case.prompt, case.chat, case.prefix, case.prefix_ids, case.bos),
            target=case.target,
            contrast=case.contrast,
            mode=case.mode,
            strategy=case.strategy,
            k=case.k,
        )


@dataclass(frozen=True)
class PreparedQuestion:
    inputs: PreparedInput
    objective: Objective
    target: ResolvedToken | None
    contrast: ResolvedToken | None


def prepare_question(loaded: LoadedModel, question: Question) -> PreparedQuestion:
    tokenizer = loaded.tokenizer
    inputs = prepare_input(tokenizer, question.prompt)
    target = (
        resolve_token(tokenizer, question.target, "target") if question.target is not None else None
    )
    contrast = (
        resolve_token(tokenizer, question.contrast, "contrast")
        if question.contrast is not None
        else None
    )
    if target is None:
        if question.mode != "max_logit":
            raise TokenError("a target token is required for logit_diff")
        target_id = _greedy_next(loaded, inputs)
        target = resolve_token(tokenizer, target_id, "target")
    if question.mode == "logit_diff" and question.strategy == "by_ref_token":
        if contrast is None:
            raise TokenError("logit_diff with strategy by_ref_token needs a contrast token")
        if contrast.id == target.id:
            raise TokenError(
                f"target {question.target!r} and contrast {question.contrast!r} are the same "
                f"token (id {target.id}, {target.token!r}): the logit difference would be 0. "
                "Give a contrast that starts with another token"
            )
    objective = Objective(
        mode=question.mode,
        target_id=target.id,
        strategy=question.strategy if question.mode == "logit_diff" else None,
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
