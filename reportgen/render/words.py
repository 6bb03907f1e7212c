"""The dossier's words: sentences written from the computed numbers, on the render side.

The computing side (``faithfulness``) returns numbers and codes only, so rewording a sentence
re-renders a page without invalidating any cached result."""

from __future__ import annotations

import json
from typing import Any

from ..results import CaseResult, FailurePattern, Faithfulness

#: how the dossier names each token ordering of the flip test
ORDERING_NAMES = {
    "attnlrp": "AttnLRP",
    "grad_x_input": "gradient × input",
    "gradient": "gradient norm",
    "random": "random",
}


def flip_sentence(faith: Faithfulness, tokens_text: list[str]) -> str:
    """One sentence for the dossier: how few tokens flip the preference, and what that means
    next to the baselines (a random order is the yardstick)."""
    budget = faith.budget
    flips = faith.flip_k
    to = "to the contrast" if faith.contrastive else "(f ≤ 0)"
    if faith.baseline_f <= 0:
        return "the model does not prefer the target here (f ≤ 0), so there is nothing to flip."
    random_k = flips.get("random")
    seeds = faith.random_flip_k_seeds or []
    missed = sum(k is None for k in seeds)
    bounds = faith.flip_bounds
    if faith.cost is not None and faith.cost.random_seeds_used == 0:
        random_part = "the compute budget left no room for the random baseline"
    elif "random" in bounds:
        random_part = "the random orders were not scanned to their flips (compute budget)"
    elif random_k is None:
        random_part = f"no random order flips it within {budget} masked tokens"
    else:
        random_part = f"random order needs {random_k:.1f} on average"
        if missed:
            verb = "seed never flips" if missed == 1 else "seeds never flip"
            random_part += (
                f" ({missed} of {len(seeds)} {verb} within {budget}, counted as {budget + 1})"
            )
    others = [
        f"{ORDERING_NAMES[name]} needs {flips[name]}"
        if flips.get(name) is not None
        else f"{ORDERING_NAMES[name]} needs {bound_words(bounds[name])}"
        for name in ("grad_x_input", "gradient")
        if flips.get(name) is not None or name in bounds
    ]
    k = flips.get("attnlrp")
    if k is None and "attnlrp" in bounds:
        return (
            f"the AttnLRP order needs {bound_words(bounds['attnlrp'])} masked tokens to flip the "
            f"preference {to} (this model's compute budget ended the scan); "
            + "; ".join([*others, random_part])
            + "."
        )
    if k is not None:
        shown = [repr(tokens_text[i]) for i in faith.order["attnlrp"][:k][:5]]
        listed = ", ".join(shown) + (", …" if k > 5 else "")
        noun = "token" if k == 1 else "tokens"
        baselines = "; ".join([*others, random_part])
        return (
            f"masking {k} {noun} — {listed} — flips the preference {to} (AttnLRP order); "
            f"{baselines}."
        )
    if not others and random_k is None:
        return f"no ordering flips the preference within {budget} masked tokens."
    return (
        f"the AttnLRP order does not flip the preference within {budget} masked tokens; "
        + "; ".join([*others, random_part])
        + "."
    )


def bound_words(bound: list[int | None]) -> str:
    """A flip-k the budget left unscanned: [smallest it can be, first flipping k seen or None]."""
    low, high = bound
    return f"between {low} and {high}" if high is not None else f"at least {low}"


def budget_words(faith: Faithfulness) -> str:
    """Whether the flip test ran whole or within its compute budget, and what the budget left
    out."""
    cost = faith.cost
    if cost is None:
        return (
            f"Exact: every k of every ordering was evaluated ({faith.forwarded_tokens:,} "
            "token-forwards, within this model's compute budget)."
        )
    seeds, used = faith.random_seeds, cost.random_seeds_used
    points = ", ".join(str(k) for k in cost.random_points or [])
    whole = (
        f"would have cost {cost.exact_cost:,} token-forwards"
        if cost.exact_cost is not None
        else "did not fit"
    )
    words = (
        f"Sampled: the exact flip test of this input {whole}, more than this model's compute "
        f"budget of {cost.cost_budget:,}; it spent {cost.cost_spent:,}, and the random baseline "
        f"is the mean of {used} of {seeds} seeds at k = {points}"
    )
    if cost.flip_bounds:
        words += "; where the budget ended a scan, the table gives the range the flip lies in"
    return words + "."


def failure_reason(pattern: FailurePattern) -> str:
    """Why ``faithfulness.failure_pattern`` gave its pattern (URT, OIT, both or none), with the
    numbers that decided it."""
    urt = pattern.pattern in ("URT", "URT+OIT")
    oit = pattern.pattern in ("OIT", "URT+OIT")
    relevant_share, token_share = pattern.relevant_share, pattern.token_share
    outside_push, relevant_abs = pattern.outside_push, pattern.relevant_abs
    reasons = []
    if urt:
        reasons.append(
            f"the relevant tokens hold {share(relevant_share)} of |R| though they are "
            f"{share(token_share)} of the tokens"
        )
    if oit:
        reasons.append(
            f"tokens outside the spans push the target with {outside_push:.3g} in all, more than "
            f"the {relevant_abs:.3g} |R| of the relevant tokens"
        )
    if not reasons:
        reasons.append(
            f"the relevant tokens hold {share(relevant_share)} of |R| ({share(token_share)} of the "
            "tokens) and outweigh the push from elsewhere: they are read, but misread"
        )
    return "; ".join(reasons)


def pattern_with_reason(pattern: FailurePattern) -> dict[str, Any]:
    """The failure pattern's JSON form with the sentence of why (``reason``)."""
    return {**pattern.to_json(), "reason": failure_reason(pattern)}


def faithfulness_with_words(faith: Faithfulness, token_texts: list[str]) -> dict[str, Any]:
    """The faithfulness numbers in their JSON form with the dossier's sentences added:
    ``sentence`` and ``failure_pattern.reason``."""
    data = faith.to_json()
    data["sentence"] = flip_sentence(faith, token_texts)
    if faith.failure_pattern is not None:
        data["failure_pattern"] = pattern_with_reason(faith.failure_pattern)
    return data


def data_json(result: CaseResult) -> str:
    """data.json: every number of the page and the sentences written from them."""
    data = result.to_json()
    if result.faithfulness is not None:
        data["faithfulness"] = faithfulness_with_words(
            result.faithfulness, result.attribution.token_texts
        )
    return json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False)


def share(value: float) -> str:
    """A share as a percentage that stays informative when small: 20 relevant tokens of a
    10,000-token input are 0.2 %, not "0%"."""
    pct = 100 * value
    if pct == 0 or abs(pct) >= 10:
        return f"{pct:.0f}%"
    return f"{pct:.1f}%" if abs(pct) >= 1 else f"{pct:.2g}%"
