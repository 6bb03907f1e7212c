"""The input heatmap as plain data: one cell per token (a token's newline breaks its line and the
indentation after it stays visible), and for long inputs foldable blocks of whole lines whose
tokens carry only what differs from the default style (a 16,000-token input stays at about 80
bytes a token)."""

from __future__ import annotations

from typing import Any

from .tokens import NEWLINE_MARK, visible_text

FOLD_LIMIT = 1000  # longer inputs fold the heatmap into blocks of lines
BLOCK_TOKENS = 400  # about this many tokens per folded block
STRONGEST_LIST = 20  # a long input lists its strongest tokens, linked to their place
OPEN_BLOCKS_WITH_TOP = 10  # blocks holding one of the top tokens start unfolded


def token_lines(text: str, display: str) -> list[str]:
    """What a heatmap cell prints, one string per line: a newline inside a token breaks the
    line there (shown as ↵ at the end of the first line), and what follows it -- usually
    indentation -- is kept as real spaces on the next, so code keeps its shape."""
    if "\n" not in text:
        return [display]
    parts = text.split("\n")
    lines = [visible_text(part) + NEWLINE_MARK if part else NEWLINE_MARK for part in parts[:-1]]
    last = parts[-1]
    lines.append(last if last.strip(" ") == "" else visible_text(last))
    return lines


def heatmap_cell(c: Any) -> dict[str, Any]:
    return {
        "id": f"tok-{c.position}",
        "position": c.position,
        "display": c.display,
        "lines": token_lines(c.text, c.display),
        "tooltip": c.tooltip,
        "background": c.color.background_hex,
        "foreground": c.color.foreground_hex,
        "special": c.special,
        "newline_after": c.newline_after,
    }


DEFAULT_BACKGROUND = "#ffffff"  # what the folded heatmap's CSS gives a token without style
DEFAULT_FOREGROUND = "#1a1a1a"


def folded_cell(c: Any) -> dict[str, Any]:
    """A token of a folded (long) heatmap, in as few bytes as the page can hold it: the
    tooltip keeps the position and the exact relevance (the tokenizer string and id are in
    relevance.csv), the style only what differs from the CSS default (most tokens of a long
    input are near zero, so white), no ARIA role per token. A 16,000-token input stays at
    about 80 bytes a token instead of 180."""
    style = []
    if c.color.background_hex != DEFAULT_BACKGROUND:
        style.append(f"background:{c.color.background_hex}")
    if c.color.foreground_hex != DEFAULT_FOREGROUND:
        style.append(f"color:{c.color.foreground_hex}")
    return {
        "id": f"tok-{c.position}",
        "position": c.position,
        "lines": token_lines(c.text, c.display),
        "tip": f"#{c.position} R = {c.relevance:+}" + (" (special)" if c.special else ""),
        "style": ";".join(style),
        "special": c.special,
    }


def heatmap_blocks(cells: list[Any], top: set[int]) -> list[dict[str, Any]]:
    """Long inputs in foldable blocks of whole lines (a line longer than a block is cut), each
    with a summary: its token and line range and its strongest token. Blocks that hold one of
    the ``top`` positions start open."""
    blocks: list[dict[str, Any]] = []
    current: list[Any] = []
    line = first_line = 1

    def close() -> None:
        if not current:
            return
        plain = [c for c in current if not c.special] or current
        strongest = max(plain, key=lambda c: abs(c.relevance))
        blocks.append(
            {
                "first": current[0].position,
                "last": current[-1].position,
                "first_line": first_line,
                "last_line": line,
                "strongest": {
                    "id": f"tok-{strongest.position}",
                    "display": strongest.display,
                    "relevance": strongest.relevance,
                },
                "open": any(c.position in top for c in current),
                "tokens": [folded_cell(c) for c in current],
            }
        )

    for c in cells:
        current.append(c)
        breaks = c.text.count("\n")
        if len(current) >= BLOCK_TOKENS and (breaks or len(current) >= 2 * BLOCK_TOKENS):
            line += breaks
            close()
            current = []
            first_line = line
            continue
        line += breaks
    close()
    return blocks
