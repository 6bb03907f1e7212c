"""What a reader sees first: the dossier's summary, the collected case's two outputs, and the
one-line explanation of every number on the page (the glossary and its tooltips).

Everything here is written from the result (numbers, the case file's text) on the render side;
nothing is added to data.json, so rewording a line re-renders a page and changes no number."""

from __future__ import annotations

import tomllib
from typing import Any

from ..results import METRIC_NAMES, CaseResult, LayerMetrics
from .tokens import visible_text

#: below this |f| the model is nearly indifferent (html.NEAR_TIE, kept equal by a test)
NEAR_TIE = 1.0

# --- the glossary -------------------------------------------------------------------------------

#: key -> (term as the page names it, one-line explanation). Every number the page shows points
#: at one entry: its tooltip is the line, its label links to the entry in the glossary section.
GLOSSARY: dict[str, tuple[str, str]] = {
    "f": (
        "f (explained value)",
        "The number being explained, in logits: for a contrast case logit(target) − "
        "logit(contrast), how strongly the model prefers its wrong token over the right one "
        "(above 0 it prefers the target); the objective under it says which.",
    ),
    "mode": (
        "mode (objective)",
        "How f is formed: logit_diff / by_ref_token is logit(target) − logit(contrast); "
        "max_logit is logit(target) alone; by_topk_avg and demean subtract the mean of the top-k "
        "or of all logits.",
    ),
    "logit": (
        "logit and p",
        "The model's raw score for a next token, and p its probability after the softmax over "
        "the whole vocabulary.",
    ),
    "relevance": (
        "relevance R",
        "A token's share in f under AttnLRP: red (R > 0) pushes toward the target, blue (R < 0) "
        "toward the contrast; hover a token for its exact R.",
    ),
    "sum": (
        "Σ R (sum of input relevance)",
        "The input tokens' relevance added up: the part of f the explanation attributes to the "
        "input.",
    ),
    "reaches": (
        "reaches the input (Σ R / f)",
        "Σ R as a share of f. AttnLRP is not exactly conservative (the softmax and the norms "
        "absorb or add some), so 20–90 % is usual; far outside 0–100 % when f is small next to "
        "relevance that flows both ways.",
    ),
    "flip_k": (
        "flip-k (tokens to flip)",
        "How many input tokens must be masked, most relevant first, until the model prefers the "
        "contrast (f ≤ 0); few tokens = the ordering found the tokens that decide. A random "
        "order is the yardstick.",
    ),
    "aopc": (
        "AOPC",
        "Area over the perturbation curve: the mean drop of f, in logits, over the first k "
        "masked tokens of an ordering; larger = it finds the tokens that carry f sooner.",
    ),
    "urt": (
        "URT",
        "Under-weighted relevant tokens: the tokens the case marks as relevant hold less |R| "
        "than their share of the input; the model does not read them.",
    ),
    "oit": (
        "OIT",
        "Over-weighted irrelevant tokens: the push toward the target from outside the relevant "
        "spans exceeds the relevant tokens' |R|; something else drives the answer.",
    ),
    "graph": (
        "attribution graph",
        "Nodes are the hidden states (token position × layer), sized by their relevance; an edge "
        "is the relevance one node passes to a later one. It shows through which tokens and "
        "layers f is carried from the input to the output.",
    ),
    "nodes": (
        "positions carrying relevance",
        "Token positions of the layer still in the pruned graph: a falling line means the "
        "decision narrows to a few tokens.",
    ),
    "hubs": (
        "positions holding 90 % of |R|",
        "The fewest token positions whose |relevance| makes up 90 % of the layer's: 1–3 means a "
        "handful of tokens decide at that depth.",
    ),
    "verticality": (
        "verticality",
        "Share of the relevance flowing into a layer that stays at the same token position (1 = "
        "each token builds on itself; lower = information moves between tokens by attention).",
    ),
    "lookback": (
        "mean look-back",
        "How many tokens back, on average, the edges into the layer reach (0 = the same "
        "position): where in the input the layer reads from.",
    ),
    "neuron": (
        "top hidden dimensions (h·g)",
        "For a strong node, the hidden-state dimensions with the largest hidden value × "
        "gradient, and the MLP neurons of its block with the most relevance.",
    ),
}

#: the graph metrics a dossier draws, in this order: (metric in data.json, glossary key). The
#: others (Gini, fan-in/out, sparsity, centre of mass, ...) stay in data.json's "metrics".
SHOWN_METRICS: tuple[tuple[str, str], ...] = (
    ("nodes", "nodes"),
    ("hubs_90", "hubs"),
    ("verticality", "verticality"),
    ("mean_lookback", "lookback"),
)


