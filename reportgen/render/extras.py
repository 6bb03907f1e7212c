"""Page-specific assets (the project page's and the graph explorer's CSS and JS).

They live beside style.css as package data and are written once into the site's ``assets/``;
a single-file page inlines them instead, so it still works offline as one file."""

from __future__ import annotations

import re
import shutil
from functools import cache
from pathlib import Path
from typing import Any

from markupsafe import Markup

ASSETS_DIR = Path(__file__).resolve().parent / "assets"

#: the graph explorer's files, in the order a page loads them: the drawing (explorer.js) last,
#: as it hands its API to the pinned-subgraph pane (explorer-pins.js), which uses the exports
EXPLORER_ASSETS = ("explorer.css", "explorer-export.js", "explorer-pins.js", "explorer.js")
#: every extra asset file the site writes next to style.css
EXTRA_ASSETS = ("project.css", "project.js", *EXPLORER_ASSETS)
# explore.css / explore.js belong to `reportgen explore`, inlined in its page (not the site)


@cache
def asset_text(name: str) -> str:
    return (ASSETS_DIR / name).read_text(encoding="utf-8")


def _inline(text: str, tag: str) -> Markup:
    """Our own asset text made safe inside <script>/<style>: no early end tag, no ``<!--``."""
    text = re.sub(rf"</({tag})", r"<\\/\1", text, flags=re.IGNORECASE)
    return Markup(text.replace("<!--", "<\\!--"))


def copy_extra_assets(assets_dir: Path) -> None:
    for name in EXTRA_ASSETS:
        shutil.copyfile(ASSETS_DIR / name, assets_dir / name)


def asset_tags(
    names: tuple[str, ...], *, single_file: bool, assets_href: str
) -> dict[str, list[dict[str, Any]]]:
    """``{"css": [...], "js": [...]}``: each an ``{"href"}`` (linked) or ``{"inline"}`` entry."""
    base = assets_href.rstrip("/")
    tags: dict[str, list[dict[str, Any]]] = {"css": [], "js": []}
    for name in names:
        kind = "css" if name.endswith(".css") else "js"
        if single_file:
            text = asset_text(name)
            tag = "style" if kind == "css" else "script"
            tags[kind].append({"href": None, "inline": _inline(text, tag)})
        else:
            tags[kind].append({"href": f"{base}/{name}", "inline": None})
    return tags
