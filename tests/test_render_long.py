"""Long inputs in the dossier: bounded chart data, heatmap folded by whole lines, line
structure of code tokens kept."""

from __future__ import annotations

import pytest
from render_fixtures import long_result, make_result

from reportgen.render import charts
from reportgen.render.heatmap import BLOCK_TOKENS, heatmap_blocks, token_lines
from reportgen.render.html import dossier_context
from reportgen.render.tokens import token_cells


def test_newline_inside_a_token_breaks_the_line_and_keeps_the_indentation():
    assert token_lines("\n    ", "↵␣␣␣␣") == ["↵", "    "]
    assert token_lines(":\n", ":↵") == [":↵", ""]
    assert token_lines(" value", " value") == [" value"]
    assert token_lines("a\n\n  b", "a↵↵  b") == ["a↵", "↵", "  b"]


def test_short_inputs_keep_one_bar_per_token():
    spec = charts.relevance_chart(make_result()).to_dict()
    assert spec["mark"]["type"] == "bar" and len(spec["data"]["values"]) == 9


def test_long_relevance_chart_has_bounded_marks():
    result = long_result(10_000)
    spec = charts.relevance_chart(result).to_dict()
    top, overview = spec["vconcat"]
    assert len(top["data"]["values"]) == charts.TOP_TOKENS
    assert len(overview["data"]["values"]) <= 2 * charts.OVERVIEW_BINS
    # the bins add up to the whole input's relevance (special tokens left out)
    total = sum(
        r
        for r, s in zip(result.attribution.relevance, result.attribution.special, strict=True)
        if not s
    )
    assert sum(v["relevance"] for v in overview["data"]["values"]) == pytest.approx(total)
    strongest = max(
        (c for c in token_cells(result.attribution) if not c.special),
        key=lambda c: abs(c.relevance),
    )
    assert top["data"]["values"][0]["position"] == strongest.position
    assert all(c.get("width", 0) <= charts.CHART_WIDTH for c in (top, overview))


def test_long_heatmap_folds_whole_lines_and_opens_the_strongest():
    result = long_result(10_000)
    cells = token_cells(result.attribution)
    top = {c.position for c in charts.strongest_tokens(cells, 10)}
    blocks = heatmap_blocks(cells, top)
    positions = [t["position"] for b in blocks for t in b["tokens"]]
    assert positions == list(range(10_000))  # every token once, in order
    assert all(len(b["tokens"]) < 2 * BLOCK_TOKENS for b in blocks)
    for b in blocks[:-1]:  # a block ends with a line
        assert "\n" in cells[b["last"]].text
    opened = {p for b in blocks if b["open"] for p in range(b["first"], b["last"] + 1)}
    assert top <= opened
    context = dossier_context(result)
    assert context["tokens"] == [] and len(context["blocks"]) == len(blocks)
    assert len(context["strongest"]) == 20


def test_a_budget_cut_flip_test_shows_ranges_not_no_flip(tmp_path):
    from dataclasses import replace

    from reportgen.render.site import build_site
    from reportgen.results import FlipBudget

    result = long_result(2_000)
    faith = replace(
        result.faithfulness,
        flip_k={"attnlrp": None, "grad_x_input": 7, "gradient": None, "random": None},
        cost=FlipBudget(
            cost_budget=32_768,
            cost_spent=31_004,
            sets_refused=0,
            flip_bounds={"attnlrp": [4, 10], "gradient": [9, None], "random": [3, None]},
            random_seeds_used=2,
            random_points=[0, 5, 20, 50],
            aopc_points=[1, 2, 5, 10, 50],
            exact_cost=1_204_331,
        ),
        random_seeds=5,
        points=[0, 1, 2, 5, 10, 50],
    )
    result = replace(result, faithfulness=faith)
    build_site([result], tmp_path, failures=[])
    page = (tmp_path / "cases" / result.case_id / "index.html").read_text(encoding="utf-8")
    section = page[page.index('id="faithfulness"') :]
    section = section[: section.index("</section>")]
    assert "between 4 and 10" in section and "at least 9" in section
    assert "needs between 4 and 10 masked tokens" in section
    assert "would have cost 1,204,331 token-forwards" in section
    assert "budget of 32,768; it spent 31,004" in section
    assert "mean of 2 of 5 seeds at k = 0, 5, 20, 50" in section
    index = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert "between 4 and 10" in index


def test_an_exact_flip_test_says_so(tmp_path):
    from render_fixtures import make_result

    from reportgen.render.site import build_site

    result = make_result()
    assert result.faithfulness is not None and result.faithfulness.cost is None
    build_site([result], tmp_path, failures=[])
    page = (tmp_path / "cases" / result.case_id / "index.html").read_text(encoding="utf-8")
    section = page[page.index('id="faithfulness"') :]
    section = section[: section.index("</section>")]
    forwarded = f"{result.faithfulness.forwarded_tokens:,}"
    assert f"Exact: every k of every ordering was evaluated ({forwarded} token-forwards" in section
    assert "Sampled" not in section and "evaluated at k =" not in section


def test_compiled_templates_are_kept_and_render_the_same_page(tmp_path, monkeypatch):
    from render_fixtures import make_result

    from reportgen.render import html
    from reportgen.render.site import build_site

    monkeypatch.setenv("REPORTGEN_CACHE", str(tmp_path / "cache"))
    pages = []
    for attempt in range(2):
        html.environment.cache_clear()  # a new process: templates from the kept bytecode
        build_site([make_result()], tmp_path / f"site{attempt}", failures=[])
        pages.append((tmp_path / f"site{attempt}" / "index.html").read_text(encoding="utf-8"))
        kept = sorted((tmp_path / "cache" / "templates").glob("*.cache"))
        assert len(kept) >= 2  # the index and the dossier at least
    html.environment.cache_clear()
    assert pages[0] == pages[1]
