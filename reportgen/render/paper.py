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

import shutil
import subprocess
import zipfile
from collections.abc import Sequence
from functools import cache
from pathlib import Path

from ..project import FIGURE_FONTS, FigureSettings
from ..results import CaseResult
from .paper_drawings import (
    chosen_metrics,
    faithfulness_body,
    graph_body,
    heatmap_body,
    metrics_body,
    relevance_body,
)
from .paper_style import (
    FIGURES_TEX,
    FIGURES_ZIP,
    PREAMBLE_LINE,
    WIDTH_WORDS,
    WIDTHS,
    Figure,
    preamble,
    tex_text,
    widths,
)
from .tokens import TokenCell, token_cells

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
