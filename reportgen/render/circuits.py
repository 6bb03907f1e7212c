"""The dossier's "Testing the graph" section: the interventions' table and sentences, and the two
continuations side by side, as plain data for the template (numbers from
``reportgen.interventions``, words written here)."""

from __future__ import annotations

from typing import Any

from ..results import CaseResult
from .tokens import visible_text

BASELINE_WORDS = {
    "mean": "its mean over the input's positions (mean ablation)",
    "zero": "zeros (zero ablation)",
}


def correlation_words(rho: float | None, count: int) -> str:
    """One sentence on Spearman's ρ between relevance and Δf over the ablated nodes."""
    if rho is None:
        return (
            f"With {count} node{'s' if count != 1 else ''} (or no spread in relevance or in Δf) "
            "there is no rank correlation to report."
        )
    if rho >= 0.7:
        reading = "the nodes the graph ranks highest are largely the ones that move f most"
    elif rho >= 0.3:
        reading = "the graph's ranking partly matches what moves f"
    elif rho > -0.3:
        reading = "the graph's ranking hardly predicts what moves f"
    else:
        reading = "the nodes the graph ranks highest tend to move f least, or the other way"
    return (
        f"Over the {count} strongest nodes, relevance and the ablation effect Δf have Spearman "
        f"rank correlation ρ = {rho:+.2f}: {reading}."
    )


def subgraph_words(interventions: Any, target: str, contrast: str | None) -> str:
    """Whether ablating the whole pruned subgraph flips the prediction, in words."""
    sub = interventions.subgraph
    if sub is None:
        return (
            "The pruned graph keeps no node besides the output, so there is no subgraph to ablate."
        )
    count = len(sub.nodes)
    nodes = f"{count} node{'s' if count != 1 else ''}"
    move = f"f goes from {interventions.f_clean:+.3g} to {sub.f_ablated:+.3g}"
    top = f" The most likely next token is then {sub.top_token!r}." if sub.top_token else ""
    if interventions.f_clean <= 0:
        return (
            f"The model does not prefer the target here (f ≤ 0), so there is no prediction to "
            f"flip; ablating the subgraph's {nodes} at once, {move}.{top}"
        )
    if sub.flips:
        now = (
            f"the model now prefers the contrast {contrast!r} over the target {target!r}"
            if contrast is not None
            else f"the model no longer prefers the target {target!r} (f ≤ 0)"
        )
        return (
            f"Ablating the subgraph's {nodes} at once flips the prediction: {move}, so {now}."
            f"{top} The graph carries the behaviour."
        )
    share = 1 - sub.f_ablated / interventions.f_clean
    change = f" ({share:.0%} of f removed)" if 0 < share <= 1 else " (f does not fall)"
    return (
        f"Ablating the subgraph's {nodes} at once does not flip the prediction: {move}"
        f"{change}, and the model still prefers the target {target!r}.{top}"
    )


def group_rows(interventions: Any) -> list[dict[str, Any]]:
    """The case's pinned nodes and each supernode ablated at once: label, size, f, Δf."""
    groups = []
    if interventions.pinned is not None:
        groups.append(("all pinned nodes", interventions.pinned))
    groups += [(f"supernode {label!r}", effect) for label, effect in interventions.supernodes]
    return [
        {
            "label": label,
            "nodes": len(effect.nodes),
            "f_ablated": effect.f_ablated,
            "delta": interventions.f_clean - effect.f_ablated,
            "flips": effect.flips,
        }
        for label, effect in groups
    ]


def _bar(value: float, scale: float) -> dict[str, Any]:
    width = 0.0 if scale == 0 else min(100.0, 100.0 * abs(value) / scale)
    return {"width": f"{width:.1f}%", "sign": "pos" if value >= 0 else "neg"}


def circuit_context(result: CaseResult) -> dict[str, Any] | None:
    """The section's data: None when the result has neither interventions nor continuations
    (a result computed before they existed)."""
    interventions, continuations = result.interventions, result.continuations
    if interventions is None and continuations is None:
        return None
    att = result.attribution
    target = att.target.text
    contrast = att.contrast.text if att.contrast is not None else None
    table = None
    if interventions is not None:
        deltas = interventions.deltas()
        rel_scale = max((abs(n.relevance) for n in interventions.nodes), default=0.0)
        delta_scale = max((abs(d) for d in deltas), default=0.0)
        rows = []
        for rank, (node, delta) in enumerate(zip(interventions.nodes, deltas, strict=True), 1):
            text = att.token_texts[node.position] if node.position < len(att.token_texts) else "?"
            rows.append(
                {
                    "rank": rank,
                    "layer": node.layer,
                    "position": node.position,
                    "token": visible_text(text),
                    "relevance": node.relevance,
                    "f_ablated": node.f_ablated,
                    "delta": delta,
                    "relevance_bar": _bar(node.relevance, rel_scale),
                    "delta_bar": _bar(delta, delta_scale),
                }
            )
        sub = interventions.subgraph
        table = {
            "baseline": BASELINE_WORDS.get(interventions.baseline, interventions.baseline),
            "f_clean": interventions.f_clean,
            "rows": rows,
            "correlation": correlation_words(interventions.rank_correlation, len(rows)),
            "subgraph": subgraph_words(interventions, target, contrast),
            "subgraph_f": sub.f_ablated if sub is not None else None,
            "subgraph_nodes": len(sub.nodes) if sub is not None else 0,
            "flips": sub.flips if sub is not None else None,
            "groups": group_rows(interventions),
        }
    paths = None
    if continuations is not None:
        paths = {
            "tokens": continuations.tokens,
            "from_case": continuations.source == "case file",
            "target_token": visible_text(target),
            "target": continuations.target,  # shown in <pre>: newlines kept
            "contrast_token": visible_text(contrast) if contrast is not None else None,
            "contrast": continuations.contrast,
        }
    return {"interventions": table, "continuations": paths}