def glossary_entries(result: CaseResult) -> list[dict[str, str]]:
    """The glossary section: the entries of the numbers this result's page shows, in the
    order above (no URT/OIT without a failure pattern, no graph terms without a graph)."""
    faith = result.faithfulness
    skip = set()
    if faith is None:
        skip |= {"flip_k", "aopc"}
    if faith is None or faith.failure_pattern is None:
        skip |= {"urt", "oit"}
    if result.graph is None:
        skip.add("graph")
    if not shown_metrics(result):
        skip |= {key for _, key in SHOWN_METRICS}
    if not result.neurons:
        skip.add("neuron")
    return [
        {"key": k, "term": term, "text": text}
        for k, (term, text) in GLOSSARY.items()
        if k not in skip
    ]


def shown_metrics(result: CaseResult) -> list[dict[str, str]]:
    """The graph metrics the dossier draws that this result has, each with its explanation."""
    rows = result.metrics or []
    return [
        {"name": name, "key": key, "term": GLOSSARY[key][0], "text": GLOSSARY[key][1]}
        for name, key in SHOWN_METRICS
        if any(metric_value(row, name) is not None for row in rows)
    ]


def explain(key: str) -> str:
    """The one-line explanation of a glossary key (a tooltip)."""
    return GLOSSARY[key][1]


def metric_value(row: LayerMetrics, name: str) -> float | None:
    """A metric of one layer, by name, as a number: hubs_90 is a list of positions, drawn as its
    length; a name that is no metric is None."""
    value = getattr(row, name) if name in METRIC_NAMES else None
    if isinstance(value, list):
        return float(len(value))
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


# --- numbers in words -----------------------------------------------------------------------------


NB = "\u00a0"  # a no-break space: "p = 11.9 %" stays on one line


def _pct(value: float) -> str:
    return f"{100 * value:.1f}{NB}%"


def _q(text: str) -> str:
    """A token as the flip sentence quotes it: repr of its text, hidden characters visible."""
    return repr(visible_text(text)) if text.strip() == "" else repr(text)


def conservation_note(relevance_sum: float, explained: float) -> str:
    """What "reaches the input" means for this case, in one line."""
    if not explained:
        return "f is 0, so there is no share to give."
    share = relevance_sum / explained
    if abs(explained) < NEAR_TIE and not 0 <= share <= 1.5:
        return (
            f"f = {explained:+.3g} is a near-tie, so the ratio divides by a small number: "
            f"Σ R = {relevance_sum:+.3g}. Read the token colours as directions, not as shares "
            "of f."
        )
    if share < 0:
        return (
            f"Σ R = {relevance_sum:+.3g} has the other sign than f: in sum the input pushes "
            "toward the contrast, and the preference for the target is built inside the network. "
            "The colours still rank the tokens."
        )
    if share > 1.5:
        return (
            f"Σ R = {relevance_sum:+.3g} is larger than f: relevance is not exactly conserved, "
            "so read the colours as directions and ranks, not as shares of f."
        )
    return (
        f"{_pct(share)} of f reaches the input tokens; the rest is absorbed inside the network "
        "(AttnLRP is not exactly conservative)."
    )


# --- the collected case's two outputs ---------------------------------------------------------------


def case_source(result: CaseResult) -> dict[str, Any]:
    """The ``[source]`` table of the case file (``reportgen collect`` writes it); {} when the
    case has none or its text does not parse."""
    try:
        data = tomllib.loads(result.case_toml)
    except (tomllib.TOMLDecodeError, TypeError):
        return {}
    source = data.get("source")
    return source if isinstance(source, dict) else {}


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def split_at_swap(output: str, prefix: str, token: str, other: str, other_token: str) -> dict:
    """``output`` cut where the swapped token was generated: {"before", "token", "after",
    "in_text"}. The response prefix of the case comes first when it matches; otherwise the
    place where the two outputs part, moved back to where both tokens start. A token the decoded
    text does not hold (an end-of-turn token) is shown as a marker there (``in_text`` False).
    None when the place cannot be found (the output is shown unmarked)."""
    if prefix and output.startswith(prefix):
        rest = output[len(prefix) :]
        if token and rest.startswith(token):
            return {
                "before": prefix,
                "token": token,
                "after": rest[len(token) :],
                "in_text": True,
            }
        if token.strip() and token not in rest:
            return {"before": prefix, "token": token, "after": rest, "in_text": False}
    parted = _common_prefix(output, other)
    for i in range(parted, max(-1, parted - max(len(token), len(other_token)) - 1), -1):
        if token and output.startswith(token, i) and other.startswith(other_token, i):
            return {
                "before": output[:i],
                "token": token,
                "after": output[i + len(token) :],
                "in_text": True,
            }
    return None


def _shown(token: str) -> str:
    """A swapped token as marked in the output: whitespace made visible (a marked space would
    be an empty box)."""
    return visible_text(token) if token.strip() == "" else token


