"""The same case on other models or checkpoints: logit differences and segment breakdowns.

Token ids differ between tokenizers, so a compared model gets the case's *text* (prompt,
prefix, target, contrast strings) and its segments are carried over by character offsets: a
token of the other model belongs to a segment when it overlaps the segment's characters."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from .attribution import Attribution
from .errors import ModelLoadError, ReportgenError
from .models import LoadedModel
from .pipeline import explain
from .question import Question


def char_spans(token_texts: list[str]) -> list[tuple[int, int]]:
    """Character span of every token in the concatenation of the decoded tokens."""
    spans, position = [], 0
    for text in token_texts:
        spans.append((position, position + len(text)))
        position += len(text)
    return spans


def carry_segments(
    segments: dict[str, list[int]], base: Attribution, other: Attribution
) -> dict[str, tuple[int, int]]:
    """Token spans of ``other`` covering the characters of each base-model segment."""
    base_spans, other_spans = char_spans(base.token_texts), char_spans(other.token_texts)
    # both sequences end with the same prefix; align them at the end (chat templates differ at the start)
    shift = other_spans[-1][1] - base_spans[-1][1] if base_spans and other_spans else 0
    carried = {}
    for name, (start, end) in segments.items():
        lo, hi = base_spans[start][0] + shift, base_spans[end - 1][1] + shift
        tokens = [i for i, (a, b) in enumerate(other_spans) if a < hi and b > lo]
        if tokens:
            carried[name] = (tokens[0], tokens[-1] + 1)
    return carried


def compare_models(
    question: Question,
    base: Attribution,
    segments: dict[str, list[int]],
    models: tuple[str, ...],
    loader: Callable[[str], LoadedModel],
) -> tuple[list[dict[str, Any]], list[str]]:
    """One comparison row per model that could run the case, and the reasons for those that
    could not (a token missing from its vocabulary, ...). A model that cannot be loaded raises
    :class:`ModelLoadError`: the case fails."""
    rows, errors = [], []
    # the base model's exact prefix ids mean nothing to another tokenizer: use the prefix text
    portable = dataclasses.replace(
        question, prompt=dataclasses.replace(question.prompt, prefix_ids=None)
    )
    for spec in models:
        try:
            loaded = loader(spec)
        except ModelLoadError as exc:
            # a compared model that is not there fails the case (a comparison left out
            # silently would read as "0 failed"); one that cannot run the case is listed below
            raise ModelLoadError(f"{spec}: {exc}") from None
        try:
            other = explain(loaded, portable)
        except (ReportgenError, ValueError, OSError) as exc:
            errors.append(f"{spec}: {exc}")
            continue
        carried = carry_segments(segments, base, other)
        rows.append(
            {
                "model": spec,
                "explained": other.explained,
                "target_logit": other.target.logit,
                "target_token": other.target.token,
                "contrast_logit": other.contrast.logit if other.contrast else None,
                "contrast_token": other.contrast.token if other.contrast else None,
                "greedy_token": other.top_k[0].token,
                "conservation": other.conservation,
                "segments": {
                    name: float(sum(other.relevance[a:b])) for name, (a, b) in carried.items()
                },
                "tokens": other.tokens,
                "relevance": other.relevance,
            }
        )
    return rows, errors
