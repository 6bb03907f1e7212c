"""The dossier's one chart registry, and its cells and charts drawn once for the PDF and the page."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from render_fixtures import long_result, make_result

from reportgen.render import charts, dossier, latex, paper, tokens
from reportgen.render import html as html_page
from reportgen.render.dossier import DOSSIER_CHARTS
from reportgen.render.site import build_site


def _section_of(page: str, element_id: str) -> str:
    """The id of the <section> that holds the element ``element_id``."""
    at = page.index(f'id="{element_id}"')
    return re.findall(r'<section id="([^"]+)"', page[:at])[-1]


def test_one_registry_gives_page_and_pdf_the_same_words(tmp_path: Path) -> None:
    result = make_result()
    parts = dossier.dossier(result)
    assert [c.name for c in parts.charts] == [k.name for k in DOSSIER_CHARTS]  # all have data
    assert len({k.name for k in DOSSIER_CHARTS}) == len(DOSSIER_CHARTS) == 7
    page = build_site([result], tmp_path / "site").parent / "cases/synthetic-case/index.html"
    text = page.read_text(encoding="utf-8")
    latex.render_latex(result, tmp_path / "pdf", compile_pdf=False, page_parts=parts)
    tex = (tmp_path / "pdf" / "synthetic-case.tex").read_text(encoding="utf-8")
    for kind in DOSSIER_CHARTS:
        # the web page: the registry's title and caption, in the registry's section
        assert f"<strong>{html.escape(kind.title)}.</strong> {html.escape(kind.caption)}" in text
        assert _section_of(text, f"chart-{kind.name}") == kind.section
        # the PDF: the same words under the chart's own PDF
        assert (tmp_path / "pdf" / f"synthetic-case-{kind.name}.pdf").read_bytes()[:4] == b"%PDF"
        assert latex.escape_latex(f"{kind.title}. {kind.caption}") in tex
    # no chart without data: a result without graph, metrics, faithfulness or comparisons
    bare = dossier.dossier(make_result(full=False))
    assert [c.name for c in bare.charts] == ["relevance", "segments"]


def test_a_long_input_names_its_relevance_chart_for_what_it_draws() -> None:
    parts = dossier.dossier(long_result(2_000))
    relevance = next(c for c in parts.charts if c.name == "relevance")
    assert relevance.title == "Relevance: strongest tokens and overview"
    assert "whole input of 2,000 tokens" in relevance.caption
    assert f"The {charts.TOP_TOKENS} tokens" in relevance.caption
    short = dossier.dossier(make_result())
    assert short.charts[0].title == "Relevance per token"


def test_cells_and_charts_are_drawn_once_for_pdf_and_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the build does per case: the figure set, the paper figures and the page from one
    set of parts -- one call of token_cells and of each chart function, not one per renderer."""
    calls: dict[str, int] = {}

    def counted(name, function):  # noqa: ANN001, ANN202
        def wrapper(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            calls[name] = calls.get(name, 0) + 1
            return function(*args, **kwargs)

        return wrapper

    real_cells = tokens.token_cells
    for module in (dossier, charts, paper, latex, html_page):
        if hasattr(module, "token_cells"):
            monkeypatch.setattr(module, "token_cells", counted("token_cells", real_cells))
    for name in ("relevance_chart", "faithfulness_chart", "metrics_chart", "layer_sums_chart"):
        monkeypatch.setattr(charts, name, counted(name, getattr(charts, name)))
    result = make_result()
    parts = dossier.dossier(result)
    latex.render_latex(result, tmp_path / "pdf", compile_pdf=False, page_parts=parts)
    paper.render_paper_figures(result, tmp_path / "pdf", compile_pdf=False, cells=parts.cells)
    build_site([result], tmp_path / "site", page_parts={result.case_id: parts})
    assert calls == {
        "token_cells": 1,
        "relevance_chart": 1,
        "faithfulness_chart": 1,
        "metrics_chart": 1,
        "layer_sums_chart": 1,
    }
    # without parts each renderer draws its own (what the build did before)
    calls.clear()
    build_site([result], tmp_path / "again")
    assert calls["token_cells"] == 1 and calls["relevance_chart"] == 1
