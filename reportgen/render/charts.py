"""Altair chart specs for the dossier and the index page (the dossier's registry: ``dossier``).

Charts are data: each function returns an ``alt.Chart`` built from plain numbers with
``alt.Data(values=...)`` (no pandas, no row limit surprises), and tests assert on
``chart.to_dict()``. The same specs are embedded in the web page (rendered by the bundled
vega-embed) and converted to vector PDF for the LaTeX figure set. Every parameter is named
explicitly: Altair's automatic names come from a global counter, which would make two renders
of the same case differ."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import altair as alt

from ..results import CaseResult
from .colors import NEGATIVE_HEX, POSITIVE_HEX, SPECIAL_HEX
from .tokens import TokenCell, segment_sums, token_cells

SIGN_DOMAIN = ["supports target", "supports contrast", "special token"]
SIGN_RANGE = [POSITIVE_HEX, NEGATIVE_HEX, SPECIAL_HEX]
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"
ORDERING_COLORS = {
    "attnlrp": POSITIVE_HEX,
    "grad_x_input": "#ef8a62",
    "gradient": "#67a9cf",
    "random": "#999999",
}


def _sign(value: float, special: bool = False) -> str:
    if special:
        return SIGN_DOMAIN[2]
    return SIGN_DOMAIN[0] if value >= 0 else SIGN_DOMAIN[1]


def _sign_color(title: str | None = None) -> alt.Color:
    return alt.Color(
        "sign:N",
        scale=alt.Scale(domain=SIGN_DOMAIN, range=SIGN_RANGE),
        legend=alt.Legend(title=title, orient="top") if title is not None else None,
    )


def _short(text: str, limit: int = 14) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def zero_rule() -> alt.Chart:
    """The dashed line at f = 0 of a chart whose y axis is f: above it the target wins."""
    return (
        alt.Chart(alt.Data(values=[{"f": 0}]))
        .mark_rule(color="#888", strokeDash=[4, 3])
        .encode(y="f:Q")
    )


def configure(chart: alt.TopLevelMixin) -> alt.TopLevelMixin:
    """Shared look: quiet axes, the page's font, no chart border."""
    return (
        chart.configure(font=FONT)
        .configure_view(stroke=None)
        .configure_axis(labelColor="#444", titleColor="#333", gridColor="#eee", domainColor="#bbb")
    )


def token_labels(tokens: Sequence[str]) -> list[str]:
    """Unique axis labels "3 ␣are": the position keeps repeated tokens apart."""
    from .tokens import visible_text

    return [f"{i} {_short(visible_text(t))}" for i, t in enumerate(tokens)]


# --- dossier charts ---------------------------------------------------------------------------


def _token_scale(cells: Sequence[TokenCell]) -> Any:
    """Y scale of the per-token bars, fitted to the non-special tokens like the heatmap.

    A special token's bar that goes beyond is cut at the axis (``clamp``) rather than letting
    it squash every other bar to nothing."""
    plain = [c.relevance for c in cells if not c.special]
    if not plain:
        return alt.Undefined
    lo, hi = min(0.0, *plain), max(0.0, *plain)
    if all(lo <= c.relevance <= hi for c in cells):
        return alt.Undefined
    pad = 0.05 * ((hi - lo) or 1.0)
    return alt.Scale(domain=[lo - pad, hi + pad], clamp=True)


PER_TOKEN_LIMIT = 80  # up to this many tokens the relevance chart draws one bar per token
TOP_TOKENS = 30  # a longer input shows its strongest tokens by |R| ...
OVERVIEW_BINS = 200  # ... and an overview with at most this many bins of positions
CHART_WIDTH = 800  # px of plot; with its axis labels a chart fits the page's 992 px column


def relevance_chart(
    result: CaseResult, cells: Sequence[TokenCell] | None = None
) -> alt.TopLevelMixin:
    """Input relevance per token as bars, red/blue by sign, special tokens grey.

    Up to :data:`PER_TOKEN_LIMIT` tokens, one bar per token. Longer inputs get two views
    instead, so no chart ever needs one mark per token of a 10k-token input (Vega's layout
    overflows the call stack somewhere past 2,000 labelled bars): the strongest tokens by |R|
    and an overview of the whole input in bins of positions. ``cells``: the result's token
    cells when the caller has them (``dossier``)."""
    if cells is None:
        cells = token_cells(result.attribution)
    if len(cells) <= PER_TOKEN_LIMIT:
        return configure(_per_token_chart(cells))
    return configure(alt.vconcat(_top_tokens_chart(cells), _overview_chart(cells), spacing=24))


