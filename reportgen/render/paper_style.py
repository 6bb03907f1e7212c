"""The paper figures' typesetting: how a string, a number and a colour are written in TeX, the
widths and font sizes a project's ``[figures]`` settings give, and the preamble every figure
set shares (:mod:`reportgen.render.paper` assembles the set, :mod:`.paper_drawings` draws)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ..project import FIGURE_COLORMAPS, FIGURE_FONTS, FigureSettings
from .colors import SPECIAL_BG, SPECIAL_FG, WHITE
from .tex import rgb_values

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
TT_WIDTH = 0.525  # a monospaced character's width in em (Latin Modern Mono, Courier: 0.6)


# --- text ---------------------------------------------------------------------------------------


def tex_text(text: str, *, tokens: bool = False) -> str:
    """``text`` escaped for LaTeX; a character pdflatex cannot set is a boxed U+XXXX at the
    current size (not ``\\tiny``: every word of a paper figure is at least the small size)."""
    from .tex import escape_latex

    out = escape_latex(text, visible_whitespace=tokens)
    return out.replace(r"\fbox{\tiny U+", r"\fbox{U+")


def shortened(text: str, limit: int) -> str:
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


def pgf_number(value: float) -> str:
    """A coordinate pgfplots reads: plain decimal, no exponent it could misparse."""
    if not math.isfinite(value):
        return "0"
    text = f"{value:.6g}"
    return f"{value:.12f}".rstrip("0").rstrip(".") if "e" in text else text


def label_number(value: float) -> str:
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
            rf"\definecolor{{rgpos}}{{RGB}}{{{rgb_values(positive)}}}",
            rf"\definecolor{{rgneg}}{{RGB}}{{{rgb_values(negative)}}}",
            rf"\definecolor{{rgaxis}}{{RGB}}{{{rgb_values(SPECIAL_FG)}}}",
            rf"\definecolor{{rgspecial}}{{RGB}}{{{rgb_values(SPECIAL_BG)}}}",
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
