"""The paper figures' drawings, one TikZ/pgfplots body per figure (the token heatmap, the
relevance bars, the pruned graph, the deletion curves, the graph metrics), at a given width in
the document's fonts; :mod:`reportgen.render.paper` puts them into one pdflatex run."""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..graph.types import AttributionGraph, Edge
from ..project import FigureSettings
from ..results import METRIC_NAMES, CaseResult, LayerMetrics
from .colors import SPECIAL_BG, SPECIAL_FG, TEXT_DARK, TEXT_LIGHT
from .paper_style import (
    METRICS,
    ORDERINGS,
    RGB,
    diverging,
    grey,
    label_number,
    pgf_number,
    shortened,
    small_size,
    tex_text,
    token_labels,
    tt_width,
)
from .tex import rgb_values, xcolor_rgb
from .tokens import TokenCell

MAX_METRICS = 4
TOP_BARS = {"col": 12, "text": 16}  # bars of the relevance chart
GRAPH_ROWS = {"col": 14, "text": 22}  # token positions of the graph figure
HEATMAP_LINES = {"col": 12, "text": 10}  # lines of tokens before the heatmap is an excerpt


# --- the heatmap --------------------------------------------------------------------------------


def _chunks(text: str, limit: int) -> list[str]:
    """A token longer than a line in pieces a line can hold (a box never breaks by itself)."""
    return [text[i : i + limit] for i in range(0, len(text), limit)] or [""]


def _token_boxes(cell: TokenCell, bg: RGB, fg: RGB, limit: int, framed: bool) -> list[str]:
    macro = r"\rgneg" if framed else r"\rgtok"
    out = []
    parts = cell.text.split("\n")
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if last and part == "" and len(parts) > 1:
            break
        pieces = _chunks(part, limit) if part else [""]
        for j, piece in enumerate(pieces):
            shown = tex_text(piece, tokens=True) if piece else ""
            if piece and piece.strip(" ") == "" and len(parts) > 1:
                shown = r"\ " * len(piece)  # indentation after a newline: plain space
            if not last and j == len(pieces) - 1:
                shown += r"$\hookleftarrow$"
            if shown == "" and cell.text == "":
                shown = r"$\emptyset$"
            if shown:
                out.append(rf"{macro}{{{rgb_values(bg)}}}{{{rgb_values(fg)}}}{{{shown}}}%")
        if not last:
            out.append(r"\par")
    return out


def heatmap_window(cells: Sequence[TokenCell], budget: int) -> list[TokenCell | None]:
    """The cells a heatmap shows within ``budget`` characters: all of them when they fit,
    else the end of the input (where the model predicts) and the neighbourhoods of the
    strongest tokens, in input order, ``None`` where tokens are left out."""
    if sum(len(c.display) + 1 for c in cells) <= budget:
        return list(cells)
    from .charts import strongest_tokens

    n = len(cells)
    for around, top, tail in ((6, 8, 30), (4, 6, 20), (2, 4, 12), (1, 3, 8), (0, 3, 4)):
        keep = set(range(max(0, n - tail), n))
        for c in strongest_tokens(cells, top):
            keep.update(range(max(0, c.position - around), min(n, c.position + around + 1)))
        if sum(len(cells[i].display) + 1 for i in keep) + 8 * len(keep) // 10 <= budget:
            break
    out: list[TokenCell | None] = []
    for i in range(n):
        if i in keep:
            out.append(cells[i])
        elif out and out[-1] is not None or not out:
            out.append(None)
    return out


