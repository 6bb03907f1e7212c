"""Paper figures: every figure of a case typeset by LaTeX itself, at the venue's widths.

For each case this writes, into its figure folder, one PDF per figure and width,
``<id>-<figure>-col.pdf`` (column width) and ``<id>-<figure>-text.pdf`` (text width): the token
heatmap with its colour bar (and a greyscale-safe variant), the strongest tokens' relevance bars,
the pruned graph (token x layer), the deletion curves and a few graph metrics. They are drawn with
TikZ/pgfplots in the document's fonts (Latin Modern unless the project file's ``[figures]`` names
another), at the exact printed width, so their text is ``font_size`` pt in the paper.

All figures of a case are pages of ONE pdflatex run (each page as wide as its figure, as the
``standalone`` class does it), split into files by ``pdfseparate``. Beside them ``figures.tex``
holds one ``figure`` environment per figure that includes the PDFs, so a paper needs only
``graphicx``; its labels carry the case id, so any number of cases' files can be ``\\input``
into one document, which compiles on the first run.

Tokens are untrusted: every string goes through :func:`reportgen.render.tex.escape_latex`,
and pdflatex runs with ``-no-shell-escape``."""

from __future__ import annotations

import math
import shutil
import subprocess
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from ..graph.types import AttributionGraph, Edge
from ..project import FIGURE_COLORMAPS, FIGURE_FONTS, FigureSettings
from ..results import METRIC_NAMES, CaseResult, LayerMetrics
from .colors import SPECIAL_BG, SPECIAL_FG, TEXT_DARK, TEXT_LIGHT, WHITE
from .tokens import TokenCell, token_cells

RGB = tuple[int, int, int]
WIDTHS = ("col", "text")
WIDTH_WORDS = {"col": "column width", "text": "text width"}
FIGURES_TEX = "figures.tex"
FIGURES_ZIP = "figures.zip"
PREAMBLE_LINE = r"% preamble: \usepackage{graphicx}"

#: the deletion curves' orderings as a reader names them, with their colour and line style
ORDERINGS: dict[str, tuple[str, str, str]] = {
    "attnlrp": ("AttnLRP", "rgpos", "solid, mark=*"),
    "grad_x_input": ("Gradient $\\times$ input", "rgorange", "dashed, mark=square*"),
    "gradient": ("Gradient", "rglight", "densely dotted, mark=triangle*"),
    "random": ("Random order", "rgaxis", "dashdotted, mark=none"),
}
#: graph metrics a reader can read, by preference, with their names in a figure
METRICS: dict[str, str] = {
    "relevance_sum": "relevance in the layer",
    "nodes": "active nodes",
    "gini_relevance": "concentration (Gini of $|R|$)",
    "mean_lookback": "mean look-back (tokens)",
    "verticality": "verticality",
    "local_ratio": "local edges (share)",
}
MAX_METRICS = 4
TOP_BARS = {"col": 12, "text": 16}  # bars of the relevance chart
GRAPH_ROWS = {"col": 14, "text": 22}  # token positions of the graph figure
HEATMAP_LINES = {"col": 12, "text": 10}  # lines of tokens before the heatmap is an excerpt
TT_WIDTH = 0.525  # a monospaced character's width in em (Latin Modern Mono, Courier: 0.6)


# --- text ---------------------------------------------------------------------------------------


def tex_text(text: str, *, tokens: bool = False) -> str:
    """``text`` escaped for LaTeX; a character pdflatex cannot set is a boxed U+XXXX at the
    current size (not ``\\tiny``: every word of a paper figure is at least the small size)."""
    from .tex import escape_latex

    out = escape_latex(text, visible_whitespace=tokens)
    return out.replace(r"\fbox{\tiny U+", r"\fbox{U+")


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 2] + ".."


def token_text(text: str, limit: int) -> str:
    """A token as LaTeX, at most ``limit`` characters of it."""
    if len(text) <= limit:
        return tex_text(text, tokens=True)
    return tex_text(text[: limit - 1], tokens=True) + r"\dots"


def label_chars(text: str, limit: int) -> int:
    """How many monospaced characters :func:`token_text` takes, a little generously: a boxed
    U+XXXX is ~8, a newline arrow 2, the dots of a cut token 3."""
    from .tex import typesettable as _typesettable

    shown = text[: limit - 1] if len(text) > limit else text
    width = sum(1 if _typesettable(ch) else 2 if ch in "\n\t" else 8 for ch in shown)
    return max(1, width + (3 if len(text) > limit else 0))


