"""Publication figures: a LaTeX/PDF figure set per case, in the web page's colours and numbers.

Writes, into one folder, ``<id>-heatmap.tex`` (tokens as ``\\colorbox``-es), ``<id>-graph.tex``
(a TikZ drawing of the attribution graph), one vector PDF per Altair chart (vl-convert) and
``<id>.tex``, the figure set that includes them all; pdflatex turns each .tex into a PDF beside it.

Tokens are untrusted text: every string goes through :func:`escape_latex`, and pdflatex runs
with ``-no-shell-escape``, so a token such as ``\\write18{...}`` or ``\\input{/etc/passwd}`` is
printed, never executed. Characters pdflatex cannot set (emoji, CJK, ...) become a visible
"U+XXXX" box instead of a failed compile."""

from __future__ import annotations

import math
import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pylatex import Command, Document, Figure, NoEscape, Package, Section

from ..graph.types import AttributionGraph, Edge
from ..results import CaseResult
from . import charts as charts_mod
from .colors import NEGATIVE, POSITIVE, SPECIAL_FG
from .dossier import Dossier, dossier
from .names import check_case_id
from .pinned_figure import write_pinned_figures
from .tex import (  # noqa: F401  (their home is tex; named here for existing users)
    PDFLATEX_FLAGS,
    PDFLATEX_TIMEOUT_S,
    LatexError,
    compile_tex,
    escape_latex,
    placeholder,
    rgb_values,
)
from .tokens import TokenCell

# --- documents --------------------------------------------------------------------------------


def _standalone(path: Path, body: str, *, tikz: bool = False) -> Path:
    doc = Document(
        str(path.with_suffix("")),
        documentclass="standalone",
        document_options=["border=6pt"] if tikz else ["varwidth=16cm", "border=6pt"],
        page_numbers=False,
    )
    doc.packages.append(Package("xcolor"))
    if tikz:
        doc.packages.append(Package("tikz"))
    doc.preamble.append(NoEscape(r"\setlength{\fboxsep}{1.4pt}"))
    doc.preamble.append(
        NoEscape(
            r"\newcommand{\tok}[3]{\colorbox[RGB]{#1}{\textcolor[RGB]{#2}{\strut #3}}\allowbreak}"
        )
    )
    doc.append(NoEscape(body))
    doc.generate_tex()
    return path


PARAGRAPH_TOKENS = 300  # a line of prose longer than this is cut into paragraphs: TeX holds a
# whole paragraph in memory before breaking it into lines, and 10k boxes in one overflow it


def _token_boxes(cell: TokenCell) -> list[str]:
    r"""The boxes of one token, with ``\par`` where the token's text breaks the line: a newline
    inside a token ends the line (↵ at its end) and the indentation after it starts the next
    one as plain space, so code keeps its shape."""
    bg, fg = rgb_values(cell.color.background), rgb_values(cell.color.foreground)

    def box(text: str) -> str:
        if cell.special:
            text = r"\textit{" + text + "}"
        return rf"\tok{{{bg}}}{{{fg}}}{{{text}}}%"

    if "\n" not in cell.text:
        return [box(escape_latex(cell.text, visible_whitespace=True))]
    parts = cell.text.split("\n")
    out = []
    for part in parts[:-1]:
        shown = escape_latex(part, visible_whitespace=True) if part else ""
        out += [box(shown + r"$\hookleftarrow$"), r"\par"]
    last = parts[-1]
    if last and last.strip(" ") == "":
        out.append(box(r"\ " * len(last)))
    elif last:
        out.append(box(escape_latex(last, visible_whitespace=True)))
    return out


def heatmap_body(cells: Sequence[TokenCell]) -> str:
    """The tokens as coloured boxes in lines as the input has them (a paragraph per line, long
    lines cut every :data:`PARAGRAPH_TOKENS` tokens), so it runs over as many pages as needed."""
    parts = [r"{\setlength{\parindent}{0pt}\ttfamily\small"]
    run = 0
    for cell in cells:
        boxes = _token_boxes(cell)
        parts += boxes
        run = 0 if r"\par" in boxes else run + 1
        if run >= PARAGRAPH_TOKENS:
            parts.append(r"\par")
            run = 0
    parts.append(r"\par}")
    return "\n".join(parts)