def _bar_rows(cells: Sequence[TokenCell], labels: Sequence[str]) -> list[dict]:
    """One row per bar: the token's place, its axis label, its text, R and R's sign."""
    return [
        {
            "position": c.position,
            "label": label,
            "token": c.display,
            "relevance": c.relevance,
            "sign": _sign(c.relevance, c.special),
        }
        for c, label in zip(cells, labels, strict=True)
    ]


def _per_token_chart(cells: Sequence[TokenCell]) -> alt.Chart:
    labels = token_labels([c.text for c in cells])
    values = _bar_rows(cells, labels)
    return (
        alt.Chart(alt.Data(values=values))
        .mark_bar()
        .encode(
            x=alt.X(
                "label:N",
                sort=labels,
                title=None,
                axis=alt.Axis(labelAngle=-60, labelOverlap="greedy"),
            ),
            y=alt.Y("relevance:Q", title="relevance R", scale=_token_scale(cells)),
            color=_sign_color(""),
            tooltip=[
                alt.Tooltip("position:Q"),
                alt.Tooltip("token:N"),
                alt.Tooltip("relevance:Q", format="+.6g"),
            ],
        )
        .properties(width=min(CHART_WIDTH, max(320, 16 * len(values))), height=220)
    )


def strongest_tokens(cells: Sequence[TokenCell], count: int = TOP_TOKENS) -> list[TokenCell]:
    """The ``count`` non-special tokens with the largest |R|, strongest first (ties: position)."""
    plain = [c for c in cells if not c.special]
    return sorted(plain, key=lambda c: (-abs(c.relevance), c.position))[:count]


def _top_tokens_chart(cells: Sequence[TokenCell]) -> alt.Chart:
    top = strongest_tokens(cells)
    labels = [f"{c.position} {_short(c.display, 24)}" for c in top]
    values = _bar_rows(top, labels)
    return (
        alt.Chart(
            alt.Data(values=values),
            title=alt.Title(f"the {len(top)} strongest of {len(cells)} tokens", anchor="start"),
        )
        .mark_bar()
        .encode(
            y=alt.Y("label:N", sort=labels, title=None),
            x=alt.X("relevance:Q", title="relevance R"),
            color=_sign_color(""),
            tooltip=[
                alt.Tooltip("position:Q"),
                alt.Tooltip("token:N"),
                alt.Tooltip("relevance:Q", format="+.6g"),
            ],
        )
        .properties(width=CHART_WIDTH - 240, height=14 * len(values))
    )