def _colour_bar(width: float, scale: float, settings: FigureSettings, greyscale: bool) -> str:
    """A colour bar under the heatmap: the map from -max|R| to +max|R| (greyscale: 0 to
    max|R|), ticks with their values, the sides named."""
    bar_w = min(200.0, 0.62 * width)
    steps = 40
    x0 = (width - bar_w) / 2
    lines = [
        r"\begin{tikzpicture}[x=1bp,y=1bp,font=\normalfont\rgsmall]",
        rf"\useasboundingbox (0,-26) rectangle ({width:.2f},8);",
    ]
    for i in range(steps):
        t = (i + 0.5) / steps
        value = t if greyscale else 2 * t - 1
        color = grey(value) if greyscale else diverging(value, settings)
        lines.append(
            rf"\fill[color={xcolor_rgb(color)}] "
            rf"({x0 + i * bar_w / steps:.2f},0) rectangle ({x0 + (i + 1) * bar_w / steps + 0.05:.2f},6);"
        )
    lines.append(rf"\draw[rgaxis,line width=0.4pt] ({x0:.2f},0) rectangle ({x0 + bar_w:.2f},6);")
    ticks = (
        [(0.0, 0.0), (0.5, scale / 2), (1.0, scale)]
        if greyscale
        else [(0.0, -scale), (0.5, 0.0), (1.0, scale)]
    )
    for t, value in ticks:
        x = x0 + t * bar_w
        lines.append(rf"\draw[rgaxis,line width=0.4pt] ({x:.2f},0) -- ({x:.2f},-2);")
        label = "$0$" if value == 0 else label_number(value)
        if greyscale and value:
            label = label_number(value).replace("+", "")
        lines.append(
            rf"\node[anchor=north,font=\normalfont\rgsmall,inner sep=1bp] at ({x:.2f},-2) {{{label}}};"
        )
    if greyscale:
        lines.append(
            rf"\node[anchor=north,font=\normalfont\rgsmall,inner sep=1bp] at ({width / 2:.2f},-13) "
            r"{$|R|$; framed: supports the contrast};"
        )
    else:
        lines.append(
            rf"\node[anchor=north east,font=\normalfont\rgsmall,inner sep=1bp] at ({x0 + bar_w / 2 - 8:.2f},-13) "
            r"{$\leftarrow$ contrast};"
        )
        lines.append(
            rf"\node[anchor=north west,font=\normalfont\rgsmall,inner sep=1bp] at ({x0 + bar_w / 2 + 8:.2f},-13) "
            r"{target $\rightarrow$};"
        )
        lines.append(
            rf"\node[anchor=north,font=\normalfont\rgsmall,inner sep=1bp] at ({x0 + bar_w / 2:.2f},-13) {{$R$}};"
        )
    lines.append(r"\end{tikzpicture}")
    return "\n".join(lines)


def heatmap_body(
    cells: Sequence[TokenCell], width: float, settings: FigureSettings, *, greyscale: bool
) -> tuple[str, int]:
    """The tokens as coloured boxes wrapping at ``width``, then the colour bar; returns the
    LaTeX and how many tokens it shows."""
    from .colors import normalisation

    scale = normalisation([c.relevance for c in cells], [c.special for c in cells])
    per_line = max(8, int(width / tt_width(settings)) - 2)
    window = heatmap_window(cells, per_line * HEATMAP_LINES["col" if width < 300 else "text"])
    parts = [
        rf"\begin{{minipage}}[t]{{{width:.2f}bp}}\raggedright\ttfamily\rgnormal"
        r"\setlength{\fboxsep}{0.9pt}\setlength{\fboxrule}{0.5pt}"
    ]
    shown = 0
    for cell in window:
        if cell is None:
            parts.append(r"{\normalfont\rgnormal\textcolor{rgaxis}{[\dots]}}\ %")
            continue
        shown += 1
        intensity = cell.color.intensity
        if cell.special:
            bg, fg = SPECIAL_BG, SPECIAL_FG
        elif greyscale:
            bg = grey(intensity)
            fg = TEXT_LIGHT if abs(intensity) > 0.55 else TEXT_DARK
        else:
            bg = diverging(intensity, settings)
            fg = TEXT_LIGHT if abs(intensity) > 0.55 else TEXT_DARK
        framed = greyscale and not cell.special and cell.relevance < 0
        parts += _token_boxes(cell, bg, fg, per_line - 2, framed)
    parts.append(r"\par\vspace{5bp}")
    if scale > 0:
        parts.append(_colour_bar(width, scale, settings, greyscale))
    else:
        parts.append(r"{\normalfont\rgnormal every non-special token has $R=0$\par}")
    parts.append(r"\end{minipage}")
    return "\n".join(parts), shown


# --- relevance bars -----------------------------------------------------------------------------