def token_labels(
    items: Sequence[tuple[int, str]], width: float, settings: FigureSettings
) -> tuple[list[str], float]:
    """Labels "42 Red" for (position, token) pairs and their width in bp: tokens cut to 12
    characters, or fewer until the labels take at most 40 % of ``width``."""
    for limit in (12, 10, 8, 6, 4, 2):
        chars = max((len(str(p)) + 1 + label_chars(t, limit) for p, t in items), default=4)
        if chars * tt_width(settings) <= 0.4 * width:
            break
    labels = [f"{p}\\,{token_text(t, limit)}" for p, t in items]
    return labels, chars * tt_width(settings)


def tt_width(settings: FigureSettings) -> float:
    """A monospaced character's width in bp at the font size (Latin Modern Mono 0.525 em,
    Courier 0.6 em)."""
    return (TT_WIDTH if settings.font == "lmodern" else 0.6) * settings.font_size


def _num(value: float) -> str:
    """A coordinate pgfplots reads: plain decimal, no exponent it could misparse."""
    if not math.isfinite(value):
        return "0"
    text = f"{value:.6g}"
    return f"{value:.12f}".rstrip("0").rstrip(".") if "e" in text else text


def _fmt(value: float) -> str:
    """A number as a reader sees it in a label (minus as a real minus sign)."""
    text = f"{value:+.2g}" if abs(value) >= 0.01 or value == 0 else f"{value:+.1e}"
    return "$" + text.replace("e", r"\mathrm{e}") + "$"


# --- colours ------------------------------------------------------------------------------------


def _mix(color: RGB, amount: float) -> RGB:
    return tuple(round(w + (c - w) * amount) for c, w in zip(color, WHITE, strict=True))  # type: ignore[return-value]


def diverging(intensity: float, settings: FigureSettings) -> RGB:
    """The colour of a signed intensity in [-1, 1]: white at 0, the map's ends at +-1."""
    positive, negative = FIGURE_COLORMAPS[settings.colormap]
    return _mix(positive if intensity >= 0 else negative, min(1.0, abs(intensity)))


def grey(intensity: float) -> RGB:
    """The greyscale-safe shade of |intensity|: white at 0, dark grey at 1."""
    level = round(255 - 200 * min(1.0, abs(intensity)))
    return (level, level, level)


def _rgb(color: RGB) -> str:
    return "{},{},{}".format(*color)


# --- settings -----------------------------------------------------------------------------------


def widths(settings: FigureSettings) -> dict[str, float]:
    return {"col": settings.column_width, "text": settings.text_width}


def small_size(settings: FigureSettings) -> float:
    """Tick and token labels: the font size too. pdftotext measures a word of Latin Modern at
    about 0.82 of its size, so 9 pt (the default) is the smallest that reads as >= 7 pt."""
    return settings.font_size


