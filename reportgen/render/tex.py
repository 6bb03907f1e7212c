"""TeX primitives every figure writer shares: escaping untrusted text (tokens) so that it
prints literally, a colour as xcolor reads it, and one pdflatex run without shell escape whose failure is one line naming
the case. Kept apart from the figure writers (latex, paper, pinned_figure) so that none of them
imports another for these."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from ..errors import ReportgenError

PDFLATEX_TIMEOUT_S = 120
PDFLATEX_FLAGS = ["-no-shell-escape", "-interaction=nonstopmode", "-halt-on-error"]

_ESCAPES = {
    "\\": r"\textbackslash{}",
    "{": r"\{",
    "}": r"\}",
    "$": r"\$",
    "&": r"\&",
    "#": r"\#",
    "^": r"\textasciicircum{}",
    "_": r"\_",
    "%": r"\%",
    "~": r"\textasciitilde{}",
    '"': r"\textquotedbl{}",
    "|": r"\textbar{}",
    # characters that form T1 ligatures (<< -- `` ,, !` ?`) or an optional argument
    "<": "{<}",
    ">": "{>}",
    "-": "{-}",
    # the ASCII glyphs, not the typographic quotes ‘ ’ (code must read as typed: ```python)
    "`": r"\textasciigrave{}",
    "'": r"\textquotesingle{}",
    ",": "{,}",
    "[": "{[}",
    "]": "{]}",
}


def rgb_values(color: tuple[int, int, int]) -> str:
    """``r,g,b`` (0-255) for ``\\definecolor{name}{RGB}{...}`` and the figures' colour macros."""
    return "{},{},{}".format(*color)


def xcolor_rgb(color: tuple[int, int, int]) -> str:
    """An inline xcolor colour, ``{rgb,255:red,r;green,g;blue,b}``, where no name is defined."""
    return f"{{rgb,255:red,{color[0]};green,{color[1]};blue,{color[2]}}}"


class LatexError(ReportgenError):
    """pdflatex failed on a case's figures; the message names the case and quotes the log."""


def placeholder(char: str) -> str:
    """A boxed code point for a character pdflatex cannot typeset (emoji, CJK, ...)."""
    return rf"\fbox{{\tiny U+{ord(char):04X}}}"


def typesettable(char: str) -> bool:
    """Printable ASCII and Latin-1 work with T1 + utf8 inputenc (checked by compiling them all)."""
    code = ord(char)
    return 0x20 <= code < 0x7F or (0xA0 <= code <= 0xFF and code != 0xAD)


def escape_latex(text: str, *, visible_whitespace: bool = False) -> str:
    """``text`` as LaTeX source that prints it literally, whatever it contains.

    With ``visible_whitespace`` (tokens) newlines and tabs print as arrows and a token of only
    spaces as ␣; otherwise (captions, titles) any whitespace is a plain space."""
    only_space = visible_whitespace and text != "" and text.isspace()
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ch == " ":
            out.append(
                r"\textvisiblespace{}" if only_space else (r"\ " if visible_whitespace else " ")
            )
        elif ch == "\n":
            out.append(r"$\hookleftarrow$" if visible_whitespace else " ")
        elif ch == "\t":
            out.append(r"$\rightarrow$" if visible_whitespace else " ")
        elif typesettable(ch):
            out.append(ch)
        else:
            out.append(placeholder(ch))
    if visible_whitespace and text == "":
        out.append(r"$\emptyset$")
    return "".join(out)


def log_excerpt(log: Path, stdout: str, limit: int = 300) -> str:
    """The meaningful lines of a pdflatex log, on one line: each TeX error ("! ...") with the
    input line it names ("l.42 ..."), else the fatal messages; never the kilobytes of package
    chatter around them."""
    text = log.read_text(encoding="utf-8", errors="replace") if log.is_file() else stdout
    all_lines = [line.strip() for line in text.splitlines()]
    picked: list[str] = []
    for i, line in enumerate(all_lines):
        if line.startswith("!"):
            picked.append(line)
            where = next((x for x in all_lines[i + 1 : i + 8] if x.startswith("l.")), None)
            if where:
                picked.append(where)
    if not picked:
        picked = [
            line
            for line in all_lines
            if "Fatal error" in line or "Emergency stop" in line or "not found" in line
        ]
    if not picked:
        picked = [line for line in all_lines if line][-2:]
    excerpt = " | ".join(dict.fromkeys(picked))
    return excerpt if len(excerpt) <= limit else excerpt[: limit - 3] + "..."


def compile_tex(tex: Path, case_id: str, pdflatex: str = "pdflatex") -> Path:
    """Run pdflatex once on ``tex`` in its own folder; raise :class:`LatexError` on failure."""
    env = dict(os.environ, openout_any="p", shell_escape="f")
    try:
        proc = subprocess.run(
            [pdflatex, *PDFLATEX_FLAGS, tex.name],
            cwd=tex.parent,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=PDFLATEX_TIMEOUT_S,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise LatexError(
            f"case {case_id!r}: pdflatex on {tex.name} timed out after {PDFLATEX_TIMEOUT_S} s"
        ) from exc
    pdf = tex.with_suffix(".pdf")
    log = tex.with_suffix(".log")
    if proc.returncode != 0 or not pdf.is_file():
        raise LatexError(
            f"case {case_id!r}: pdflatex failed on {tex.name} (exit {proc.returncode}): "
            f"{log_excerpt(log, proc.stdout)}"
        )
    for suffix in (".aux", ".log"):
        tex.with_suffix(suffix).unlink(missing_ok=True)
    return pdf
