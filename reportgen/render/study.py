"""The study figures of the project page: what all cases and benchmark runs say together.

* the collect funnel per benchmark and model: items -> failed -> clean failures -> pinned, from
  every ``summary.json`` that ``reportgen collect`` wrote (:func:`funnel_rows`);
* the failure patterns (URT / OIT / both / none) per benchmark, from the cases that mark their
  relevant spans (:func:`pattern_counts`);
* layer-wise graph-metric profiles per group (benchmark, model): mean and spread (min-max)
  over the group's cases at each relative depth (:func:`metric_profiles`);
* where cases carry ``compare``: f of the same failure on every model, weaker to stronger
  (by the parameter count in the model's name), whether it persists (f > 0: the model still
  prefers the wrong token) or is fixed, and the share that persists (:func:`persistence`).

The numbers are computed once here; the index draws them with Altair, and
:func:`render_study_figures` typesets them as paper figures (pgfplots, one pdflatex run) with a
site-level ``figures.tex`` whose labels start with ``fig:study:``."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..project import FigureSettings
from ..results import CaseResult
from .paper import (
    METRICS,
    Figure,
    _num,
    small_size,
    tex_text,
    widths,
    write_figure_set,
)
from .tokens import segment_sums

STUDY_PREFIX = "study"
PATTERNS = ("URT", "OIT", "URT+OIT", "none")
PROFILE_METRICS = ("gini_relevance", "verticality", "local_ratio", "nodes")
FUNNEL_STAGES = ("items", "failed", "clean", "pinned")
FUNNEL_WORDS = {
    "items": "items",
    "failed": "failed",
    "clean": "clean failures",
    "pinned": "pinned cases",
}
GROUP_COLORS = [  # ColorBrewer Dark2
    (27, 158, 119),
    (217, 95, 2),
    (117, 112, 179),
    (231, 41, 138),
    (102, 166, 30),
    (230, 171, 2),
    (166, 118, 29),
    (102, 102, 102),
]


# --- the numbers --------------------------------------------------------------------------------


@dataclass(frozen=True)
class FunnelRow:
    benchmark: str
    model: str
    items: int
    failed: int
    clean: int  # failed, less the greedy outputs that are no clean failure
    pinned: int


def _count(value: Any) -> int:
    if isinstance(value, list | dict):
        return len(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    return int(value)


def funnel_rows(summaries: Sequence[dict[str, Any]]) -> list[FunnelRow]:
    """One row per summary.json: the funnel's counts (from its ``funnel`` table, else the
    top-level counts), sorted by benchmark and model."""
    rows = []
    for s in summaries:
        funnel = s.get("funnel") if isinstance(s.get("funnel"), dict) else {}
        items = _count(funnel.get("items", s.get("items")))
        failed = _count(funnel.get("failed", s.get("failed")))
        not_clean = funnel.get("not_clean_failure") or {}
        dropped = sum(_count(v) for v in not_clean.values()) if isinstance(not_clean, dict) else 0
        rows.append(
            FunnelRow(
                benchmark=str(s.get("benchmark", "")),
                model=str(s.get("model", "")),
                items=items,
                failed=failed,
                clean=max(0, failed - dropped),
                pinned=_count(funnel.get("pinned", s.get("pinned"))),
            )
        )
    return sorted(rows, key=lambda r: (r.benchmark, r.model))


def pattern_counts(results: Sequence[CaseResult]) -> dict[str, dict[str, int]]:
    """Per benchmark tag, how many cases show each failure pattern (cases that mark no
    relevant span have none and are left out)."""
    counts: dict[str, dict[str, int]] = {}
    for r in sorted(results, key=lambda r: r.case_id):
        found = r.faithfulness.failure_pattern if r.faithfulness is not None else None
        pattern = found.pattern if found is not None else None
        if pattern not in PATTERNS:
            continue
        bench = r.tags.get("benchmark", "untagged")
        counts.setdefault(bench, dict.fromkeys(PATTERNS, 0))[pattern] += 1
    return dict(sorted(counts.items()))


@dataclass(frozen=True)
class Profile:
    benchmark: str
    model: str
    cases: int
    depth: tuple[float, ...]  # relative depth of each layer: 0 first, 1 last
    mean: tuple[float, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]


def profile_metric(results: Sequence[CaseResult]) -> str | None:
    """The metric the profiles show: the first of :data:`PROFILE_METRICS` every case has."""
    rows = [r.metrics for r in results if r.metrics]
    for name in PROFILE_METRICS:
        if rows and all(isinstance(getattr(m[0], name), int | float) for m in rows):
            return name
    return None


def metric_profiles(results: Sequence[CaseResult], metric: str) -> list[Profile]:
    """Per (benchmark, model): the metric at each layer, mean, min and max over the cases
    (cases of one model share its layers)."""
    groups: dict[tuple[str, str], list[list[float]]] = {}
    for r in sorted(results, key=lambda r: r.case_id):
        if not r.metrics:
            continue
        values = [float(getattr(m, metric, math.nan)) for m in r.metrics]
        key = (r.tags.get("benchmark", "untagged"), r.model)
        groups.setdefault(key, []).append(values)
    out = []
    for (bench, model), series in sorted(groups.items()):
        n = min(len(s) for s in series)
        columns = [[s[i] for s in series if math.isfinite(s[i])] for i in range(n)]
        depth = tuple(i / max(1, n - 1) for i in range(n))
        mean = tuple(sum(c) / len(c) if c else math.nan for c in columns)
        low = tuple(min(c) if c else math.nan for c in columns)
        high = tuple(max(c) if c else math.nan for c in columns)
        out.append(Profile(bench, model, len(series), depth, mean, low, high))
    return out


def model_size(name: str) -> float:
    """Parameters from a model's name ("smollm2-135m-instruct" -> 135e6, "qwen2.5-0.5b" ->
    0.5e9); infinity when the name has none (such a model sorts last)."""
    match = re.search(r"(?<![a-z0-9.])(\d+(?:\.\d+)?)([mb])(?![a-z])", name.lower())
    if match is None:
        return math.inf
    return float(match.group(1)) * (1e6 if match.group(2) == "m" else 1e9)


@dataclass(frozen=True)
class Persistence:
    case_id: str
    models: tuple[str, ...]  # weaker -> stronger
    explained: tuple[float, ...]  # f on each model
    base: str  # the case's own model
    # where the relevance moved: the case's segment sums (sum of R over each named span) on
    # each model, in the order of ``models``
    segments: tuple[dict[str, float], ...] = ()


def persistence(results: Sequence[CaseResult]) -> list[Persistence]:
    """Every case with comparisons: f on each model, ordered by size (weaker to stronger)."""
    out = []
    for r in sorted(results, key=lambda r: r.case_id):
        if not r.comparisons:
            continue
        pairs = [(r.model, float(r.attribution.explained))]
        pairs += [(c.model, float(c.explained)) for c in r.comparisons]
        sums = [segment_sums(r.attribution.relevance, r.segments) if r.segments else {}]
        sums += [{str(k): float(v) for k, v in c.segments.items()} for c in r.comparisons]
        order = sorted(range(len(pairs)), key=lambda i: (model_size(pairs[i][0]), i))
        out.append(
            Persistence(
                r.case_id,
                tuple(pairs[i][0] for i in order),
                tuple(pairs[i][1] for i in order),
                r.model,
                tuple(sums[i] for i in order),
            )
        )
    return out


def persistence_summary(rows: Sequence[Persistence]) -> dict[str, Any]:
    """Per compared model (every model that is not the case's own): how many of the case's
    failures persist there (f > 0) and the share; and over all pairs."""
    per: dict[str, dict[str, int]] = {}
    for row in rows:
        for model, f in zip(row.models, row.explained, strict=True):
            if model == row.base:
                continue
            entry = per.setdefault(model, {"pairs": 0, "persists": 0})
            entry["pairs"] += 1
            entry["persists"] += int(f > 0)
    pairs = sum(e["pairs"] for e in per.values())
    persists = sum(e["persists"] for e in per.values())
    return {
        "models": {
            m: {**e, "share": e["persists"] / e["pairs"] if e["pairs"] else 0.0}
            for m, e in sorted(per.items(), key=lambda kv: (model_size(kv[0]), kv[0]))
        },
        "pairs": pairs,
        "persists": persists,
        "share": persists / pairs if pairs else 0.0,
    }


@dataclass(frozen=True)
class StudyData:
    funnel: list[FunnelRow]
    patterns: dict[str, dict[str, int]]
    metric: str | None
    profiles: list[Profile]
    persistence: list[Persistence]

    @property
    def summary(self) -> dict[str, Any]:
        return persistence_summary(self.persistence)

    def to_json(self) -> dict[str, Any]:
        return {
            "funnel": [asdict(r) for r in self.funnel],
            "patterns": self.patterns,
            "metric": self.metric,
            "profiles": [asdict(p) for p in self.profiles],
            "persistence": [asdict(p) for p in self.persistence],
            "persistence_summary": self.summary,
        }


def study_data(results: Sequence[CaseResult], summaries: Sequence[dict[str, Any]]) -> StudyData:
    metric = profile_metric(results)
    return StudyData(
        funnel=funnel_rows(summaries),
        patterns=pattern_counts(results),
        metric=metric,
        profiles=metric_profiles(results, metric) if metric else [],
        persistence=persistence(results),
    )


# --- words --------------------------------------------------------------------------------------


def _group_name(bench: str, model: str, models: int) -> str:
    return bench if models <= 1 else f"{bench} ({model})"


def persistence_sentence(summary: dict[str, Any]) -> str:
    """ "The failure persists in 3 of 4 comparisons (75%)." (plain text)."""
    if not summary["pairs"]:
        return ""
    return (
        f"The failure persists (f > 0) in {summary['persists']} of {summary['pairs']} "
        f"comparisons ({100 * summary['share']:.0f}%)."
    )


# --- paper figures ------------------------------------------------------------------------------


def _rgb(c: tuple[int, int, int]) -> str:
    return f"{{rgb,255:red,{c[0]};green,{c[1]};blue,{c[2]}}}"


def _label_list(labels: Sequence[str]) -> str:
    return ",".join("{" + label + "}" for label in labels)


def funnel_body(rows: Sequence[FunnelRow], width: float, settings: FigureSettings) -> str:
    models = len({r.model for r in rows})
    labels = [tex_text(_group_name(r.benchmark, r.model, models)) for r in rows]
    small = small_size(settings)
    label_w = max(len(_group_name(r.benchmark, r.model, models)) for r in rows) * 0.5 * small
    axis_w = width - label_w - 30
    height = len(rows) * (4 * (small * 0.75) + 8)
    shades = ["rgaxis!45", "rgaxis!80", "rgneg", "rgpos"]
    top = max(r.items for r in rows) or 1
    lines = [
        r"\begin{tikzpicture}",
        r"\begin{axis}[rgaxis, xbar, y dir=reverse, bar width=" + f"{small * 0.75:.1f}bp,",
        rf"  width={axis_w:.1f}bp, height={height:.1f}bp, xmin=0, xmax={top * 1.18:.1f},",
        r"  ytick={"
        + ",".join(str(i) for i in range(len(rows)))
        + "}, yticklabels={"
        + _label_list(labels)
        + "},",
        rf"  ymin=-0.6, ymax={len(rows) - 0.4}, ytick style={{draw=none}}, xmajorgrids,",
        r"  xlabel={count}, enlarge y limits=false, area legend, reverse legend,",
        r"  nodes near coords, nodes near coords style={font=\rgsmall, anchor=west, inner sep=1bp},",
        r"  legend style={at={(0.5,1.0)}, anchor=south, legend columns="
        + ("2" if width < 300 else "4")
        + r", /tikz/every even column/.append style={column sep=5bp}}]",
    ]
    for stage, shade in reversed(list(zip(FUNNEL_STAGES, shades, strict=True))):
        lines.append(
            rf"\addplot[fill={shade}, draw=none] coordinates {{"
            + " ".join(f"({getattr(r, stage)},{i})" for i, r in enumerate(rows))
            + "};"
        )
        lines.append(rf"\addlegendentry{{{FUNNEL_WORDS[stage]}}}")
    lines += [r"\end{axis}", r"\end{tikzpicture}"]
    return "\n".join(lines)


def patterns_body(
    patterns: dict[str, dict[str, int]], width: float, settings: FigureSettings
) -> str:
    benches = list(patterns)
    small = small_size(settings)
    label_w = max(len(b) for b in benches) * 0.5 * small
    axis_w = width - label_w - 24
    height = len(benches) * (small + 8)
    colors = {"URT": "rgneg", "OIT": "rgpos", "URT+OIT": "rgorange", "none": "rgaxis!40"}
    top = max(sum(c.values()) for c in patterns.values()) or 1
    lines = [
        r"\begin{tikzpicture}",
        r"\begin{axis}[rgaxis, xbar stacked, y dir=reverse, bar width=" + f"{small:.1f}bp,",
        rf"  width={axis_w:.1f}bp, height={height:.1f}bp, xmin=0, xmax={top},",
        r"  ytick={"
        + ",".join(str(i) for i in range(len(benches)))
        + "}, yticklabels={"
        + _label_list([tex_text(b) for b in benches])
        + "},",
        rf"  ymin=-0.6, ymax={len(benches) - 0.4}, ytick style={{draw=none}}, xmajorgrids,",
        r"  xlabel={cases}, area legend, max space between ticks=30,",
        r"  xtick distance=" + str(max(1, math.ceil(top / 6))) + ",",
        r"  legend style={at={(0.5,1.0)}, anchor=south, legend columns=4,"
        r" /tikz/every even column/.append style={column sep=5bp}}]",
    ]
    for pattern in PATTERNS:
        lines.append(
            rf"\addplot[fill={colors[pattern]}, draw=none] coordinates {{"
            + " ".join(f"({patterns[b][pattern]},{i})" for i, b in enumerate(benches))
            + "};"
        )
        lines.append(rf"\addlegendentry{{{pattern}}}")
    lines += [r"\end{axis}", r"\end{tikzpicture}"]
    return "\n".join(lines)


def profiles_body(
    profiles: Sequence[Profile], metric: str, width: float, settings: FigureSettings
) -> str:
    models = len({p.model for p in profiles})
    axis_w = width - 4.5 * settings.font_size - 10
    axis_h = axis_w * (0.6 if width < 300 else 0.34)
    columns = 2 if width < 300 else 4
    lines = [
        r"\begin{tikzpicture}",
        rf"\begin{{axis}}[rgaxis, width={axis_w:.1f}bp, height={axis_h:.1f}bp, xmin=0, xmax=1,",
        r"  xlabel={relative depth (0: first layer, 1: last)},",
        rf"  ylabel={{{METRICS.get(metric, tex_text(metric.replace('_', ' ')))}}}, ymajorgrids,",
        rf"  max space between ticks=35, rglegend, legend columns={columns}]",
    ]
    for i, p in enumerate(profiles):
        color = _rgb(GROUP_COLORS[i % len(GROUP_COLORS)])
        ok = [
            j
            for j in range(len(p.depth))
            if all(math.isfinite(v[j]) for v in (p.mean, p.low, p.high))
        ]
        if not ok:
            continue
        band = [(p.depth[j], p.high[j]) for j in ok] + [(p.depth[j], p.low[j]) for j in ok[::-1]]
        lines.append(
            rf"\addplot[fill={color}, fill opacity=0.15, draw=none, forget plot] coordinates {{"
            + " ".join(f"({_num(x)},{_num(y)})" for x, y in band)
            + "} -- cycle;"
        )
        lines.append(
            rf"\addplot[color={color}, mark=none] coordinates {{"
            + " ".join(f"({_num(p.depth[j])},{_num(p.mean[j])})" for j in ok)
            + "};"
        )
        name = _group_name(p.benchmark, p.model, models)
        lines.append(rf"\addlegendentry{{{tex_text(name)} ($n={p.cases}$)}}")
    lines += [r"\end{axis}", r"\end{tikzpicture}"]
    return "\n".join(lines)


def persistence_body(rows: Sequence[Persistence], width: float, settings: FigureSettings) -> str:
    models: list[str] = []
    for row in rows:
        for m in row.models:
            if m not in models:
                models.append(m)
    first = {m: i for i, m in enumerate(models)}
    models = sorted(models, key=lambda m: (model_size(m), first[m]))
    axis_w = width - 4.5 * settings.font_size - 30
    axis_h = axis_w * (0.7 if width < 300 else 0.36)
    values = [f for row in rows for f in row.explained]
    lines = [
        r"\begin{tikzpicture}",
        rf"\begin{{axis}}[rgaxis, width={axis_w:.1f}bp, height={axis_h:.1f}bp,",
        rf"  xmin=-0.25, xmax={len(models) - 0.75}, xtick={{{','.join(str(i) for i in range(len(models)))}}},",
        r"  xticklabels={" + _label_list([tex_text(m) for m in models]) + "},",
        r"  ylabel={explained value $f$}, ymajorgrids, max space between ticks=35,",
        rf"  ymin={_num(min(0.0, *values) * 1.1 - 0.1)}, ymax={_num(max(0.0, *values) * 1.1 + 0.1)},",
        r"  extra y ticks={0}, extra y tick labels={}, extra y tick style={grid=major,"
        r" major grid style={rgaxis, dashed, line width=0.5pt}},",
        r"  rglegend, legend columns=2]",
    ]
    shown = {"persists": False, "fixed": False}
    for row in rows:
        persists = row.explained[-1] > 0
        kind = "persists" if persists else "fixed"
        style = "rgpos, mark=*" if persists else "rgneg, dashed, mark=o, mark options={solid}"
        lines.append(
            rf"\addplot[{style}, mark size=1.5bp"
            + ("" if not shown[kind] else ", forget plot")
            + "] coordinates {"
            + " ".join(
                f"({models.index(m)},{_num(f)})"
                for m, f in zip(row.models, row.explained, strict=True)
            )
            + "};"
        )
        if not shown[kind]:
            lines.append(
                rf"\addlegendentry{{{'failure persists ($f>0$)' if persists else 'fixed ($f<0$)'}}}"
            )
            shown[kind] = True
    lines += [r"\end{axis}", r"\end{tikzpicture}"]
    return "\n".join(lines)


def study_figures(data: StudyData, settings: FigureSettings) -> list[Figure]:
    sizes = widths(settings)
    figures = []
    if data.funnel:
        total = {s: sum(getattr(r, s) for r in data.funnel) for s in FUNNEL_STAGES}
        figures.append(
            Figure(
                "funnel",
                "Outcomes of the benchmark runs (reportgen collect): items, the items the "
                "model failed, the clean failures among them (the greedy output is a finished, wrong answer) "
                f"and the failures pinned to one token as a case; in all {total['items']} "
                f"items, {total['failed']} failed, {total['clean']} clean, "
                f"{total['pinned']} pinned.",
                {k: funnel_body(data.funnel, w, settings) for k, w in sizes.items()},
            )
        )
    if data.patterns:
        n = sum(sum(c.values()) for c in data.patterns.values())
        figures.append(
            Figure(
                "patterns",
                "Failure patterns per benchmark of the "
                f"{n} cases that mark their relevant tokens: URT (relevant tokens "
                "under-weighted), OIT (irrelevant tokens over-weighted), both, or none.",
                {k: patterns_body(data.patterns, w, settings) for k, w in sizes.items()},
            )
        )
    if data.profiles and data.metric:
        figures.append(
            Figure(
                "profiles",
                "Layer-wise graph metric per group (benchmark, model): the mean over the "
                "group's cases (line) and its range (band), layers at their relative depth.",
                {
                    k: profiles_body(data.profiles, data.metric, w, settings)
                    for k, w in sizes.items()
                },
            )
        )
    if data.persistence:
        sentence = persistence_sentence(data.summary).replace("f > 0", "$f>0$")
        pct = sentence.replace("%", r"\%")
        figures.append(
            Figure(
                "persistence",
                "The same failures from the weaker to the stronger model (by parameter "
                "count): the explained value $f$ of each case on every model; solid: the "
                f"failure persists on the strongest, dashed: fixed. {pct}",
                {k: persistence_body(data.persistence, w, settings) for k, w in sizes.items()},
            )
        )
    return figures


def render_study_figures(
    data: StudyData, out_dir: Path, settings: FigureSettings | None = None
) -> list[str]:
    """The study's paper figures into ``out_dir``: ``study-<figure>-{col,text}.pdf``, a
    site-level ``figures.tex`` (labels ``fig:study:<figure>``) and ``figures.zip``."""
    settings = settings or FigureSettings()
    figures = study_figures(data, settings)
    if not figures:
        return []
    return write_figure_set(
        figures, Path(out_dir), STUDY_PREFIX, "the study", settings, case_id="(study figures)"
    )


# --- the index's charts (Altair, the same numbers) ----------------------------------------------


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
        groups = [_group_name(r.benchmark, r.model, models) for r in data.funnel]
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
                "group": _group_name(p.benchmark, p.model, pm),
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
