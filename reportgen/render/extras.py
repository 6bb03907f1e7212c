"""Page-specific assets (the project page's and the graph explorer's CSS and JS).

They live beside style.css as package data and are written once into the site's ``assets/``;
a single-file page inlines them instead, so it still works offline as one file."""

from __future__ import annotations

import shutil
from functools import cache
from pathlib import Path
from typing import Any

from markupsafe import Markup

from .html import ASSETS_DIR, inline_script, inline_style

#: every extra asset file the site writes next to style.css
EXTRA_ASSETS = ("project.css", "project.js", "explorer.css", "explorer.js")


@cache
def asset_text(name: str) -> str:
    return (ASSETS_DIR / name).read_text(encoding="utf-8")


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
            inline: Markup = inline_style(text) if kind == "css" else inline_script(text)
            tags[kind].append({"href": None, "inline": inline})
        else:
            tags[kind].append({"href": f"{base}/{name}", "inline": None})
    return tags
