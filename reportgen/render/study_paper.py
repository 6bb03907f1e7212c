"""The study's paper figures: the numbers of :func:`reportgen.render.study.study_data` typeset
with pgfplots (one pdflatex run, as a case's figure set), in a column's and a text's width,
with a site-level ``figures.tex`` whose labels start with ``fig:study:``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from ..project import FigureSettings
from .paper import write_figure_set
from .paper_style import METRICS, Figure, pgf_number, small_size, tex_text, widths
from .study import (
    FUNNEL_STAGES,
    FUNNEL_WORDS,
    PATTERNS,
    FunnelRow,
    Persistence,
    Profile,
    StudyData,
    group_name,
    model_size,
    persistence_sentence,
)
from .tex import xcolor_rgb

STUDY_PREFIX = "study"
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


def _label_list(labels: Sequence[str]) -> str:
    return ",".join("{" + label + "}" for label in labels)


def funnel_body(rows: Sequence[FunnelRow], width: float, settings: FigureSettings) -> str:
    models = len({r.model for r in rows})
    labels = [tex_text(group_name(r.benchmark, r.model, models)) for r in rows]
    small = small_size(settings)
    label_w = max(len(group_name(r.benchmark, r.model, models)) for r in rows) * 0.5 * small
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
        color = xcolor_rgb(GROUP_COLORS[i % len(GROUP_COLORS)])
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
            + " ".join(f"({pgf_number(x)},{pgf_number(y)})" for x, y in band)
            + "} -- cycle;"
        )
        lines.append(
            rf"\addplot[color={color}, mark=none] coordinates {{"
            + " ".join(f"({pgf_number(p.depth[j])},{pgf_number(p.mean[j])})" for j in ok)
            + "};"
        )
        name = group_name(p.benchmark, p.model, models)
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
        rf"  ymin={pgf_number(min(0.0, *values) * 1.1 - 0.1)}, ymax={pgf_number(max(0.0, *values) * 1.1 + 0.1)},",
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
                f"({models.index(m)},{pgf_number(f)})"
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