def relevance_bins(cells: Sequence[TokenCell], bins: int = OVERVIEW_BINS) -> list[dict[str, Any]]:
    """The input in at most ``bins`` runs of consecutive positions: per run the sum of the
    positive and of the negative relevance of its non-special tokens (both kept: a run can push
    both ways, and a net sum would hide it)."""
    n = len(cells)
    size = max(1, -(-n // bins))
    rows = []
    for start in range(0, n, size):
        chunk = [c for c in cells[start : start + size] if not c.special]
        end = min(n, start + size)
        for sign, value in (
            (SIGN_DOMAIN[0], sum(c.relevance for c in chunk if c.relevance > 0)),
            (SIGN_DOMAIN[1], sum(c.relevance for c in chunk if c.relevance < 0)),
        ):
            rows.append({"start": start, "end": end, "sign": sign, "relevance": float(value)})
    return rows


def _overview_chart(cells: Sequence[TokenCell]) -> alt.Chart:
    values = relevance_bins(cells)
    size = values[0]["end"] - values[0]["start"] if values else 1
    return (
        alt.Chart(
            alt.Data(values=values),
            title=alt.Title(
                f"the whole input, {size} positions per bar (sums of R > 0 and R < 0)",
                anchor="start",
            ),
        )
        .mark_bar()
        .encode(
            x=alt.X("start:Q", title="position", scale=alt.Scale(domain=[0, len(cells)])),
            x2="end:Q",
            y=alt.Y("relevance:Q", title="relevance R"),
            # from zero: with x and x2 alone Vega-Lite draws a ranged bar of default
            # thickness at y, so each bin showed as a square floating at its value
            y2=alt.datum(0),
            color=_sign_color(""),
            tooltip=[
                alt.Tooltip("start:Q", title="from"),
                alt.Tooltip("end:Q", title="to (excl.)"),
                alt.Tooltip("relevance:Q", format="+.6g"),
            ],
        )
        .properties(width=CHART_WIDTH, height=160)
    )


def segments_chart(result: CaseResult) -> alt.Chart | None:
    """Sum of input relevance per named token span of the case."""
    if not result.segments:
        return None
    sums = segment_sums(result.attribution.relevance, result.segments)
    values = [
        {"segment": name, "relevance": value, "sign": _sign(value)} for name, value in sums.items()
    ]
    chart = (
        alt.Chart(alt.Data(values=values))
        .mark_bar()
        .encode(
            y=alt.Y("segment:N", sort=list(sums), title=None),
            x=alt.X("relevance:Q", title="sum of relevance"),
            color=_sign_color(None),
            tooltip=[alt.Tooltip("segment:N"), alt.Tooltip("relevance:Q", format="+.6g")],
        )
        .properties(width=480, height=max(40, 26 * len(values)))
    )
    return configure(chart)


def layer_sums_chart(result: CaseResult) -> alt.Chart | None:
    """Total node relevance per graph layer: where along the depth the decision is carried."""
    graph = result.graph
    if graph is None:
        return None
    layers = list(graph.layers)
    values = []
    for layer, row in zip(layers, graph.node_relevance.tolist(), strict=True):
        total = float(sum(row))
        values.append({"layer": layer, "relevance": total, "sign": _sign(total)})
    chart = (
        alt.Chart(alt.Data(values=values))
        .mark_bar()
        .encode(
            x=alt.X("layer:N", sort=layers, title="layer", axis=alt.Axis(labelAngle=-60)),
            y=alt.Y("relevance:Q", title="sum of node relevance"),
            color=_sign_color(None),
            tooltip=[alt.Tooltip("layer:N"), alt.Tooltip("relevance:Q", format="+.6g")],
        )
        .properties(width=max(320, min(CHART_WIDTH, 18 * len(values))), height=180)
    )
    return configure(chart)


def metrics_chart(result: CaseResult) -> alt.FacetChart | None:
    """One small line chart per shown graph metric (``summary.SHOWN_METRICS``: the few a reader
    can interpret, each explained on the page), across layers, titled by what it measures. The
    other metrics stay in data.json."""
    from .summary import GLOSSARY, SHOWN_METRICS, metric_value

    if not result.metrics:
        return None
    layers = [m.layer for m in result.metrics]
    names: list[str] = []
    values = []
    for name, key in SHOWN_METRICS:
        title = GLOSSARY[key][0]
        for row in result.metrics:
            value = metric_value(row, name)
            if value is None:
                continue
            if title not in names:
                names.append(title)
            values.append({"layer": row.layer, "metric": title, "value": value})
    if not values:
        return None
    chart = (
        alt.Chart(alt.Data(values=values))
        .mark_line(point=True, color="#555")
        .encode(
            x=alt.X(
                "layer:N",
                sort=layers,
                title="layer",
                axis=alt.Axis(labelAngle=0, labelOverlap="parity"),
            ),
            y=alt.Y("value:Q", title=None),
            tooltip=[alt.Tooltip("layer:N"), alt.Tooltip("metric:N"), alt.Tooltip("value:Q")],
        )
        .properties(width=300, height=120)
        .facet(
            facet=alt.Facet(
                "metric:N",
                sort=names,
                title=None,
                header=alt.Header(labelFontSize=12, labelFontWeight="bold", labelAnchor="start"),
            ),
            columns=2,
        )
        .resolve_scale(y="independent")
    )
    return configure(chart)


def faithfulness_chart(result: CaseResult) -> alt.LayerChart | None:
    """Deletion curves: f after masking the top-k tokens of each ordering; f < 0 means flipped."""
    faith = result.faithfulness
    if faith is None or not faith.curves:
        return None
    orderings = list(faith.curves)
    values = [
        {"ordering": name, "k": k, "f": float(f)}
        for name, curve in faith.curves.items()
        for k, f in enumerate(curve)
        if f is not None
    ]
    colors = [ORDERING_COLORS.get(name, "#7b3294") for name in orderings]
    lines = (
        alt.Chart(alt.Data(values=values))
        .mark_line(point=True)
        .encode(
            x=alt.X("k:Q", title="tokens masked (k)", axis=alt.Axis(tickMinStep=1)),
            y=alt.Y("f:Q", title="explained value f"),
            color=alt.Color(
                "ordering:N",
                scale=alt.Scale(domain=orderings, range=colors),
                legend=alt.Legend(title="masking order", orient="top"),
            ),
            tooltip=[
                alt.Tooltip("ordering:N"),
                alt.Tooltip("k:Q"),
                alt.Tooltip("f:Q", format="+.6g"),
            ],
        )
    )
    zero = zero_rule()
    return configure(alt.layer(zero, lines).properties(width=480, height=240))


def comparison_chart(result: CaseResult) -> alt.Chart | None:
    """The explained value of this case on each compared model, this model first."""
    if not result.comparisons:
        return None
    rows = [{"model": result.model, "explained": result.attribution.explained}]
    rows += [{"model": c.model, "explained": float(c.explained)} for c in result.comparisons]
    values = [dict(r, sign=_sign(r["explained"])) for r in rows]
    models = [r["model"] for r in rows]
    chart = (
        alt.Chart(alt.Data(values=values))
        .mark_bar()
        .encode(
            y=alt.Y("model:N", sort=models, title=None),
            x=alt.X("explained:Q", title="explained value f (target vs contrast)"),
            color=_sign_color(None),
            tooltip=[alt.Tooltip("model:N"), alt.Tooltip("explained:Q", format="+.6g")],
        )
        .properties(width=480, height=max(40, 28 * len(values)))
    )
    return configure(chart)


def comparison_segments_chart(result: CaseResult) -> alt.Chart | None:
    """Segment sums side by side for every compared model (only when they report segments)."""
    if not result.comparisons or not result.segments:
        return None
    base = segment_sums(result.attribution.relevance, result.segments)
    rows = [(result.model, base)] + [(c.model, c.segments) for c in result.comparisons]
    values = [
        {"model": model, "segment": name, "relevance": float(value)}
        for model, sums in rows
        for name, value in sums.items()
    ]
    models = [m for m, _ in rows]
    chart = (
        alt.Chart(alt.Data(values=values))
        .mark_bar()
        .encode(
            x=alt.X("segment:N", sort=list(base), title=None),
            xOffset=alt.XOffset("model:N", sort=models),
            y=alt.Y("relevance:Q", title="sum of relevance"),
            color=alt.Color("model:N", sort=models, legend=alt.Legend(orient="top", title=None)),
            tooltip=[
                alt.Tooltip("model:N"),
                alt.Tooltip("segment:N"),
                alt.Tooltip("relevance:Q", format="+.6g"),
            ],
        )
        .properties(width=max(240, 90 * len(base)), height=200)
    )
    return configure(chart)


# --- index charts -----------------------------------------------------------------------------


def benchmark_counts_chart(results: Sequence[CaseResult]) -> alt.Chart:
    """How many cases each benchmark tag contributes."""
    counts: dict[str, int] = {}
    for r in results:
        tag = r.tags.get("benchmark", "untagged")
        counts[tag] = counts.get(tag, 0) + 1
    values = [{"benchmark": k, "cases": v} for k, v in sorted(counts.items())]
    chart = (
        alt.Chart(alt.Data(values=values))
        .mark_bar(color="#4d4d4d")
        .encode(
            y=alt.Y("benchmark:N", sort=sorted(counts), title=None),
            x=alt.X("cases:Q", title="cases", axis=alt.Axis(tickMinStep=1)),
            tooltip=[alt.Tooltip("benchmark:N"), alt.Tooltip("cases:Q")],
        )
        .properties(width=320, height=max(40, 26 * len(values)))
    )
    return configure(chart)


def logit_diff_chart(results: Sequence[CaseResult]) -> alt.Chart:
    """Explained value of every case, one row of dots per model."""
    values = [
        {
            "model": r.model,
            "case": r.case_id,
            "explained": r.attribution.explained,
            "sign": _sign(r.attribution.explained),
        }
        for r in results
    ]
    models = sorted({r.model for r in results})
    chart = (
        alt.Chart(alt.Data(values=values))
        .mark_circle(size=80, opacity=0.8)
        .encode(
            y=alt.Y("model:N", sort=models, title=None),
            x=alt.X("explained:Q", title="explained value f (logit difference)"),
            color=_sign_color(None),
            tooltip=[
                alt.Tooltip("case:N"),
                alt.Tooltip("model:N"),
                alt.Tooltip("explained:Q", format="+.6g"),
            ],
        )
        .properties(width=320, height=max(60, 34 * len(models)))  # fits half the index
    )
    return configure(chart)


def comparison_scatter(results: Sequence[CaseResult]) -> alt.LayerChart | None:
    """Base model's explained value against each compared model's, with the y = x line."""
    values = [
        {
            "case": r.case_id,
            "base": r.attribution.explained,
            "other": float(c.explained),
            "model": c.model,
        }
        for r in results
        for c in r.comparisons or []
    ]
    if not values:
        return None
    lo = min(min(v["base"], v["other"]) for v in values)
    hi = max(max(v["base"], v["other"]) for v in values)
    pad = 0.05 * (hi - lo or 1.0)
    domain = [lo - pad, hi + pad]
    diagonal = (
        alt.Chart(
            alt.Data(values=[{"a": domain[0], "b": domain[0]}, {"a": domain[1], "b": domain[1]}])
        )
        .mark_line(color="#aaa", strokeDash=[4, 3])
        .encode(
            x=alt.X("a:Q", scale=alt.Scale(domain=domain)),
            y=alt.Y("b:Q", scale=alt.Scale(domain=domain)),
        )
    )
    points = (
        alt.Chart(alt.Data(values=values))
        .mark_circle(size=80, opacity=0.85)
        .encode(
            x=alt.X(
                "base:Q", title="explained value, case's model", scale=alt.Scale(domain=domain)
            ),
            y=alt.Y(
                "other:Q", title="explained value, compared model", scale=alt.Scale(domain=domain)
            ),
            color=alt.Color("model:N", legend=alt.Legend(orient="top", title=None)),
            tooltip=[
                alt.Tooltip("case:N"),
                alt.Tooltip("model:N"),
                alt.Tooltip("base:Q", format="+.4g"),
                alt.Tooltip("other:Q", format="+.4g"),
            ],
        )
    )
    return configure(alt.layer(diagonal, points).properties(width=320, height=320))


def summaries_chart(summaries: Sequence[dict[str, Any]]) -> alt.Chart | None:
    """Passed / failed items per benchmark as stacked bars."""
    if not summaries:
        return None
    values = [
        {"benchmark": str(s["benchmark"]), "outcome": outcome, "items": int(s.get(outcome, 0))}
        for s in summaries
        for outcome in ("passed", "failed")
    ]
    benchmarks = [str(s["benchmark"]) for s in summaries]
    chart = (
        alt.Chart(alt.Data(values=values))
        .mark_bar()
        .encode(
            y=alt.Y("benchmark:N", sort=benchmarks, title=None),
            x=alt.X("items:Q", stack="zero", title="items"),
            color=alt.Color(
                "outcome:N",
                scale=alt.Scale(domain=["passed", "failed"], range=["#8fbf8f", POSITIVE_HEX]),
                legend=alt.Legend(orient="top", title=None),
            ),
            order=alt.Order("outcome:N", sort="descending"),
            tooltip=[alt.Tooltip("benchmark:N"), alt.Tooltip("outcome:N"), alt.Tooltip("items:Q")],
        )
        .properties(width=360, height=max(40, 28 * len(benchmarks)))
    )
    return configure(chart)