def relevance_body(
    cells: Sequence[TokenCell], width: float, settings: FigureSettings, key: str
) -> str:
    """The strongest tokens by |R| as horizontal bars in input order, every bar labelled with
    its position and token."""
    from .charts import strongest_tokens

    top = sorted(strongest_tokens(cells, TOP_BARS[key]), key=lambda c: c.position)
    if not top:
        return r"\rgnormal (no token with a relevance)"
    small = small_size(settings)
    labels, label_w = token_labels([(c.position, c.text) for c in top], width, settings)
    axis_w = width - label_w - 34
    height = len(top) * (small + 4.0)
    pos = [(c.relevance, i) for i, c in enumerate(top) if c.relevance >= 0]
    neg = [(c.relevance, i) for i, c in enumerate(top) if c.relevance < 0]
    lo = min(0.0, *(c.relevance for c in top))
    hi = max(0.0, *(c.relevance for c in top))
    pad = 0.04 * ((hi - lo) or 1.0)
    lines = [
        r"\begin{tikzpicture}",
        r"\begin{axis}[rgaxis, xbar, bar width="
        + f"{min(7.0, small * 0.8):.1f}"
        + r"bp, bar shift=0pt,",
        rf"  y dir=reverse, width={axis_w:.1f}bp, height={height:.1f}bp,",
        rf"  xmin={pgf_number(lo - pad)}, xmax={pgf_number(hi + pad)}, ymin=-0.6, ymax={len(top) - 0.4},",
        r"  axis y line=none, axis x line*=bottom, xmajorgrids, xlabel={relevance $R$},",
        r"  clip=false, max space between ticks=40,",
        r"  legend style={at={(0.5,1.0)}, anchor=south, legend columns=2}, area legend]",
    ]
    if pos:
        lines.append(
            r"\addplot[fill=rgpos, draw=none] coordinates {"
            + " ".join(f"({pgf_number(v)},{i})" for v, i in pos)
            + "};"
        )
        lines.append(r"\addlegendentry{supports target}")
    if neg:
        lines.append(
            r"\addplot[fill=rgneg, draw=none] coordinates {"
            + " ".join(f"({pgf_number(v)},{i})" for v, i in neg)
            + "};"
        )
        lines.append(r"\addlegendentry{supports contrast}")
    lines.append(
        r"\draw[rgaxis, line width=0.4pt] (axis cs:0,-0.6) -- " + f"(axis cs:0,{len(top) - 0.4});"
    )
    for i, label in enumerate(labels):
        lines.append(
            rf"\node[anchor=east, font=\rgsmall\ttfamily, inner sep=1bp] at (axis cs:{pgf_number(lo - pad)},{i}) "
            rf"{{{label}}};"
        )
    lines += [r"\end{axis}", r"\end{tikzpicture}"]
    return "\n".join(lines)


# --- the graph ----------------------------------------------------------------------------------


def _graph_rows(graph: AttributionGraph, edges: list[Edge], limit: int) -> list[int]:
    weight: dict[int, float] = {}
    for e in edges:
        for p in (e.source, e.target):
            weight[p] = weight.get(p, 0.0) + abs(e.weight)
    if not weight:
        for row in graph.node_relevance.tolist():
            for p, v in enumerate(row):
                if v:
                    weight[p] = weight.get(p, 0.0) + abs(float(v))
    return sorted(sorted(weight, key=lambda p: (-weight[p], p))[:limit])


def _layer_ticks(layers: Sequence[str], dx: float, min_gap: float = 18.0) -> list[int]:
    """Indices of the layers that get a label: the embeddings and whole-number layers (not
    "3.mid") at a round step (1, 2, 5, 10, ...) that leaves ``min_gap`` bp between labels."""
    index = {name: i for i, name in enumerate(layers)}
    whole = [int(name) for name in layers if name.isdigit()]
    if not whole:
        step = max(1, math.ceil(min_gap / max(dx, 1e-9)))
        return list(range(0, len(layers), step))
    per_layer = (len(layers) - 1) / max(1, max(whole) - min(whole) + 1) * dx
    step = next((s for s in (1, 2, 5, 10, 20, 50, 100) if s * per_layer >= min_gap), 200)
    picked = [index[str(n)] for n in whole if n % step == 0]
    first = next((i for i, name in enumerate(layers) if not name[:1].isdigit()), None)
    if first is not None and first < (picked[0] if picked else len(layers)):
        if picked and (picked[0] - first) * dx < min_gap:
            picked = picked[1:]
        picked.insert(0, first)
    return picked