def preamble(settings: FigureSettings) -> str:
    """The compile document's preamble: the font, TikZ/pgfplots, the colours and the page
    macro that ships each figure as a page exactly its width."""
    positive, negative = FIGURE_COLORMAPS[settings.colormap]
    size, small = settings.font_size, small_size(settings)
    return "\n".join(
        [
            r"\documentclass{article}",
            FIGURE_FONTS[settings.font][0],
            r"\usepackage{graphicx}",
            r"\usepackage{xcolor}",
            r"\usepackage{tikz}",
            r"\usepackage{pgfplots}",
            r"\usepgfplotslibrary{groupplots}",
            r"\pgfplotsset{compat=1.16}",
            r"\pagestyle{empty}",
            r"\hoffset=-1in \voffset=-1in \parindent=0pt \parskip=0pt",
            rf"\definecolor{{rgpos}}{{RGB}}{{{_rgb(positive)}}}",
            rf"\definecolor{{rgneg}}{{RGB}}{{{_rgb(negative)}}}",
            rf"\definecolor{{rgaxis}}{{RGB}}{{{_rgb(SPECIAL_FG)}}}",
            rf"\definecolor{{rgspecial}}{{RGB}}{{{_rgb(SPECIAL_BG)}}}",
            r"\definecolor{rgorange}{RGB}{230,97,1}",
            r"\definecolor{rglight}{RGB}{67,147,195}",
            r"\definecolor{rggrid}{RGB}{225,225,225}",
            rf"\newcommand{{\rgnormal}}{{\fontsize{{{size:g}}}{{{size * 1.2:.3g}}}\selectfont}}",
            rf"\newcommand{{\rgsize}}{{{size:g}bp}}",
            rf"\newcommand{{\rgsmall}}{{\fontsize{{{small:g}}}{{{small * 1.2:.3g}}}\selectfont}}",
            r"\newcommand{\rgtok}[3]{\colorbox[RGB]{#1}{\textcolor[RGB]{#2}{\strut #3}}\allowbreak}",
            r"\newcommand{\rgneg}[3]{\fcolorbox[RGB]{0,0,0}{#1}{\textcolor[RGB]{#2}{\strut #3}}"
            r"\allowbreak}",
            r"\newsavebox{\rgbox}",
            # each figure is a page of exactly its width: too wide (never by design) it shrinks
            # to fit, with a line in the log; narrower, it is centred
            r"\newcommand{\rgship}[2]{%",
            r"  \ifdim\wd\rgbox>#1\relax\typeout{rg-shrunk: #2 from \the\wd\rgbox}%",
            r"    \sbox{\rgbox}{\resizebox{#1}{!}{\usebox{\rgbox}}}\fi",
            r"  \sbox{\rgbox}{\makebox[#1][c]{\usebox{\rgbox}}}%",
            r"  \pdfpagewidth=\wd\rgbox",
            r"  \pdfpageheight=\dimexpr\ht\rgbox+\dp\rgbox+2bp\relax",
            r"  \shipout\vbox{\kern1bp\hbox{\usebox{\rgbox}}}}",
            r"\pgfplotsset{rgaxis/.style={scale only axis, axis lines*=left,"
            r" tick label style={font=\rgsmall}, label style={font=\rgnormal},"
            r" title style={font=\rgnormal}, legend style={font=\rgsmall, draw=none, fill=none},"
            r" every axis plot/.append style={line width=0.8pt}, tick style={rgaxis},"
            r" axis line style={rgaxis}, grid style={rggrid}, scaled ticks=false,"
            r" ticklabel style={/pgf/number format/fixed, /pgf/number format/precision=3},"
            r" every axis y label/.style={at={(axis description cs:0,1)}, anchor=south west,"
            r" inner sep=0pt, yshift=3bp, font=\rgnormal}}}",
            # the legend over a y label set above the axis
            r"\pgfplotsset{rglegend/.style={legend style={at={(0.5,1)}, anchor=south,"
            r" yshift=\rgsize+6bp, /tikz/every even column/.append style={column sep=5bp}}}}",
        ]
    )


@dataclass(frozen=True)
class Figure:
    """One figure of a paper figure set: a page per width, a caption, the width figures.tex
    includes (``preferred``)."""

    name: str
    caption: str
    bodies: dict[str, str]  # width key -> LaTeX of the page
    preferred: str = "col"


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
                out.append(rf"{macro}{{{_rgb(bg)}}}{{{_rgb(fg)}}}{{{shown}}}%")
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
            rf"\fill[color={{rgb,255:red,{color[0]};green,{color[1]};blue,{color[2]}}}] "
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
        label = "$0$" if value == 0 else _fmt(value)
        if greyscale and value:
            label = _fmt(value).replace("+", "")
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
        rf"  xmin={_num(lo - pad)}, xmax={_num(hi + pad)}, ymin=-0.6, ymax={len(top) - 0.4},",
        r"  axis y line=none, axis x line*=bottom, xmajorgrids, xlabel={relevance $R$},",
        r"  clip=false, max space between ticks=40,",
        r"  legend style={at={(0.5,1.0)}, anchor=south, legend columns=2}, area legend]",
    ]
    if pos:
        lines.append(
            r"\addplot[fill=rgpos, draw=none] coordinates {"
            + " ".join(f"({_num(v)},{i})" for v, i in pos)
            + "};"
        )
        lines.append(r"\addlegendentry{supports target}")
    if neg:
        lines.append(
            r"\addplot[fill=rgneg, draw=none] coordinates {"
            + " ".join(f"({_num(v)},{i})" for v, i in neg)
            + "};"
        )
        lines.append(r"\addlegendentry{supports contrast}")
    lines.append(
        r"\draw[rgaxis, line width=0.4pt] (axis cs:0,-0.6) -- " + f"(axis cs:0,{len(top) - 0.4});"
    )
    for i, label in enumerate(labels):
        lines.append(
            rf"\node[anchor=east, font=\rgsmall\ttfamily, inner sep=1bp] at (axis cs:{_num(lo - pad)},{i}) "
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
            rf"{{{tex_text(_short(layers[i], 6))}}};"
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
            + " ".join(f"({k},{_num(v)})" for k, v in points)
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
        + ",".join("{" + tex_text(_short(layers[i], 6)) + "}" for i in ticks)
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
            + " ".join(f"({i},{_num(v)})" for i, v in points)
            + "};"
        )
    lines.append(r"\end{groupplot}")
    lines.append(r"\end{tikzpicture}")
    return "\n".join(lines)


