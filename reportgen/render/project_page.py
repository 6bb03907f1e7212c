"""The index as a project page: what a ``[site]`` table of the project file turns into.

Plain data for the index template, built from :class:`reportgen.project.SiteInfo` and the
results. Every text field stays plain text (jinja escapes it); only the abstract is Markdown,
rendered by markdown-it-py with raw HTML off, images off (a page must load nothing remote) and
links restricted to http(s), mailto and relative URLs."""

from __future__ import annotations

import re
from typing import Any

from markupsafe import Markup

from ..errors import CaseError
from ..project import SiteInfo
from ..results import CaseResult
from .tokens import token_cells, visible_text

#: tokens of a featured case's heatmap on the index (the end of the input: what was just read)
FEATURED_TOKENS = 64
_SAFE_SCHEMES = ("http", "https", "mailto")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def safe_link(url: str) -> bool:
    """http(s), mailto, or a relative link (a path, ``#anchor``, ``?query``); nothing else."""
    url = url.strip()
    if _CONTROL.search(url) or url.startswith("//"):
        return False
    head = re.split(r"[/?#]", url, maxsplit=1)[0]
    if ":" not in head:
        return True
    return head.split(":", 1)[0].lower() in _SAFE_SCHEMES


def plain(text: str) -> str:
    """Plain text without control characters (newlines and tabs kept); jinja escapes the rest."""
    return _CONTROL.sub("", text)


def render_markdown(text: str) -> Markup:
    """CommonMark to HTML with raw HTML disabled; unsafe links stay as plain text."""
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False})
    md.disable("image")
    md.validateLink = safe_link
    return Markup(md.render(_CONTROL.sub("", text)))


def check_featured(site: SiteInfo, where: str | None, case_ids: set[str]) -> None:
    """Every featured id names a case of the build; an unknown one is an error on its field."""
    for index, case_id in enumerate(site.featured):
        if case_id not in case_ids:
            raise CaseError(
                where or "reportgen.toml",
                f"site.featured[{index}]",
                f"no case with id {case_id!r} in this build",
            )


def _featured(result: CaseResult, href: str) -> dict[str, Any]:
    cells = token_cells(result.attribution)
    shown = cells[-FEATURED_TOKENS:]
    att = result.attribution
    return {
        "id": result.case_id,
        "title": result.title,
        "href": href,
        "model": result.model,
        "explained": att.explained,
        "target": visible_text(att.target.text),
        "contrast": visible_text(att.contrast.text) if att.contrast is not None else None,
        "cut": len(cells) - len(shown),
        "tokens": [
            {
                "display": c.display,
                "tooltip": c.tooltip,
                "background": c.color.background_hex,
                "foreground": c.color.foreground_hex,
                "special": c.special,
                "newline_after": c.newline_after,
            }
            for c in shown
        ],
    }


def project_context(
    site: SiteInfo, results: list[CaseResult], hrefs: dict[str, str]
) -> dict[str, Any]:
    """The project-page part of the index: header, abstract, featured cases, citation."""
    by_id = {r.case_id: r for r in results}
    authors = [
        {"name": plain(a.name), "affiliation": plain(a.affiliation), "url": a.url or None}
        for a in site.authors
    ]
    return {
        "title": plain(site.title),
        "subtitle": plain(site.subtitle),
        "authors": authors,
        "affiliations": list(dict.fromkeys(a["affiliation"] for a in authors if a["affiliation"])),
        "links": [{"label": plain(link.label), "url": link.url} for link in site.links],
        "abstract": render_markdown(site.abstract) if site.abstract.strip() else None,
        "bibtex": plain(site.bibtex).strip("\n") or None,
        # a featured case that failed to compute is listed under failures, not here
        "featured": [
            _featured(by_id[case_id], hrefs[case_id])
            for case_id in site.featured
            if case_id in by_id
        ],
    }
