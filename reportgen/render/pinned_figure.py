"""The pinned subgraph as a vector figure for a paper: a standalone TikZ ``.tex`` and its PDF,
exactly one column (3.25 in) or the text width (6.75 in) wide, in the dossier's colours.

The nodes are the case file's ``[graph] pinned`` nodes (and the nodes of its ``supernodes``),
carried by the result's graph metadata. Layers run bottom to top, token positions left to right.
A supernode is drawn as one labelled box at the centre of its members, with their summed
relevance; edges are the pruned graph's edges between pinned nodes, summed between drawn units
(an edge inside a supernode is left out). Tokens and labels are untrusted text: every string
goes through ``escape_latex`` and pdflatex runs with ``-no-shell-escape`` (``compile_tex``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ..results import CaseResult
from .colors import NEGATIVE, POSITIVE, SPECIAL_FG
from .tex import rgb_values

#: the figure widths, in inches: a column and the text width of a two-column paper
WIDTHS = {"column": 3.25, "text": 6.75}
_ROW_IN = 0.5  # vertical distance between drawn layers
_LEFT_IN = 0.45  # room for the layer labels


@dataclass(frozen=True)
class Unit:
    """One drawn thing: a pinned node, or a supernode standing for its members."""

    key: str
    label: str  # a supernode's label ("" for a node)
    members: tuple[tuple[str, int], ...]
    relevance: float
    x: float  # column, may be fractional for a supernode
    y: float  # row


def pinned_units(result: CaseResult) -> tuple[list[Unit], dict[tuple[int, int], float]] | None:
    """The units to draw and the summed edge weights between them (by unit index); None when
    the result pins nothing."""
    graph = result.graph
    meta = graph.meta if graph is not None else {}
    pinned = [(str(layer), int(pos)) for layer, pos in meta.get("pinned") or []]
    if graph is None or not pinned:
        return None
    layer_of = {name: i for i, name in enumerate(graph.layers)}
    pinned = [node for node in pinned if node[0] in layer_of and node[1] < graph.n_tokens]
    if not pinned:
        return None
    rows = {name: i for i, name in enumerate(sorted({n[0] for n in pinned}, key=layer_of.get))}
    columns = {pos: i for i, pos in enumerate(sorted({n[1] for n in pinned}))}

    def relevance(node: tuple[str, int]) -> float:
        return float(graph.node_relevance[layer_of[node[0]], node[1]])

    owner: dict[tuple[str, int], int] = {}
    units: list[Unit] = []
    for group in meta.get("supernodes") or []:
        members = tuple((str(layer), int(pos)) for layer, pos in group["nodes"])
        members = tuple(m for m in members if m in pinned)
        if not members:
            continue
        for member in members:
            owner[member] = len(units)
        units.append(
            Unit(
                key=f"s{len(units)}",
                label=str(group["label"]),
                members=members,
                relevance=sum(relevance(m) for m in members),
                x=sum(columns[m[1]] for m in members) / len(members),
                y=sum(rows[m[0]] for m in members) / len(members),
            )
        )
    for node in pinned:
        if node in owner:
            continue
        owner[node] = len(units)
        units.append(
            Unit(f"n{len(units)}", "", (node,), relevance(node), columns[node[1]], rows[node[0]])
        )
    edges: dict[tuple[int, int], float] = {}
    for edge in graph.edges():
        a = owner.get((edge.source_layer, edge.source))
        b = owner.get((edge.target_layer, edge.target))
        if a is not None and b is not None and a != b:
            edges[(a, b)] = edges.get((a, b), 0.0) + edge.weight
    return units, edges


def pinned_tikz(result: CaseResult, width_in: float) -> str | None:
    """A standalone LaTeX document: the pinned subgraph, exactly ``width_in`` inches wide (the
    drawing is laid out for that width, then scaled to it exactly)."""
    from .tex import escape_latex

    found = pinned_units(result)
    if found is None:
        return None
    units, edges = found
    graph = result.graph
    assert graph is not None
    tokens = list(graph.tokens)
    att = result.attribution
    if len(att.token_texts) == len(tokens):
        tokens = list(att.token_texts)
    columns = sorted({pos for u in units for _, pos in u.members})
    rows = sorted({layer for u in units for layer, _ in u.members}, key=graph.layers.index)
    dx = (width_in - _LEFT_IN - 0.2) / max(1, len(columns) - 1)
    dx = min(dx, 1.1)

    def at(unit: Unit) -> tuple[float, float]:
        return unit.x * dx, unit.y * _ROW_IN

    max_r = max((abs(u.relevance) for u in units), default=0.0) or 1.0
    max_w = max((abs(w) for w in edges.values()), default=0.0) or 1.0
    lines = [
        r"\begin{tikzpicture}[x=1in,y=1in]",
        rf"\definecolor{{rgpos}}{{RGB}}{{{rgb_values(POSITIVE)}}}",
        rf"\definecolor{{rgneg}}{{RGB}}{{{rgb_values(NEGATIVE)}}}",
        rf"\definecolor{{rgaxis}}{{RGB}}{{{rgb_values(SPECIAL_FG)}}}",
    ]
    for i, layer in enumerate(rows):
        lines.append(
            rf"\node[anchor=east,font=\scriptsize\sffamily,text=rgaxis] at (-0.15,{i * _ROW_IN:.3f})"
            rf" {{{escape_latex('layer ' + layer if layer != 'emb' else 'emb')}}};"
        )
    for i, pos in enumerate(columns):
        label = escape_latex(f"{pos} {tokens[pos]}", visible_whitespace=True)
        lines.append(
            rf"\node[anchor=east,rotate=45,font=\scriptsize\ttfamily,text=rgaxis] "
            rf"at ({i * dx:.3f},-0.2) {{{label}}};"
        )
    for (a, b), w in sorted(edges.items(), key=lambda item: abs(item[1])):
        (x1, y1), (x2, y2) = at(units[a]), at(units[b])
        color = "rgpos" if w >= 0 else "rgneg"
        width = 0.4 + 2.6 * abs(w) / max_w
        lines.append(
            rf"\draw[color={color},line width={width:.2f}pt,opacity=0.65,line cap=round] "
            rf"({x1:.3f},{y1:.3f}) -- ({x2:.3f},{y2:.3f});"
        )
    for unit in units:
        x, y = at(unit)
        color = "rgpos" if unit.relevance >= 0 else "rgneg"
        if unit.label:
            text = (
                escape_latex(unit.label) + rf"\\[-1pt]{{\tiny $\Sigma R = {unit.relevance:+.3g}$}}"
            )
            lines.append(
                rf"\node[draw={color},fill={color}!12,rounded corners=2pt,line width=0.8pt,"
                rf"inner sep=2pt,align=center,font=\scriptsize\sffamily] at ({x:.3f},{y:.3f}) "
                rf"{{{text}}};"
            )
        else:
            radius = 0.025 + 0.06 * math.sqrt(abs(unit.relevance) / max_r)
            lines.append(rf"\fill[color={color}] ({x:.3f},{y:.3f}) circle ({radius:.3f});")
    lines.append(r"\end{tikzpicture}")
    body = "\n".join(lines)
    return "\n".join(
        [
            r"\documentclass[border=0pt]{standalone}",
            r"\usepackage[T1]{fontenc}",
            r"\usepackage[utf8]{inputenc}",
            r"\usepackage{lmodern}",
            r"\usepackage{textcomp}",
            r"\usepackage{xcolor}",
            r"\usepackage{graphicx}",
            r"\usepackage{tikz}",
            r"\newsavebox{\rgfigure}",
            r"\begin{document}",
            r"\sbox{\rgfigure}{%",
            body + "}%",
            # the page is exactly the width: a wider drawing is scaled down to it, a narrower
            # one is centred at its own size (its text stays at the paper's size); the
            # explorer's TikZ export writes the same wrapper
            rf"\makebox[{width_in}in]{{\ifdim\wd\rgfigure>{width_in}in"
            rf"\resizebox{{{width_in}in}}{{!}}{{\usebox{{\rgfigure}}}}"
            r"\else\usebox{\rgfigure}\fi}%",
            r"\end{document}",
            "",
        ]
    )


def write_pinned_figures(result: CaseResult, out_dir: Path, *, compile_pdf: bool) -> list[Path]:
    """``<id>-pinned-column.tex`` and ``<id>-pinned-text.tex`` (and their PDFs when
    ``compile_pdf``) in ``out_dir``; nothing when the result pins nothing."""
    from .tex import compile_tex

    written: list[Path] = []
    for name, width in WIDTHS.items():
        document = pinned_tikz(result, width)
        if document is None:
            return []
        tex = Path(out_dir) / f"{result.case_id}-pinned-{name}.tex"
        tex.write_text(document, encoding="utf-8")
        written.append(tex)
        if compile_pdf:
            written.append(compile_tex(tex, result.case_id))
    return written