# --- the figure set -----------------------------------------------------------------------------


def case_figures(
    result: CaseResult, settings: FigureSettings, cells: Sequence[TokenCell] | None = None
) -> list[Figure]:
    """Every paper figure the case has data for, in the order of the dossier (``cells``: the
    result's token cells when the caller has them)."""
    if cells is None:
        cells = token_cells(result.attribution)
    att = result.attribution
    sizes = widths(settings)
    what = (
        f"the explained value $f$ = logit(\\texttt{{{tex_text(att.target.text, tokens=True)}}})"
        + (
            f" $-$ logit(\\texttt{{{tex_text(att.contrast.text, tokens=True)}}})"
            if att.contrast
            else ""
        )
    )
    figures = []
    bodies, shown = {}, {}
    grey_bodies = {}
    for key, w in sizes.items():
        bodies[key], shown[key] = heatmap_body(cells, w, settings, greyscale=False)
        grey_bodies[key], _ = heatmap_body(cells, w, settings, greyscale=True)
    excerpt = (
        f" Excerpt: {shown['col']} of {len(cells)} tokens (the end of the input and the "
        "strongest tokens' neighbourhoods; [\\dots] marks a gap)."
        if shown["col"] < len(cells)
        else ""
    )
    model = tex_text(result.model)
    base = (
        f"Input relevance $R$ of each token for {what} on \\texttt{{{model}}}: red pushes "
        "towards the target, blue towards the contrast; intensity relative to the largest "
        "$|R|$ of a non-special token (special tokens grey)."
    )
    base = base.replace("red pushes", _side_words(settings, "pushes"))
    preferred = "text" if shown["col"] < shown["text"] or len(cells) > 60 else "col"
    figures.append(Figure("heatmap", base + excerpt, bodies, preferred))
    figures.append(
        Figure(
            "heatmap-grey",
            "Input relevance as in the heatmap, greyscale-safe: shade by $|R|$, tokens that "
            "support the contrast framed." + excerpt,
            grey_bodies,
            preferred,
        )
    )
    from .charts import strongest_tokens

    if strongest_tokens(cells, 1):
        figures.append(
            Figure(
                "relevance",
                f"The tokens with the largest $|R|$ (position and token, in input order) for {what}.",
                {k: relevance_body(cells, w, settings, k) for k, w in sizes.items()},
            )
        )
    if result.graph is not None and len(result.graph.layers) > 1:
        figures.append(
            Figure(
                "graph",
                "Attribution graph (pruned): token positions with the largest edge weight as "
                "rows in input order, layers left to right; line width $\\propto |w|$, dot "
                "area $\\propto |R|$, " + _side_words(settings, "positive") + ".",
                {k: graph_body(result, w, settings, k) for k, w in sizes.items()},
                "text",
            )
        )
    curves = result.faithfulness.curves if result.faithfulness is not None else {}
    if any(any(v is not None for v in c) for c in curves.values()):
        figures.append(
            Figure(
                "faithfulness",
                "Deletion curves: $f$ after masking the $k$ most relevant tokens of each "
                "ordering; below the dashed line the model's preference has flipped.",
                {k: faithfulness_body(result, w, settings, k) for k, w in sizes.items()},
            )
        )
    if result.metrics and chosen_metrics(result.metrics):
        figures.append(
            Figure(
                "metrics",
                "Graph metrics per layer of the pruned graph.",
                {k: metrics_body(result, w, settings, k) for k, w in sizes.items()},
            )
        )
    return figures


