"""The relevance colour map shared by the web page, the charts and the LaTeX figures.

Red means the token supports the target (positive relevance), blue that it supports the
contrast (negative). Intensity is |R| divided by the largest |R| over the *non-special* tokens:
a BOS or chat-template token often soaks up a large relevance that says little about the
prompt, and letting it set the scale would wash out every other token."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

RGB = tuple[int, int, int]

POSITIVE: RGB = (178, 24, 43)  # supports the target (ColorBrewer RdBu dark red)
NEGATIVE: RGB = (33, 102, 172)  # supports the contrast (RdBu dark blue)
WHITE: RGB = (255, 255, 255)
SPECIAL_BG: RGB = (224, 224, 224)
SPECIAL_FG: RGB = (120, 120, 120)
TEXT_DARK: RGB = (26, 26, 26)
TEXT_LIGHT: RGB = (255, 255, 255)

POSITIVE_HEX = "#b2182b"
NEGATIVE_HEX = "#2166ac"
SPECIAL_HEX = "#9e9e9e"


def hex_color(rgb: RGB) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def normalisation(relevance: Sequence[float], special: Sequence[bool]) -> float:
    """Largest |R| over non-special tokens (0.0 when there is none or all are zero)."""
    values = [abs(r) for r, s in zip(relevance, special, strict=True) if not s]
    return max(values, default=0.0)


def _mix(color: RGB, amount: float) -> RGB:
    """``amount`` of ``color`` over white: 0 gives white, 1 the full colour."""
    return tuple(round(w + (c - w) * amount) for c, w in zip(color, WHITE, strict=True))  # type: ignore[return-value]


@dataclass(frozen=True)
class TokenColor:
    """Background and text colour of one token, plus its signed intensity in [-1, 1]."""

    background: RGB
    foreground: RGB
    intensity: float

    @property
    def background_hex(self) -> str:
        return hex_color(self.background)

    @property
    def foreground_hex(self) -> str:
        return hex_color(self.foreground)


def token_color(relevance: float, scale: float, *, special: bool = False) -> TokenColor:
    """Colour of one token given the page-wide ``scale`` from :func:`normalisation`."""
    if special:
        return TokenColor(SPECIAL_BG, SPECIAL_FG, 0.0)
    intensity = max(-1.0, min(1.0, relevance / scale)) if scale > 0 else 0.0
    base = POSITIVE if intensity >= 0 else NEGATIVE
    background = _mix(base, abs(intensity))
    foreground = TEXT_LIGHT if abs(intensity) > 0.55 else TEXT_DARK
    return TokenColor(background, foreground, intensity)
