"""The page of `reportgen explore`: one HTML document with its styles and script inlined."""

from __future__ import annotations

from .extras import asset_tags
from .html import environment, inline_style, stylesheet


def explore_page(*, model: str, cases_dir: str, token: str) -> str:
    """The page; ``token`` is the run's secret, which the page's script sends with every API
    call (a page of another site cannot read it)."""
    page = {
        "title": f"reportgen explore \u2014 {model}",
        "css_inline": inline_style(stylesheet()),
        "extra": asset_tags(("explore.css", "explore.js"), single_file=True, assets_href=""),
    }
    return (
        environment()
        .get_template("explore.html.j2")
        .render(page=page, app={"model": model, "cases_dir": cases_dir, "token": token})
    )