def graph_body(result: CaseResult, width: float, settings: FigureSettings, key: str) -> str:
    """The pruned graph: token positions as rows (input order, labelled), layers as columns,
    edges as lines (width ~ |w|), nodes as dots (area ~ |R|), red/blue by sign."""
    graph = result.graph
    assert graph is not None  # figures() draws this figure only for a result with a graph
    layers = list(graph.layers)
    texts = list(result.attribution.token_texts)
    tokens = texts if len(texts) == len(graph.tokens) else list(graph.tokens)
    all_edges = graph.edges()
    relevance = graph.node_relevance.tolist()
    rows = _graph_rows(graph, all_edges, GRAPH_ROWS[key])
    row_of = {p: i for i, p in enumerate(rows)}
    small = small_size(settings)
    labels, label_w = token_labels([(p, str(tokens[p])) for p in rows], width, settings)
    x0 = label_w + 6
    plot_w = width - x0 - 10
    dx = plot_w / max(1, len(layers) - 1)
    dy = small + 3.5
    column = {name: i for i, name in enumerate(layers)}

    def at(layer: str, pos: int) -> tuple[float, float]:
        return x0 + column[layer] * dx, -row_of[pos] * dy

    edges = [e for e in all_edges if e.source in row_of and e.target in row_of]
    max_w = max((abs(e.weight) for e in edges), default=0.0) or 1.0
    max_n = max((abs(v) for row in relevance for v in row), default=0.0) or 1.0
    bottom = -(len(rows) - 1) * dy
    lines = [r"\begin{tikzpicture}[x=1bp,y=1bp]"]
    for i in range(len(rows)):
        y = -i * dy
        lines.append(
            rf"\draw[rggrid, line width=0.3pt] ({x0:.2f},{y:.2f}) -- ({x0 + plot_w:.2f},{y:.2f});"
        )
        lines.append(
            rf"\node[anchor=east, font=\rgsmall\ttfamily, inner sep=1bp] at ({x0 - 4:.2f},{y:.2f}) "
            rf"{{{labels[i]}}};"
        )
    for i in _layer_ticks(layers, dx):
        x = x0 + i * dx
        lines.append(
            rf"\draw[rgaxis, line width=0.4pt] ({x:.2f},{bottom - 5:.2f}) -- ({x:.2f},{bottom - 7:.2f});"
        )
        lines.append(
            rf"\node[anchor=north, font=\rgsmall, inner sep=1bp] at ({x:.2f},{bottom - 7:.2f}) "
            rf"{{{tex_text(shortened(layers[i], 6))}}};"
        )
    lines.append(
        rf"\node[anchor=north, font=\rgnormal, inner sep=1bp] at ({x0 + plot_w / 2:.2f},{bottom - 7 - small - 3:.2f}) "
        r"{layer};"
    )
    for e in sorted(edges, key=lambda e: abs(e.weight)):
        w = e.weight
        x1, y1 = at(e.source_layer, e.source)
        x2, y2 = at(e.target_layer, e.target)
        lines.append(
            rf"\draw[color={'rgpos' if w >= 0 else 'rgneg'}, line width={0.25 + 1.8 * abs(w) / max_w:.2f}bp,"
            rf" opacity=0.55, line cap=round] ({x1:.2f},{y1:.2f}) -- ({x2:.2f},{y2:.2f});"
        )
    touched = {(e.source_layer, e.source) for e in edges} | {
        (e.target_layer, e.target) for e in edges
    }
    r_max = max(1.0, min(dx * 0.6, dy * 0.45, 3.2))
    for layer, row in zip(layers, relevance, strict=True):
        for p in rows:
            v = float(row[p])
            if v == 0 or (touched and (layer, p) not in touched):
                continue
            x, y = at(layer, p)
            radius = 0.5 + (r_max - 0.5) * math.sqrt(abs(v) / max_n)
            lines.append(
                rf"\fill[color={'rgpos' if v >= 0 else 'rgneg'}, opacity=0.9] ({x:.2f},{y:.2f}) circle ({radius:.2f}bp);"
            )
    lines.append(r"\end{tikzpicture}")
    return "\n".join(lines)


# --- deletion curves ----------------------------------------------------------------------------