TALL_FIGURE = 0.75  # share of the text height a tall chart may take
GRAPH_MAX_POSITIONS = 60  # the graph figure shows at most this many token positions
GRAPH_ROWS_FROM = 40  # from this many positions on, tokens are rows and layers columns


def graph_positions(graph: AttributionGraph) -> list[int]:
    """The token positions the graph figure draws: those the pruned edges touch (else those
    with a non-zero node), at most :data:`GRAPH_MAX_POSITIONS`, the heaviest by |weight|."""
    return _position_weights(graph)[0]


def _position_weights(
    graph: AttributionGraph, edges: list[Edge] | None = None
) -> tuple[list[int], int]:
    """(the drawn positions in input order, how many positions the subgraph touches);
    ``edges``: ``graph.edges()`` when the caller has them already."""
    weight: dict[int, float] = {}
    for e in graph.edges() if edges is None else edges:
        for pos in (e.source, e.target):
            weight[pos] = weight.get(pos, 0.0) + abs(e.weight)
    if not weight:
        for row in graph.node_relevance.tolist():
            for pos, value in enumerate(row):
                if value:
                    weight[pos] = weight.get(pos, 0.0) + abs(float(value))
    kept = sorted(weight, key=lambda p: (-weight[p], p))[:GRAPH_MAX_POSITIONS]
    return sorted(kept), len(weight)


def graph_body(result: Any) -> str:
    """TikZ drawing of the pruned graph: nodes at (token, layer), edge width and colour from the
    weight. Only the positions the pruned edges touch get a place (in input order, labelled
    with their position), at most :data:`GRAPH_MAX_POSITIONS` of them, so a 10k-token input
    draws as many as its subgraph has. Few positions: tokens left to right, layers bottom to
    top, like the sentence. From :data:`GRAPH_ROWS_FROM` on, the tokens are rows read top to
    bottom and the layers columns, so the labels stay horizontal and the figure fits a
    portrait page instead of shrinking to a strip."""
    graph = result.graph
    layers = list(graph.layers)
    tokens = list(graph.tokens)
    # the decoded text of each token (" are"), as the heatmap shows it, not the graph's
    # tokenizer strings ("Ġare", "ĊĠĠĠ"), when the attribution matches the graph
    att = getattr(result, "attribution", None)
    if att is not None and len(att.token_texts) == len(tokens):
        tokens = list(att.token_texts)
    all_edges = graph.edges()
    relevance = graph.node_relevance.tolist()
    positions = _position_weights(graph, all_edges)[0]
    column = {pos: i for i, pos in enumerate(positions)}
    rows = len(positions) >= GRAPH_ROWS_FROM
    layer_index = {layer: i for i, layer in enumerate(layers)}
    if rows:
        dx, dy = 0.55, 0.34

        def at(layer: str, pos: int) -> tuple[float, float]:
            return layer_index[layer] * dx, -column[pos] * dy

    else:
        dx, dy = 0.8, 0.7

        def at(layer: str, pos: int) -> tuple[float, float]:
            return column[pos] * dx, layer_index[layer] * dy

    edges = [e for e in all_edges if e.source in column and e.target in column]
    max_w = max((abs(e.weight) for e in edges), default=0.0) or 1.0
    max_n = max((abs(v) for row in relevance for v in row), default=0.0) or 1.0
    lines = [
        r"\begin{tikzpicture}",
        rf"\definecolor{{rgpos}}{{RGB}}{{{rgb_values(POSITIVE)}}}",
        rf"\definecolor{{rgneg}}{{RGB}}{{{rgb_values(NEGATIVE)}}}",
        rf"\definecolor{{rgaxis}}{{RGB}}{{{rgb_values(SPECIAL_FG)}}}",
    ]
    for i, layer in enumerate(layers):
        if rows:
            lines.append(
                rf"\node[anchor=west,rotate=90,font=\tiny\sffamily,text=rgaxis] "
                rf"at ({i * dx:.3f},0.3) {{{escape_latex(layer)}}};"
            )
        else:
            lines.append(
                rf"\node[anchor=east,font=\tiny\sffamily,text=rgaxis] at (-0.3,{i * dy:.3f}) "
                rf"{{{escape_latex(layer)}}};"
            )
    for pos in positions:
        label = escape_latex(f"{pos} {tokens[pos]}", visible_whitespace=True)
        if rows:
            lines.append(
                rf"\node[anchor=east,font=\tiny\ttfamily,text=rgaxis] "
                rf"at (-0.3,{-column[pos] * dy:.3f}) {{{label}}};"
            )
        else:
            lines.append(
                rf"\node[anchor=east,rotate=60,font=\tiny\ttfamily,text=rgaxis] "
                rf"at ({column[pos] * dx:.3f},-0.35) {{{label}}};"
            )
    for e in sorted(edges, key=lambda e: abs(e.weight)):
        w = e.weight
        width = 0.3 + (2.4 if rows else 3.7) * abs(w) / max_w
        x1, y1 = at(e.source_layer, e.source)
        x2, y2 = at(e.target_layer, e.target)
        color = "rgpos" if w >= 0 else "rgneg"
        lines.append(
            rf"\draw[color={color},line width={width:.2f}pt,opacity=0.6,line cap=round] "
            rf"({x1:.3f},{y1:.3f}) -- ({x2:.3f},{y2:.3f});"
        )
    # only the nodes the (pruned) edges touch -- a dot for every (layer, token) of a long
    # prompt overflows TeX's main memory in one tikzpicture
    touched = {(e.source_layer, e.source) for e in edges} | {
        (e.target_layer, e.target) for e in edges
    }
    r_max = 0.14 if rows else 0.16
    for layer, row in zip(layers, relevance, strict=True):
        for pos in positions:
            v = float(row[pos])
            if v == 0 or (touched and (layer, pos) not in touched):
                continue
            radius = 0.02 + r_max * math.sqrt(abs(v) / max_n)
            color = "rgpos" if v >= 0 else "rgneg"
            x, y = at(layer, pos)
            lines.append(
                rf"\fill[color={color},opacity=0.85] ({x:.3f},{y:.3f}) circle ({radius:.3f});"
            )
    lines.append(r"\end{tikzpicture}")
    return "\n".join(lines)