def _side_words(settings: FigureSettings, kind: str) -> str:
    names = {
        "RdBu": ("red", "blue"),
        "PuOr": ("orange", "purple"),
        "BrBG": ("brown", "teal"),
        "PiYG": ("pink", "green"),
    }[settings.colormap]
    if kind == "pushes":
        return f"{names[0]} pushes"
    return f"{names[0]} positive, {names[1]} negative"


def file_name(prefix: str, figure: str, key: str) -> str:
    return f"{prefix}-{figure}-{key}.pdf"


def figures_tex(
    prefix: str,
    title: str,
    figures: Sequence[Figure],
    sizes: dict[str, float],
    *,
    label_prefix: str | None = None,
) -> str:
    """``figures.tex``: one figure environment per figure, including its prebuilt PDF at its
    preferred width (a text-width figure as ``figure*``); labels ``fig:<prefix>:<figure>``."""
    label_prefix = label_prefix or prefix
    lines = [
        PREAMBLE_LINE,
        f"% Paper figures of {title} (reportgen). Input this file where the figures",
        "% go; every PDF beside it is one figure at its printed width (-col: column, -text: text",
        "% width). Labels: " + ", ".join(f"fig:{label_prefix}:{f.name}" for f in figures),
    ]
    for fig in figures:
        env = "figure*" if fig.preferred == "text" else "figure"
        other = "text" if fig.preferred == "col" else "col"
        width = f"{sizes[fig.preferred]:.3f}bp"
        lines += [
            "",
            rf"\begin{{{env}}}[tbp]",
            r"\centering",
            # at its printed size; only a narrower column than the figure's scales it down
            rf"\resizebox{{\ifdim\linewidth<{width}\linewidth\else {width}\fi}}{{!}}"
            rf"{{\includegraphics{{{_graphic(file_name(prefix, fig.name, fig.preferred))}}}}}",
            f"% at {WIDTH_WORDS[other]}: \\includegraphics{{{_graphic(file_name(prefix, fig.name, other))}}}",
            rf"\caption{{{fig.caption}}}",
            rf"\label{{fig:{label_prefix}:{fig.name}}}",
            rf"\end{{{env}}}",
        ]
    return "\n".join(lines) + "\n"


def _graphic(name: str) -> str:
    """A file name graphicx reads whatever dots it holds: ``{a.b-x}.pdf``."""
    stem = name[: -len(".pdf")]
    return f"{{{stem}}}.pdf" if "." in stem else name


@cache
def font_missing(font: str) -> str | None:
    """Why the ``[figures]`` font cannot be used by this TeX installation, or None."""
    tfm = FIGURE_FONTS[font][2]
    kpsewhich = shutil.which("kpsewhich")
    if kpsewhich is None:
        return None  # cannot tell; pdflatex will say
    found = subprocess.run([kpsewhich, tfm], capture_output=True, text=True, timeout=30).stdout
    if found.strip():
        return None
    return (
        f"the [figures] font {font!r} is not installed for pdflatex ({tfm} not found; "
        'install texlive-fonts-recommended, or use font = "lmodern")'
    )


def compile_document(tex_source: str, out_dir: Path, stem: str, case_id: str) -> Path:
    """Write ``<stem>.tex`` and run pdflatex once on it (see :func:`latex.compile_tex`)."""
    from . import tex as latex

    tex = out_dir / f"{stem}.tex"
    tex.write_text(tex_source, encoding="utf-8")
    pdf = latex.compile_tex(tex, case_id, shutil.which("pdflatex") or "pdflatex")
    tex.unlink(missing_ok=True)
    return pdf


def split_pages(pdf: Path, names: Sequence[str]) -> None:
    """Page i of ``pdf`` becomes ``names[i]`` beside it (pdfseparate)."""
    tool = shutil.which("pdfseparate")
    if tool is None:
        from .tex import LatexError

        raise LatexError("pdfseparate (poppler-utils) is needed to split the paper figures")
    pattern = pdf.with_name(f"{pdf.stem}-page-%d.pdf")
    subprocess.run([tool, str(pdf), str(pattern)], check=True, capture_output=True, timeout=120)
    for i, name in enumerate(names, start=1):
        pdf.with_name(f"{pdf.stem}-page-{i}.pdf").replace(pdf.with_name(name))
    pdf.unlink()