def faithfulness_body(result: CaseResult, width: float, settings: FigureSettings, key: str) -> str:
    assert result.faithfulness is not None  # case_figures draws this only for a flip test
    curves = result.faithfulness.curves
    names = [n for n in curves if any(v is not None for v in curves[n])]
    axis_w = width - 4.5 * settings.font_size - 10
    axis_h = axis_w * (0.55 if key == "col" else 0.32)
    lines = [
        r"\begin{tikzpicture}",
        rf"\begin{{axis}}[rgaxis, width={axis_w:.1f}bp, height={axis_h:.1f}bp,",
        r"  xlabel={tokens masked $k$}, ylabel={explained value $f$}, xmin=0,",
        r"  ymajorgrids, extra y ticks={0}, extra y tick labels={},",
        r"  extra y tick style={grid=major, major grid style={rgaxis, dashed, line width=0.5pt}},",
        r"  rglegend, legend columns=" + ("2" if key == "col" else "4") + ",",
        r"  mark size=1.3bp, max space between ticks=40]",
    ]
    for name in names:
        label, color, style = ORDERINGS.get(name, (name.replace("_", " "), "black", "solid"))
        points = [(k, float(v)) for k, v in enumerate(curves[name]) if v is not None]
        lines.append(
            rf"\addplot[color={color}, {style}, mark options={{solid}}] coordinates {{"
            + " ".join(f"({k},{pgf_number(v)})" for k, v in points)
            + "};"
        )
        lines.append(rf"\addlegendentry{{{label if name in ORDERINGS else tex_text(label)}}}")
    lines += [r"\end{axis}", r"\end{tikzpicture}"]
    return "\n".join(lines)


# --- graph metrics ------------------------------------------------------------------------------


def chosen_metrics(rows: Sequence[LayerMetrics]) -> list[str]:
    """Up to :data:`MAX_METRICS` numeric metrics: the readable ones first, else any."""
    numeric = [
        k
        for k in METRIC_NAMES
        if not isinstance(getattr(rows[0], k), bool)
        and isinstance(getattr(rows[0], k), int | float)
    ]
    preferred = [k for k in METRICS if k in numeric]
    return [*preferred, *(k for k in numeric if k not in preferred)][:MAX_METRICS]


def metrics_body(result: CaseResult, width: float, settings: FigureSettings, key: str) -> str:
    rows = result.metrics
    names = chosen_metrics(rows)
    layers = [r.layer for r in rows]
    columns = min(len(names), 2 if key == "col" else 4)
    grid_rows = math.ceil(len(names) / columns)
    small = small_size(settings)
    panel_w = (width - columns * 4.2 * small - (columns - 1) * 10) / columns
    panel_h = panel_w * 0.55
    ticks = _layer_ticks(layers, panel_w / max(1, len(layers) - 1), min_gap=4 * small)
    lines = [
        r"\begin{tikzpicture}",
        r"\begin{groupplot}[group style={group size="
        + f"{columns} by {grid_rows}, horizontal sep={4.2 * small + 10:.1f}bp, vertical sep={3.5 * small:.1f}bp"
        + r"}, rgaxis,",
        rf"  width={panel_w:.1f}bp, height={panel_h:.1f}bp, xmin=0, xmax={max(1, len(layers) - 1)},",
        "  xtick={"
        + ",".join(str(i) for i in ticks)
        + "}, xticklabels={"
        + ",".join("{" + tex_text(shortened(layers[i], 6)) + "}" for i in ticks)
        + "},",
        r"  ymajorgrids, max space between ticks=30, yticklabel style={/pgf/number format/precision=2},",
        r"  every axis title/.style={at={(0,1)}, anchor=south west, font=\rgnormal, inner sep=2bp}]",
    ]
    for name in names:
        label = METRICS.get(name, tex_text(name.replace("_", " ")))
        points = [
            (i, float(getattr(r, name)))
            for i, r in enumerate(rows)
            if math.isfinite(float(getattr(r, name)))
        ]
        lines.append(rf"\nextgroupplot[title={{{label}}}]")
        lines.append(
            r"\addplot[color=rgpos, mark=none] coordinates {"
            + " ".join(f"({i},{pgf_number(v)})" for i, v in points)
            + "};"
        )
    lines.append(r"\end{groupplot}")
    lines.append(r"\end{tikzpicture}")
    return "\n".join(lines)
