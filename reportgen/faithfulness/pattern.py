"""The failure pattern of a case that marks its relevant spans: URT (the relevant tokens are
under-weighted), OIT (irrelevant tokens over-weighted), both, or none (docs/method.md)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

TOP_POSITIVE = 5  # how many top positive tokens the OIT rule looks at


def failure_pattern(
    relevance: Sequence[float],
    special: Sequence[bool],
    relevant_spans: Sequence[tuple[int, int]],
) -> dict[str, Any] | None:
    """A hint at why the model fails, when the case marks the spans that should drive the right
    answer (``relevant``, half-open token ranges [start, end)). ``relevance`` is towards the
    (wrong) target, so positive relevance pushes the model into the failure.

    Rule (special tokens ignored throughout; m non-special tokens, r of them inside the spans):

    * URT (under-weighted relevant tokens) when the relevant tokens hold less of the total |R|
      than a uniform share would give them: sum_inside |R| / sum_all |R| < r / m. The model
      barely uses the tokens that should decide the answer.
    * OIT (over-weighted irrelevant tokens) when the tokens outside the spans push the target
      harder than the relevant tokens matter at all: sum of positive R outside the spans >
      sum_inside |R|. Irrelevant context outweighs what should decide the answer.
    * "URT+OIT" when both hold, "none" when neither (the relevant tokens are read and weigh as
      much as the rest: a misreading rather than a weighting problem).

    Returns None when no span is given or no non-special token falls inside the spans."""
    n = len(relevance)
    if len(special) != n:
        raise ValueError("relevance and special must have the same length")
    inside = {
        i
        for start, end in relevant_spans
        for i in range(max(start, 0), min(end, n))
        if not special[i]
    }
    tokens = [i for i in range(n) if not special[i]]
    if not inside or not tokens:
        return None
    total_abs = sum(abs(float(relevance[i])) for i in tokens)
    relevant_abs = sum(abs(float(relevance[i])) for i in inside)
    relevant_sum = float(sum(float(relevance[i]) for i in inside))
    by_abs = sorted(tokens, key=lambda i: -abs(float(relevance[i])))
    rank = {i: r for r, i in enumerate(by_abs)}
    span = max(len(tokens) - 1, 1)
    mean_rank = sum(rank[i] for i in inside) / len(inside) / span
    positive = [i for i in sorted(tokens, key=lambda i: -float(relevance[i])) if relevance[i] > 0]
    top = positive[:TOP_POSITIVE]
    top_outside = sum(i not in inside for i in top)
    token_share = len(inside) / len(tokens)
    relevant_share = relevant_abs / total_abs if total_abs else 0.0
    outside = [i for i in tokens if i not in inside]
    outside_push = sum(max(float(relevance[i]), 0.0) for i in outside)
    urt = relevant_share < token_share
    oit = outside_push > relevant_abs
    top_mass = sum(float(relevance[i]) for i in top)
    outside_mass = sum(float(relevance[i]) for i in top if i not in inside)
    pattern = "URT+OIT" if urt and oit else "URT" if urt else "OIT" if oit else "none"
    return {
        "pattern": pattern,
        "relevant_share": relevant_share,
        "token_share": token_share,
        "relevant_sum": relevant_sum,
        "top_outside": top_outside,
        "top_outside_share": outside_mass / top_mass if top else 0.0,
        "mean_rank_fraction": mean_rank,
        "relevant_abs": relevant_abs,
        "outside_push": outside_push,
    }