def collected_outputs(result: CaseResult) -> dict[str, Any] | None:
    """The target path (the model's own continuation, which fails) and the contrast path (the
    same with the one token swapped, which recovers), with the benchmark's verdict on each;
    None for a case without both outputs in its ``[source]``."""
    source = case_source(result)
    failing, recovering = source.get("failing_output"), source.get("recovering_output")
    if not isinstance(failing, str) or not isinstance(recovering, str):
        return None
    target = str(source.get("target_text", result.attribution.target.text))
    contrast_score = result.attribution.contrast
    contrast = str(
        source.get("contrast_text", contrast_score.text if contrast_score is not None else "")
    )
    paths = []
    for kind, output, token, other, other_token, verdict, fallback in (
        (
            "target",
            failing,
            target,
            recovering,
            contrast,
            source.get("verdict_target"),
            f"fails: {source.get('failing', '')}",
        ),
        (
            "contrast",
            recovering,
            contrast,
            failing,
            target,
            source.get("verdict_contrast"),
            f"recovers: {source.get('recovering', '')}",
        ),
    ):
        split = split_at_swap(output, result.prefix, token, other, other_token)
        paths.append(
            {
                "kind": kind,
                "token": _shown(token),
                "verdict": str(verdict) if verdict else fallback,
                "passed": kind == "contrast",
                "output": output,
                "split": None
                if split is None
                else {**split, "shown": _shown(split["token"]), "quoted": _q(split["token"])},
            }
        )
    return {
        "benchmark": str(source.get("benchmark", result.tags.get("benchmark", ""))),
        "item": str(source.get("item", "")),
        "position": source.get("position"),
        "target": paths[0],
        "contrast": paths[1],
    }


# --- the summary at the top ----------------------------------------------------------------------


_OPEN, _CLOSE = "\x02", "\x03"  # around a quoted token inside a summary sentence


def _t(text: str) -> str:
    """A quoted token in a summary sentence, kept in one piece on the page (see parts)."""
    return _OPEN + _q(text) + _CLOSE


def parts(sentence: str) -> list[dict[str, Any]]:
    """A summary sentence as [{"text", "tok"}]: the quoted tokens apart, so the page keeps each
    on one line (a token ' Blue' broken after its quote mark reads as two)."""
    out = []
    for i, chunk in enumerate(sentence.replace(_CLOSE, _OPEN).split(_OPEN)):
        if chunk:
            out.append({"text": chunk, "tok": i % 2 == 1})
    return out


def plain(sentence: str) -> str:
    return sentence.replace(_OPEN, "").replace(_CLOSE, "")


def capitalised(sentence: str) -> str:
    return sentence[:1].upper() + sentence[1:] if sentence else sentence


def what_went_wrong(result: CaseResult) -> str:
    """One sentence: which token the model prefers over which, by how much."""
    att = result.attribution
    source = case_source(result)
    target, contrast = att.target, att.contrast
    if source.get("failing_output") and contrast is not None:
        where = (
            f"At output token {source['position']}"
            if isinstance(source.get("position"), int)
            else "At one point of its answer"
        )
        failing = str(source.get("failing") or "the benchmark's check")
        return (
            f"{where} the model writes {_t(target.text)} where {_t(contrast.text)} would recover "
            f"(f{NB}={NB}{att.explained:+.3g}): with {_t(target.text)} its answer fails ({failing}), "
            f"with {_t(contrast.text)} it passes."
        )
    if contrast is None:
        return (
            f"The model predicts {_t(target.text)} (p{NB}={NB}{_pct(target.prob)}); "
            f"f = {att.objective} = {att.explained:+.3g}."
        )
    if att.explained <= 0:
        return (
            f"The model does not prefer {_t(target.text)} to {_t(contrast.text)} here "
            f"(f{NB}={NB}{att.explained:+.3g}): there is no failure to explain."
        )
    tie = " — a near-tie" if abs(att.explained) < NEAR_TIE else ""
    return (
        f"The model prefers {_t(target.text)} to {_t(contrast.text)} by f{NB}={NB}"
        f"{att.explained:+.3g} logits (p{NB}={NB}{_pct(target.prob)} vs {_pct(contrast.prob)}){tie}."
    )


def summary(result: CaseResult, flip_sentence: str, strongest: list[dict[str, Any]]) -> dict:
    """The dossier's first lines: what went wrong, the flip sentence as the strongest evidence,
    and the strongest input tokens (the caller's rows, each linked to its heatmap cell)."""
    what = what_went_wrong(result)
    return {
        "what": plain(what),
        "what_parts": parts(what),
        "evidence": capitalised(flip_sentence),
        "strongest": strongest,
    }