def build_pages(
    figures: Sequence[Figure], settings: FigureSettings, prefix: str
) -> tuple[str, list[str]]:
    """The one compile document (a page per figure and width) and the file of each page."""
    sizes = widths(settings)
    body, names = [], []
    for fig in figures:
        for key in WIDTHS:
            body += [r"\begin{lrbox}{\rgbox}\rgnormal", fig.bodies[key], r"\end{lrbox}"]
            body.append(rf"\rgship{{{sizes[key]:.3f}bp}}{{{fig.name}-{key}}}")
            names.append(file_name(prefix, fig.name, key))
    source = "\n".join([preamble(settings), r"\begin{document}", *body, r"\end{document}"])
    return source + "\n", names


def write_figure_set(
    figures: Sequence[Figure],
    out_dir: Path,
    prefix: str,
    title: str,
    settings: FigureSettings,
    *,
    case_id: str,
    compile_pdf: bool = True,
) -> list[str]:
    """Compile ``figures`` into one PDF per figure and width (one pdflatex run), write
    ``figures.tex`` and ``figures.zip``; returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    source, names = build_pages(figures, settings, prefix)
    tex = figures_tex(prefix, title, figures, widths(settings))
    (out_dir / FIGURES_TEX).write_text(tex, encoding="utf-8")
    written = [FIGURES_TEX]
    if compile_pdf:
        problem = font_missing(settings.font)
        if problem is not None:
            from .tex import LatexError

            raise LatexError(problem)
        pdf = compile_document(source, out_dir, f"{prefix}-paper", case_id)
        split_pages(pdf, names)
        written += names
    else:
        (out_dir / f"{prefix}-paper.tex").write_text(source, encoding="utf-8")
    with zipfile.ZipFile(out_dir / FIGURES_ZIP, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in written:
            info = zipfile.ZipInfo(f"{prefix}-figures/{name}", date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, (out_dir / name).read_bytes())
    return [*written, FIGURES_ZIP]


def render_paper_figures(
    result: CaseResult,
    out_dir: Path,
    settings: FigureSettings | None = None,
    *,
    compile_pdf: bool = True,
    cells: Sequence[TokenCell] | None = None,
) -> list[str]:
    """The case's paper figures into ``out_dir`` (see the module docstring); ``cells``: the
    result's token cells when the caller has them (``dossier``)."""
    from .names import check_case_id

    case_id = check_case_id(result.case_id)
    settings = settings or FigureSettings()
    figures = case_figures(result, settings, cells)
    return write_figure_set(
        figures,
        Path(out_dir),
        case_id,
        f"case {case_id}",  # in a TeX comment: the safe id, never free text
        settings,
        case_id=case_id,
        compile_pdf=compile_pdf,
    )


FIGURE_WORDS = {
    "heatmap": "token heatmap",
    "heatmap-grey": "token heatmap, greyscale-safe",
    "relevance": "relevance of the strongest tokens",
    "graph": "attribution graph",
    "faithfulness": "deletion curves",
    "metrics": "graph metrics",
    "funnel": "outcomes per benchmark",
    "patterns": "failure patterns per benchmark",
    "profiles": "graph-metric profiles per group",
    "persistence": "weaker to stronger model",
}


def figure_downloads(folder: Path, href: str) -> list[dict[str, str]]:
    """The downloads of a paper figure set in ``folder`` (linked as ``href/<file>``):
    figures.zip, figures.tex, then every figure PDF, in the order figures.tex names them."""
    if not (folder / FIGURES_TEX).is_file():
        return []
    out = []
    if (folder / FIGURES_ZIP).is_file():
        out.append(
            {
                "href": f"{href}/{FIGURES_ZIP}",
                "label": FIGURES_ZIP,
                "note": "every paper figure (PDF, column and text width) with figures.tex",
            }
        )
    out.append(
        {
            "href": f"{href}/{FIGURES_TEX}",
            "label": FIGURES_TEX,
            "note": "\\input it into a paper: one figure environment per figure",
        }
    )
    names = {p.name for p in folder.glob("*.pdf")}
    for kind, words in FIGURE_WORDS.items():
        for key in WIDTHS:
            suffix = f"-{kind}-{key}.pdf"
            for name in sorted(n for n in names if n.endswith(suffix)):
                out.append(
                    {
                        "href": f"{href}/{name}",
                        "label": name,
                        "note": f"{words}, {WIDTH_WORDS[key]}",
                    }
                )
    return out