def graph_caption(graph: AttributionGraph) -> str:
    """The graph figure's caption, saying how many of the subgraph's positions it shows."""
    shown, touched = _position_weights(graph)
    rows = len(shown) >= GRAPH_ROWS_FROM
    where = (
        "tokens as rows in input order, layers as columns" if rows else "nodes at (token, layer)"
    )
    part = (
        f"the {len(shown)} token positions with the largest total edge weight, of the "
        f"{touched} its edges touch"
        if touched > len(shown)
        else "only the token positions its edges touch"
    )
    return (
        f"Attribution graph (the pruned subgraph; {part}): {where}, edge width "
        r"proportional to $|w|$, red positive, blue negative."
    )


def _figure(doc: Document, pdf_name: str, caption: str, height: float = 0.42) -> None:
    with doc.create(Figure(position="htbp")) as fig:
        fig.append(NoEscape(r"\centering"))
        fig.append(
            NoEscape(
                rf"\includegraphics[max width=\linewidth,max totalheight={height}\textheight]"
                rf"{{{pdf_name}}}"
            )
        )
        fig.add_caption(NoEscape(caption))


HEATMAP_CAPTION = (
    "Input relevance: red supports the target, blue the contrast; intensity relative "
    r"to the largest $|R|$ of a non-special token (special tokens grey)."
)


