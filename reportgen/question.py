"""One question: the prediction to explain (prompt, chat, prefix, BOS, target, contrast, mode,
strategy, k), with its one validator and its one set of defaults.

Every front end builds this value -- a case file (:mod:`reportgen.cases`), the flags of
`attribute`/`graph`, the explorer's form, `collect` -- and only says *where* a problem is: a
:class:`QuestionError` names the field, the case file adds its path, the CLI writes ``--field``.
So the same question asked from any of them is the same value and is explained the same way.
The module imports nothing heavy (no torch): it sits at the bottom of the package."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from .errors import TokenError

MODES = ("max_logit", "logit_diff")
STRATEGIES = ("by_ref_token", "by_topk_avg", "demean")
DEFAULT_STRATEGY = "by_ref_token"
DEFAULT_K = 10
_TOKEN_ID = re.compile(r"[+-]?[0-9]+")


class QuestionError(TokenError):
    """A question that cannot be asked: ``field`` and ``problem`` (a phrase that follows the
    field's name: "is required for ...", "must be ..."). A :class:`TokenError`, since most of
    them are about the target and contrast tokens, so a caller catching those sees these too."""

    def __init__(self, field: str, problem: str) -> None:
        self.field, self.problem = field, problem
        super().__init__(f"{field}: {problem}")

    def __reduce__(self) -> tuple[type, tuple[str, str]]:  # from a worker process, intact
        return QuestionError, (self.field, self.problem)


def _kind_names(kinds: tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", bool: "true or false", list: "a list"}
    return " or ".join(names.get(kind, kind.__name__) for kind in kinds)


def _typed(field: str, value: Any, *kinds: type) -> Any:
    """``value`` when it is one of ``kinds`` (a bool is no integer here), else a QuestionError."""
    if isinstance(value, bool) and bool not in kinds:
        raise QuestionError(field, f"must be {_kind_names(kinds)}, got a boolean")
    if not isinstance(value, kinds):
        raise QuestionError(
            field, f"must be {_kind_names(kinds)}, got {type(value).__name__} {value!r}"
        )
    return value


def token_value(value: Any, field: str) -> str | int | None:
    """The one contract for a target or contrast, wherever it is written: an integer, or the
    text ``id:N``, is the token id N (>= 0); any other non-empty text is a token text (its
    first sub-token is used); None is "not given"."""
    if value is None:
        return None
    _typed(field, value, str, int)
    if isinstance(value, str) and value.startswith("id:"):
        number = value[3:].strip()
        if not _TOKEN_ID.fullmatch(number):
            raise QuestionError(
                field, f"is not a token id ({value!r}): after 'id:' give a token id such as id:718"
            )
        value = int(number)
    if isinstance(value, int) and value < 0:
        raise QuestionError(field, f"is a negative token id ({value}): token ids are >= 0")
    if value == "":
        raise QuestionError(field, "must not be empty")
    return value


def _no_lone_surrogate(field: str, text: str) -> None:
    """JSON (the explorer's form) and command lines can carry half a UTF-16 pair, which no
    tokenizer or file can hold."""
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in text):
        raise QuestionError(field, "holds a lone surrogate (half of a UTF-16 pair)")


@dataclass(frozen=True)
class PromptSpec:
    """What the model reads: the prompt, the chat template or not, the response so far
    (``prefix``; ``prefix_ids`` its exact generated ids, which take precedence) and BOS
    (None: the tokenizer's own behaviour)."""

    prompt: str
    chat: bool = False
    prefix: str = ""
    prefix_ids: tuple[int, ...] | None = None
    bos: bool | None = None

    def __post_init__(self) -> None:
        if not _typed("prompt", self.prompt, str).strip():
            raise QuestionError("prompt", "must not be empty")
        _typed("chat", self.chat, bool)
        _typed("prefix", self.prefix, str)
        if self.bos is not None:
            _typed("bos", self.bos, bool)
        _no_lone_surrogate("prompt", self.prompt)
        _no_lone_surrogate("prefix", self.prefix)
        if self.prefix_ids is not None:
            ids = self.prefix_ids
            if not isinstance(ids, list | tuple) or not all(
                isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in ids
            ):
                raise QuestionError("prefix_ids", "must be a list of non-negative token ids")
            object.__setattr__(self, "prefix_ids", tuple(ids))


@dataclass(frozen=True)
class Question:
    """Everything that defines one explained prediction, whoever asks it. Built from what was
    given (a field left out takes the default below), it holds the resolved values: two
    questions that are explained the same way compare equal."""

    prompt: PromptSpec
    target: str | int | None = None  # None: the greedy next token (max_logit only)
    contrast: str | int | None = None
    mode: str | None = None  # None: by :meth:`resolve_objective` (a built question holds a str)
    strategy: str | None = None
    k: int = DEFAULT_K

    def __post_init__(self) -> None:
        _typed("prompt", self.prompt, PromptSpec)
        target = token_value(self.target, "target")
        contrast = token_value(self.contrast, "contrast")
        mode, strategy = self.resolve_objective(self.mode, self.strategy, contrast)
        k = _typed("k", self.k, int)
        if k < 1:
            raise QuestionError("k", f"must be >= 1, got {k}")
        if target is None and mode == "logit_diff":
            raise QuestionError("target", "is required for mode logit_diff")
        if strategy == "by_ref_token" and contrast is None:
            raise QuestionError(
                "contrast", "is required for mode logit_diff with strategy by_ref_token"
            )
        if contrast is not None and type(target) is type(contrast) and target == contrast:
            raise QuestionError(
                "contrast",
                f"is the same as field 'target': target {target!r} and contrast {contrast!r} "
                "are the same token, so the logit difference would be 0. The contrast is the "
                "token the model should have produced",
            )
        resolved = {"target": target, "contrast": contrast, "mode": mode, "strategy": strategy}
        for name, value in resolved.items():
            object.__setattr__(self, name, value)

    @staticmethod
    def resolve_objective(
        mode: str | None, strategy: str | None, contrast: str | int | None
    ) -> tuple[str, str | None]:
        """The one rule for what is explained, ``(mode, strategy)``: a mode left out is
        ``logit_diff`` when a contrast or a strategy is given, else ``max_logit`` (the target's
        own logit); ``logit_diff`` without a strategy is ``by_ref_token`` (target against
        contrast). A strategy belongs to ``logit_diff`` only."""
        if mode is None:
            mode = "logit_diff" if contrast is not None or strategy is not None else "max_logit"
        if _typed("mode", mode, str) not in MODES:
            raise QuestionError("mode", f"must be one of {', '.join(MODES)}, got {mode!r}")
        if mode != "logit_diff":
            if strategy is not None:
                raise QuestionError("strategy", "only applies to mode logit_diff")
            return mode, None
        strategy = DEFAULT_STRATEGY if strategy is None else strategy
        if _typed("strategy", strategy, str) not in STRATEGIES:
            raise QuestionError(
                "strategy", f"must be one of {', '.join(STRATEGIES)}, got {strategy!r}"
            )
        return mode, strategy

    def stated(self) -> dict[str, Any]:
        """The objective's fields a case file states: those the defaults would not give back
        (what a person writes; :func:`reportgen.cases.case_toml` writes these)."""
        out: dict[str, Any] = {}
        if self.mode == "logit_diff" and self.strategy != DEFAULT_STRATEGY:
            out["strategy"] = self.strategy
        if self.resolve_objective(None, out.get("strategy"), self.contrast)[0] != self.mode:
            out = {"mode": self.mode, **out}
        if self.k != DEFAULT_K:
            out["k"] = self.k
        return out


#: a case file's (and the explorer's form's) fields of the question: the prompt's, the objective's
PROMPT_FIELDS = tuple(f.name for f in dataclasses.fields(PromptSpec))
OBJECTIVE_FIELDS = tuple(f.name for f in dataclasses.fields(Question) if f.name != "prompt")
