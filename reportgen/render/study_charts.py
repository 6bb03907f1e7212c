"""The study's charts on the index (Altair): the same numbers as the paper figures
(:func:`reportgen.render.study.study_data`), drawn for the browser."""

from __future__ import annotations

import math
from typing import Any

from .paper_style import METRICS
from .study import FUNNEL_STAGES, FUNNEL_WORDS, PATTERNS, StudyData, group_name, model_size

STUDY_CHART_TITLES = {
    "funnel": (
        "Collect funnel",
        "Per benchmark run: items, failed, clean failures (a finished wrong answer) and the "
        "failures pinned as cases (from every summary.json).",
    ),
    "patterns": (
        "Failure patterns",
        "URT: relevant tokens under-weighted; OIT: irrelevant tokens over-weighted (cases that "
        "mark their relevant spans).",
    ),
    "profiles": (
        "Graph-metric profiles",
        "Per group (benchmark, model): mean over its cases (line) and range (band), by relative "
        "depth.",
    ),
    "persistence": (
        "Weaker to stronger model",
        "f of the same failure on each model, ordered by size; f > 0: the failure persists.",
    ),
}


def study_charts(data: StudyData) -> dict[str, Any]:
    """The study's charts for the index, from the same numbers as the paper figures."""
    import altair as alt

    from .charts import configure, zero_rule
    from .colors import NEGATIVE_HEX, POSITIVE_HEX

    charts: dict[str, Any] = {}
    models = len({r.model for r in data.funnel})
    if data.funnel:
        groups = [group_name(r.benchmark, r.model, models) for r in data.funnel]
        values = [
            {"group": g, "stage": FUNNEL_WORDS[s], "count": getattr(r, s)}
            for g, r in zip(groups, data.funnel, strict=True)
            for s in FUNNEL_STAGES
        ]
        stages = [FUNNEL_WORDS[s] for s in FUNNEL_STAGES]
        charts["funnel"] = configure(
            alt.Chart(alt.Data(values=values))
            .mark_bar()
            .encode(
                y=alt.Y("group:N", sort=groups, title=None),
                yOffset=alt.YOffset("stage:N", sort=stages),
                x=alt.X("count:Q", title="count"),
                color=alt.Color(
                    "stage:N",
                    sort=stages,
                    scale=alt.Scale(
                        domain=stages, range=["#c4c4c4", "#8a8a8a", NEGATIVE_HEX, POSITIVE_HEX]
                    ),
                    legend=alt.Legend(orient="top", title=None),
                ),
                tooltip=[alt.Tooltip("group:N"), alt.Tooltip("stage:N"), alt.Tooltip("count:Q")],
            )
            .properties(width=320, height=max(60, 64 * len(groups)))
        )
    if data.patterns:
        values = [
            {"benchmark": b, "pattern": p, "cases": n}
            for b, counts in data.patterns.items()
            for p, n in counts.items()
        ]
        charts["patterns"] = configure(
            alt.Chart(alt.Data(values=values))
            .mark_bar()
            .encode(
                y=alt.Y("benchmark:N", sort=list(data.patterns), title=None),
                x=alt.X("cases:Q", stack="zero", title="cases", axis=alt.Axis(tickMinStep=1)),
                color=alt.Color(
                    "pattern:N",
                    sort=list(PATTERNS),
                    scale=alt.Scale(
                        domain=list(PATTERNS),
                        range=[NEGATIVE_HEX, POSITIVE_HEX, "#e66101", "#bdbdbd"],
                    ),
                    legend=alt.Legend(orient="top", title=None),
                ),
                tooltip=[
                    alt.Tooltip("benchmark:N"),
                    alt.Tooltip("pattern:N"),
                    alt.Tooltip("cases:Q"),
                ],
            )
            .properties(width=320, height=max(40, 28 * len(data.patterns)))
        )
    if data.profiles and data.metric:
        pm = len({p.model for p in data.profiles})
        values = [
            {
                "group": group_name(p.benchmark, p.model, pm),
                "depth": d,
                "mean": m,
                "low": lo,
                "high": hi,
                "cases": p.cases,
            }
            for p in data.profiles
            for d, m, lo, hi in zip(p.depth, p.mean, p.low, p.high, strict=True)
            if all(math.isfinite(v) for v in (m, lo, hi))
        ]
        name = METRICS.get(data.metric, data.metric).replace("$|R|$", "|R|")
        base = alt.Chart(alt.Data(values=values)).encode(
            x=alt.X("depth:Q", title="relative depth (0: first layer, 1: last)"),
            color=alt.Color("group:N", legend=alt.Legend(orient="top", title=None)),
        )
        band = base.mark_area(opacity=0.15).encode(y=alt.Y("low:Q", title=name), y2="high:Q")
        line = base.mark_line().encode(
            y="mean:Q",
            tooltip=[
                alt.Tooltip("group:N"),
                alt.Tooltip("depth:Q", format=".2f"),
                alt.Tooltip("mean:Q", format=".3g"),
                alt.Tooltip("low:Q", format=".3g"),
                alt.Tooltip("high:Q", format=".3g"),
                alt.Tooltip("cases:Q"),
            ],
        )
        charts["profiles"] = configure(alt.layer(band, line).properties(width=320, height=200))
    if data.persistence:
        order: list[str] = []
        for row in data.persistence:
            order += [m for m in row.models if m not in order]
        first = {m: i for i, m in enumerate(order)}
        order = sorted(order, key=lambda m: (model_size(m), first[m]))
        values = [
            {
                "case": row.case_id,
                "model": m,
                "explained": f,
                "outcome": "persists" if row.explained[-1] > 0 else "fixed",
            }
            for row in data.persistence
            for m, f in zip(row.models, row.explained, strict=True)
        ]
        lines = (
            alt.Chart(alt.Data(values=values))
            .mark_line(point=True)
            .encode(
                x=alt.X("model:N", sort=order, title=None, axis=alt.Axis(labelAngle=0)),
                y=alt.Y("explained:Q", title="explained value f"),
                detail="case:N",
                color=alt.Color(
                    "outcome:N",
                    scale=alt.Scale(
                        domain=["persists", "fixed"], range=[POSITIVE_HEX, NEGATIVE_HEX]
                    ),
                    legend=alt.Legend(orient="top", title=None),
                ),
                tooltip=[
                    alt.Tooltip("case:N"),
                    alt.Tooltip("model:N"),
                    alt.Tooltip("explained:Q", format="+.4g"),
                ],
            )
        )
        zero = zero_rule()
        charts["persistence"] = configure(alt.layer(zero, lines).properties(width=320, height=220))
    return charts