def _figure_set(
    result: CaseResult,
    out_dir: Path,
    figures: list[tuple[str, str, float]],
    *,
    heatmap: str | None = None,
    graph: str | None = None,
) -> Path:
    """The figure set as one document, compiled in one pdflatex run: the heatmap as text that
    runs over pages, the graph as an inline TikZ picture scaled to the page, the charts as
    included PDFs."""
    case_id = result.case_id
    doc = Document(
        str(out_dir / case_id),
        documentclass="article",
        geometry_options={"margin": "2cm"},
        page_numbers=False,
    )
    doc.preamble.append(NoEscape(r"\pdfminorversion=7"))
    for package in ("graphicx", "xcolor", "caption", "tikz"):
        doc.packages.append(Package(package))
    doc.packages.append(Package("adjustbox", options=["export"]))
    doc.preamble.append(NoEscape(r"\setlength{\fboxsep}{1.4pt}"))
    doc.preamble.append(
        NoEscape(
            r"\newcommand{\tok}[3]{\colorbox[RGB]{#1}{\textcolor[RGB]{#2}{\strut #3}}\allowbreak}"
        )
    )
    with doc.create(Section(NoEscape(escape_latex(result.title)), numbering=False, label=False)):
        att = result.attribution
        facts = [
            ("case", result.case_id),
            ("model", result.model),
            ("objective", att.objective),
            ("target", att.target.text),
            ("contrast", att.contrast.text if att.contrast else "none"),
        ]
        doc.append(NoEscape(r"\begin{description}\small"))
        for key, value in facts:
            doc.append(
                NoEscape(rf"\item[{key}] \texttt{{{escape_latex(value, visible_whitespace=True)}}}")
            )
        doc.append(NoEscape(rf"\item[explained value $f$] {att.explained:+.4f}"))
        doc.append(NoEscape(rf"\item[tokens] {len(att.token_ids)}"))
        doc.append(NoEscape(r"\end{description}"))
        if heatmap is not None:
            doc.append(NoEscape(r"\subsection*{Input relevance}"))
            doc.append(NoEscape(r"{\small " + HEATMAP_CAPTION + r"\par}\medskip"))
            doc.append(NoEscape(heatmap))
        if graph is not None:
            with doc.create(Figure(position="htbp")) as fig:
                fig.append(NoEscape(r"\centering"))
                fig.append(
                    NoEscape(
                        r"\begin{adjustbox}{max width=\linewidth,max totalheight=0.8\textheight}"
                        + "\n"
                        + graph
                        + "\n"
                        + r"\end{adjustbox}"
                    )
                )
                fig.add_caption(NoEscape(graph_caption(result.graph)))
        for pdf_name, caption, height in figures:
            _figure(doc, pdf_name, caption, height)
    doc.append(Command("clearpage"))
    doc.generate_tex()
    return out_dir / f"{case_id}.tex"


# --- compiling --------------------------------------------------------------------------------


def render_latex(
    result: CaseResult,
    out_dir: Path,
    *,
    compile_pdf: bool = True,
    page_parts: Dossier | None = None,
) -> Path | None:
    """Write the case's LaTeX figure set into ``out_dir`` and compile it to ``<case_id>.pdf``.

    One pdflatex run: the heatmap and the graph are set inside the figure set itself (the
    heatmap as text that runs over pages, which a standalone figure of a 10k-token input cannot:
    its single page would exceed TeX's largest dimension). Their standalone sources
    (``<id>-heatmap.tex``, ``<id>-graph.tex``) are written beside it for reuse in a paper.
    Returns the PDF's path, or None when it was not compiled (``compile_pdf=False``, or no
    pdflatex on PATH -- then with a warning, since the .tex sources are still useful).
    ``page_parts``: the result's cells and charts when the caller has them (:func:`dossier`)."""
    case_id = check_case_id(result.case_id)
    parts = page_parts if page_parts is not None else dossier(result)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    heatmap = heatmap_body(parts.cells)
    _standalone(out_dir / f"{case_id}-heatmap.tex", heatmap)
    graph = None
    if result.graph is not None:
        graph = graph_body(result)
        _standalone(out_dir / f"{case_id}-graph.tex", graph, tikz=True)
    figures = []
    long_input = len(result.attribution.token_ids) > charts_mod.PER_TOKEN_LIMIT
    import vl_convert

    for drawn in parts.charts:
        name, title, caption = drawn.name, drawn.title, drawn.caption
        pdf_name = f"{case_id}-{name}.pdf"
        (out_dir / pdf_name).write_bytes(vl_convert.vegalite_to_pdf(drawn.chart.to_dict()))
        # a long input's relevance chart is two charts stacked (strongest tokens, overview):
        # at the others' height its bar labels would shrink below reading size
        height = TALL_FIGURE if name == "relevance" and long_input else 0.42
        figures.append((pdf_name, escape_latex(f"{title}. {caption}"), height))
    main = _figure_set(result, out_dir, figures, heatmap=heatmap, graph=graph)
    pinned = write_pinned_figures(result, out_dir, compile_pdf=False)  # the case's [graph] pinned

    if not compile_pdf:
        return None
    pdflatex = shutil.which("pdflatex")
    if pdflatex is None:
        warnings.warn(
            f"case {case_id!r}: pdflatex not found; wrote the .tex sources to {out_dir} "
            "without compiling them",
            stacklevel=2,
        )
        return None
    for tex in pinned:
        compile_tex(tex, case_id, pdflatex)
    return compile_tex(main, case_id, pdflatex)
