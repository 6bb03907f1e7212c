"""How a token is shown: visible whitespace, its colour and the exact number behind it.

One list of :class:`TokenCell` feeds the web heatmap and the LaTeX heatmap, so both show the
same tokens in the same colours."""

from __future__ import annotations

from dataclasses import dataclass

from ..results import Attribution
from .colors import TokenColor, normalisation, token_color

SPACE_MARK = "\u2423"  # ␣
NEWLINE_MARK = "\u21b5"  # ↵
TAB_MARK = "\u21e5"  # ⇥
EMPTY_MARK = "\u2205"  # ∅


_INVISIBLE_EXTRA = frozenset(
    [*range(0x202A, 0x202F), *range(0x2066, 0x206A), *range(0x200B, 0x2010), 0x061C]
    + [0x2028, 0x2029, 0x2060, 0xFEFF, 0x00AD]
)


def is_hidden_char(ch: str) -> bool:
    """Characters a reader cannot see or that rearrange what they see: C0/C1 controls and DEL,
    bidirectional overrides and isolates (U+202A-U+202E, U+2066-U+2069), zero-width
    characters (U+200B-U+200D, U+2060, U+FEFF) and the other Unicode format characters."""
    import unicodedata

    code = ord(ch)
    return (
        code < 0x20
        or 0x7F <= code <= 0x9F
        or code in _INVISIBLE_EXTRA
        or unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp")
    )


def control_marker(ch: str) -> str:
    """What a hidden character shows as: its code point, like the PDF's boxed U+XXXX."""
    return f"\u27e6U+{ord(ch):04X}\u27e7"  # ⟦U+202E⟧


def visible_controls(text: str, *, keep: str = "\n\t\r") -> str:
    """``text`` with every hidden character (see :func:`is_hidden_char`) except those in
    ``keep`` replaced by its ``U+XXXX`` marker: no raw NUL/ESC reaches a page or a CSV, a
    right-to-left override cannot reorder the prompt, a zero-width space is seen."""
    if text.isprintable() and not any(ord(c) in _INVISIBLE_EXTRA for c in text):
        return text  # the common case, fast
    return "".join(control_marker(c) if is_hidden_char(c) and c not in keep else c for c in text)


def visible_text(text: str) -> str:
    """Token text with whitespace made visible, so a relevant "\\n" or " " can be seen.

    Newlines and tabs always get a mark; spaces only when the token is nothing but whitespace
    (a leading space in " capital" shows as a gap in the coloured box already); other hidden
    characters show as their U+XXXX marker."""
    if text == "":
        return EMPTY_MARK
    out = []
    only_space = text.isspace()
    for ch in text:
        if ch == "\n":
            out.append(NEWLINE_MARK)
        elif ch == "\t":
            out.append(TAB_MARK)
        elif ch == "\r":
            out.append("\u240d")  # ␍
        elif ch == " " and only_space:
            out.append(SPACE_MARK)
        elif is_hidden_char(ch):
            out.append(control_marker(ch))
        else:
            out.append(ch)
    return "".join(out)


@dataclass(frozen=True)
class TokenCell:
    position: int
    text: str  # the decoded token as the model saw it
    display: str  # what is printed (visible whitespace)
    token: str  # the tokenizer's own string ("Ġcapital")
    token_id: int
    special: bool
    relevance: float
    color: TokenColor
    newline_after: bool  # the token ends with a newline: break the line after it

    @property
    def tooltip(self) -> str:
        kind = (
            "special token, not in colour scale"
            if self.special
            else f"{self.color.intensity:+.3f} of max"
        )
        return (
            f"#{self.position} {self.token!r} (id {self.token_id})\nR = {self.relevance:+}\n{kind}"
        )


def token_cells(attribution: Attribution) -> list[TokenCell]:
    """One cell per input token, coloured against the non-special maximum |R|."""
    scale = normalisation(attribution.relevance, attribution.special)
    cells = []
    for i, (text, token, token_id, special, rel) in enumerate(
        zip(
            attribution.token_texts,
            attribution.tokens,
            attribution.token_ids,
            attribution.special,
            attribution.relevance,
            strict=True,
        )
    ):
        cells.append(
            TokenCell(
                position=i,
                text=text,
                display=visible_text(text),
                token=token,
                token_id=token_id,
                special=special,
                relevance=float(rel),
                color=token_color(float(rel), scale, special=special),
                newline_after=text.endswith("\n"),
            )
        )
    return cells


def segment_sums(relevance: list[float], segments: dict[str, list[int]]) -> dict[str, float]:
    """Sum of relevance over each named [start, end) token span, in the case's order."""
    return {name: float(sum(relevance[start:end])) for name, (start, end) in segments.items()}
